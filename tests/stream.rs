//! Streaming: every push equals the row of the reference's transform (fixtures of
//! tools/reference/make_transform_fixtures.py) and of our libtorch path, for every streamable model
//! family; the kernels against libtorch; resampling models refused.
mod common;
use cebra::stream::{kernels, Isa, Plan, Stream};
use cebra::{Model, ModelArgs};
use common::{tensor, transform_fixture_model as fixture_model, values, TRANSFORM_CASES};
use std::sync::{Arc, Mutex};
use tch::{Kind, Tensor};

const TOL: f32 = 1e-5;

fn shared(model: Box<dyn Model>) -> cebra::stream::SharedModel {
    Arc::new(Mutex::new(model))
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max)
}

#[test]
fn pushes_equal_the_reference_transform_rows() {
    let mut streamed = 0;
    for case in TRANSFORM_CASES {
        let (model, file) = fixture_model(case);
        if model.resample_factor() != 1 {
            continue; // resampling models do not stream (tested below)
        }
        streamed += 1;
        let offset = model.offset();
        let (field, lookahead) = (offset.len() as usize, (offset.right - 1) as usize);
        let input = tensor(&file, "input");
        let (t, n) = (input.size()[0] as usize, input.size()[1] as usize);
        let o = model.num_output() as usize;
        let x = values(input);
        let padded = values(tensor(&file, "padded"));
        let unpadded = values(tensor(&file, "unpadded"));
        let model = shared(model);
        for compiled in [true, false] {
            let mut stream = if compiled { Stream::new(model.clone()) } else { Stream::new_libtorch(model.clone()) }.unwrap();
            assert_eq!(stream.is_compiled(), compiled, "{case}");
            assert_eq!(stream.lookahead() as usize, lookahead);
            // Twice, with a reset in between: the second pass must not remember the first.
            for round in 0..2 {
                let mut e = vec![f32::NAN; o];
                for k in 0..t {
                    let ready = stream.push(&x[k * n..(k + 1) * n], &mut e).unwrap();
                    assert_eq!(ready, k + 1 >= field, "{case} push {k}");
                    if !ready {
                        assert!(e.iter().all(|v| v.is_nan()), "nothing written before ready");
                        continue;
                    }
                    let r = k + 1 - field;
                    let d1 = max_diff(&e, &unpadded[r * o..(r + 1) * o]);
                    let d2 = max_diff(&e, &padded[(k - lookahead) * o..(k - lookahead + 1) * o]);
                    assert!(d1 <= TOL && d2 <= TOL, "{case} compiled {compiled} round {round} push {k}: {d1} {d2}");
                }
                stream.reset();
            }
        }
    }
    // Every fixture case but the two 4x-resampling models.
    assert_eq!(streamed, TRANSFORM_CASES.len() - 2);
}

#[test]
fn every_streamable_registry_model_compiles_and_matches_libtorch() {
    let names = cebra::get_options(None, None, true);
    let mut compiled = 0;
    for (i, name) in names.iter().enumerate() {
        tch::manual_seed(i as i64);
        let model = cebra::init(name, &ModelArgs::new(5, 8, 3)).unwrap();
        let field = model.offset().len() as usize;
        let resampling = model.resample_factor() != 1;
        let model = shared(model);
        let stream = Stream::new(model.clone());
        if resampling {
            let err = stream.err().expect("resampling models cannot stream");
            assert!(matches!(err, cebra::Error::Unsupported(_)), "{name}: {err}");
            continue;
        }
        let mut stream = stream.unwrap();
        assert!(stream.is_compiled(), "{name} fell back to libtorch");
        compiled += 1;
        let steps = field + 3;
        let x = Tensor::randn([steps as i64, 5], (Kind::Float, tch::Device::Cpu));
        let xs = values(&x);
        let mut e = [0f32; 3];
        for k in 0..steps {
            if stream.push(&xs[k * 5..(k + 1) * 5], &mut e).unwrap() {
                let window = x.narrow(0, (k + 1 - field) as i64, field as i64).transpose(0, 1).unsqueeze(0).contiguous();
                let want = values(&model.lock().unwrap().forward(&window).unwrap());
                assert!(max_diff(&e, &want) <= TOL, "{name} push {k}: {e:?} vs {want:?}");
            }
        }
    }
    assert_eq!(compiled, 147 - 6, "every non-resampling model streams compiled");
}

#[test]
fn a_stream_keeps_its_model_alive_and_checks_its_arguments() {
    let model = shared(cebra::init("offset5-model", &ModelArgs::new(4, 8, 2)).unwrap());
    let mut stream = Stream::new(model.clone()).unwrap();
    drop(model);
    let mut e = [0f32; 2];
    for _ in 0..5 {
        stream.push(&[1.0; 4], &mut e).unwrap();
    }
    assert!(matches!(stream.push(&[1.0; 3], &mut e), Err(cebra::Error::ShapeMismatch(_))));
    assert!(matches!(stream.push(&[1.0; 4], &mut [0f32; 1]), Err(cebra::Error::BufferTooSmall(_))));
}

#[test]
fn training_mode_streams_through_libtorch() {
    let mut model = cebra::init("offset36-model-dropout", &ModelArgs::new(4, 8, 2)).unwrap();
    model.set_training(true);
    let stream = Stream::new(shared(model)).unwrap();
    assert!(!stream.is_compiled());
}

#[test]
fn kernels_match_libtorch() {
    // GELU (erf) over a wide range, both instruction sets.
    let xs: Vec<f32> = (-20000..=20000)
        .map(|i| i as f32 * 6e-4)
        .chain([0.0, -0.0, 1e-30, -1e-30, 50.0, -50.0, 1e4, -1e4, 5.54, -5.54, 5.55, -5.55])
        .collect();
    let want = values(&Tensor::from_slice(&xs).gelu("none"));
    for isa in Isa::available() {
        let mut got = xs.clone();
        kernels::gelu_inplace(isa, &mut got);
        // Within 2e-6 of libtorch, relative to max(1, |gelu|): libtorch's own float32 GELU is
        // 1.2e-6 from the exact value on this range.
        let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs() / b.abs().max(1.0)).fold(0f32, f32::max);
        assert!(worst < 2e-6, "{isa:?}: gelu error {worst}");
        assert!(got[got.len() - 5] == 0.0 && got[got.len() - 7] == 0.0, "far negative inputs give 0");
    }
    // Blocks through the compiled plan on both instruction sets, against libtorch.
    let model = cebra::init("offset10-model", &ModelArgs::new(13, 20, 5)).unwrap();
    let x = Tensor::randn([1, 13, 37], (Kind::Float, tch::Device::Cpu));
    let want = values(&model.forward(&x).unwrap().squeeze_dim(0).transpose(0, 1));
    let rows = values(&x.squeeze_dim(0).transpose(0, 1));
    for isa in Isa::available() {
        let plan = Plan::compile_for(model.as_ref(), isa).unwrap();
        let mut out = vec![0f32; 28 * 5];
        plan.run_block(&rows, 37, &mut out, &mut Default::default());
        assert!(max_diff(&out, &want) <= TOL, "{isa:?}");
    }
    // Widths that exercise every vector block (16-lane pairs, single 16s, a trailing 8) and rows
    // that exercise the 8-, 4- and 1-row blocks: every instruction set against the scalar code.
    for (u, o) in [(40, 24), (48, 8), (12, 3)] {
        let model = cebra::init("offset5-model", &ModelArgs::new(9, u, o)).unwrap();
        let x = Tensor::randn([31, 9], (Kind::Float, tch::Device::Cpu));
        let rows = values(&x);
        let scalar = Plan::compile_for(model.as_ref(), Isa::Scalar).unwrap();
        let mut want = vec![0f32; 27 * o as usize];
        scalar.run_block(&rows, 31, &mut want, &mut Default::default());
        for isa in Isa::available() {
            let plan = Plan::compile_for(model.as_ref(), isa).unwrap();
            let mut out = vec![0f32; 27 * o as usize];
            plan.run_block(&rows, 31, &mut out, &mut Default::default());
            assert!(max_diff(&out, &want) <= TOL, "{isa:?} U={u} O={o}");
            // The single-row (streaming) kernel on the first window of every stage width.
            let stage_widths = [(9 * 2, u), (u * 3, o)];
            for (kk, c) in stage_widths {
                let cp = kernels::padded_channels(c as usize);
                let w: Vec<f32> = (0..kk as usize * cp).map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.01).collect();
                let b: Vec<f32> = (0..cp).map(|i| i as f32 * 0.1).collect();
                let xw: Vec<f32> = (0..kk as usize).map(|i| ((i * 13 % 29) as f32 - 14.0) * 0.1).collect();
                let (mut single, mut reference) = (vec![0f32; cp], vec![0f32; cp]);
                kernels::conv_row_latency(isa, &w, &b, kk as usize, cp, &xw, &mut single);
                kernels::conv_rows(&w, &b, kk as usize, cp, &xw, 0, 1, &mut reference);
                assert!(max_diff(&single, &reference) <= 1e-4, "{isa:?} single row kk={kk} cp={cp}");
            }
        }
    }
}

/// A callback model (not compiled: it streams through libtorch's window path) gives the same
/// embedding as its forward on the window.
#[test]
fn a_callback_model_streams_through_its_forward() {
    use cebra::ffi::*;
    // out[b, o, t] = sum over channels and the 3-step window starting at t, plus o.
    unsafe extern "C" fn window_sum(
        _user: *mut std::ffi::c_void, input: *const f32, batch: i64, num_input: i64, time: i64,
        output: *mut f32, num_output: i64, out_time: i64,
    ) -> i32 {
        for b in 0..batch {
            for o in 0..num_output {
                for t in 0..out_time {
                    let mut s = o as f32;
                    for c in 0..num_input {
                        for k in 0..3 {
                            // SAFETY: indices inside (batch, num_input, time), as libcebra passes.
                            s += unsafe { *input.add(((b * num_input + c) * time + t + k) as usize) };
                        }
                    }
                    // SAFETY: inside (batch, num_output, out_time).
                    unsafe { *output.add(((b * num_output + o) * out_time + t) as usize) = s };
                }
            }
        }
        0
    }
    // SAFETY: valid NUL-terminated strings, pointers to locals; everything created is freed.
    unsafe {
        assert_eq!(cebra_register_callback(c"stream-test-cb".as_ptr(), 1, 2, Some(window_sum), std::ptr::null_mut(), None, 0), CEBRA_STATUS_OK);
        let mut model: *mut CebraModel = std::ptr::null_mut();
        assert_eq!(cebra_model_init(c"stream-test-cb".as_ptr(), 2, 1, 2, std::ptr::null(), &mut model), CEBRA_STATUS_OK);
        let mut stream: *mut CebraStream = std::ptr::null_mut();
        assert_eq!(cebra_stream_new(model, &mut stream), CEBRA_STATUS_OK);
        let mut steps = -1;
        assert_eq!(cebra_stream_lookahead(stream, &mut steps), CEBRA_STATUS_OK);
        assert_eq!(steps, 1);
        let samples: Vec<[f32; 2]> = (0..6).map(|t| [t as f32, 10.0 * t as f32]).collect();
        for (k, s) in samples.iter().enumerate() {
            let (mut e, mut ready) = ([f32::NAN; 2], 9u8);
            assert_eq!(cebra_stream_push(stream, s.as_ptr(), 2, e.as_mut_ptr(), 2, &mut ready), CEBRA_STATUS_OK);
            assert_eq!(ready, (k >= 2) as u8, "push {k}");
            if k >= 2 {
                let window: f32 = samples[k - 2..=k].iter().map(|s| s[0] + s[1]).sum();
                assert_eq!(e, [window, window + 1.0], "push {k}");
            }
        }
        cebra_stream_free(stream);
        cebra_model_free(model);
        assert_eq!(cebra_unregister(c"stream-test-cb".as_ptr()), CEBRA_STATUS_OK);
    }
}
