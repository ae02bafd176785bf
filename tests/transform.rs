//! `transform` against the reference's `CEBRA.transform` (fixtures from
//! tools/reference/make_transform_fixtures.py): padded and not, one pass and chunked (short last
//! chunks included), row- and column-major, compiled and libtorch paths.
mod common;
use cebra::transform::{transform, Layout, Recording, TransformOptions};
use cebra::{weights, Model, ModelArgs};
use common::{fixture, fixtures, tensor, transform_fixture_model as fixture_model, values, TRANSFORM_CASES as CASES};

const TOL: f32 = 1e-5;

fn transpose(v: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0f32; v.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = v[r * cols + c];
        }
    }
    t
}

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let worst = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(worst <= TOL, "{what}: max |diff| = {worst}");
}

fn run(model: &dyn Model, input: &[f32], t: usize, n: usize, layout: Layout, options: TransformOptions) -> Vec<f32> {
    let data = match layout {
        Layout::RowMajor => input.to_vec(),
        Layout::ColMajor => transpose(input, t, n),
    };
    let rec = Recording::new(&data, t, n, layout).unwrap();
    let out = transform(model, &rec, options).unwrap();
    let o = model.num_output() as usize;
    match layout {
        Layout::RowMajor => out,
        Layout::ColMajor => transpose(&out, o, out.len() / o),
    }
}

#[test]
fn transform_matches_the_reference() {
    for case in CASES {
        let (model, file) = fixture_model(case);
        let input = tensor(&file, "input");
        let (t, n) = (input.size()[0] as usize, input.size()[1] as usize);
        let x = values(input);
        for force_libtorch in [false, true] {
            for layout in [Layout::RowMajor, Layout::ColMajor] {
                for (key, pad) in [("padded", true), ("unpadded", false)] {
                    let want = values(tensor(&file, key));
                    // The libtorch path runs a forward per chunk: fewer sizes keep the test quick.
                    let sizes: &[usize] = if force_libtorch { &[0, 3, 20] } else { &[0, 1, 3, 7, 20, 63, 64, 1000] };
                    for &batch_size in sizes {
                        let options = TransformOptions { pad, batch_size, force_libtorch };
                        let got = run(model.as_ref(), &x, t, n, layout, options);
                        assert_close(&got, &want, &format!("{case} {key} {layout:?} batch {batch_size} libtorch {force_libtorch}"));
                    }
                }
            }
        }
        // The reference's own chunked results agree too (where it can chunk).
        for (key, pad) in [("batched_padded", true), ("batched_unpadded", false)] {
            if let Some((_, want)) = file.tensors.iter().find(|(k, _)| k == key) {
                let got = run(model.as_ref(), &x, t, n, Layout::RowMajor, TransformOptions { pad, batch_size: 20, force_libtorch: false });
                assert_close(&got, &values(want), &format!("{case} {key}"));
            }
        }
    }
}

#[test]
fn chunking_gives_the_bits_of_one_pass() {
    let (model, file) = fixture_model("offset10-model-wide");
    let input = tensor(&file, "input");
    let (t, n) = (input.size()[0] as usize, input.size()[1] as usize);
    let x = values(input);
    let one = run(model.as_ref(), &x, t, n, Layout::RowMajor, TransformOptions::default());
    for batch_size in [1, 2, 5, 11, 30] {
        let chunked = run(model.as_ref(), &x, t, n, Layout::RowMajor, TransformOptions { batch_size, ..Default::default() });
        assert_eq!(chunked, one, "batch {batch_size}");
    }
}

#[test]
fn long_recording_compiled_equals_libtorch() {
    // Many chunks in parallel, edges padded, both layouts.
    let (model, _) = fixture_model("offset10-model-wide");
    let (t, n) = (3001usize, 120usize);
    let x: Vec<f32> = (0..t * n).map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 2.0).collect();
    for layout in [Layout::RowMajor, Layout::ColMajor] {
        for pad in [true, false] {
            let fast = run(model.as_ref(), &x, t, n, layout, TransformOptions { pad, batch_size: 0, force_libtorch: false });
            let slow = run(model.as_ref(), &x, t, n, layout, TransformOptions { pad, batch_size: 0, force_libtorch: true });
            assert_close(&fast, &slow, &format!("{layout:?} pad {pad}"));
        }
    }
}

#[test]
fn bad_input_is_refused_with_a_clear_error() {
    let (model, _) = fixture_model("offset10-model");
    let x = vec![0f32; 9 * 7];
    // Shorter than the receptive field, even with padding (as the reference).
    let rec = Recording::new(&x, 9, 7, Layout::RowMajor).unwrap();
    let err = transform(model.as_ref(), &rec, TransformOptions::default()).unwrap_err();
    assert!(matches!(err, cebra::Error::ShapeMismatch(_)) && err.to_string().contains("10"), "{err}");
    // Wrong neuron count.
    let rec = Recording::new(&x, 7, 9, Layout::RowMajor).unwrap();
    let err = transform(model.as_ref(), &rec, TransformOptions::default()).unwrap_err();
    assert!(matches!(err, cebra::Error::ShapeMismatch(_)) && err.to_string().contains("neurons"), "{err}");
    // Data length that does not match the shape.
    assert!(matches!(Recording::new(&x, 10, 7, Layout::RowMajor), Err(cebra::Error::ShapeMismatch(_))));
    // A model that is neither convolutional nor one step wide: no whole-recording transform.
    let sup = cebra::init("supervised10-model", &ModelArgs::new(7, 12, 3)).unwrap();
    let x = vec![0f32; 20 * 7];
    let rec = Recording::new(&x, 20, 7, Layout::RowMajor).unwrap();
    assert!(matches!(transform(sup.as_ref(), &rec, TransformOptions::default()), Err(cebra::Error::Unsupported(_))));
    // Too small an output buffer.
    let rec = Recording::new(&x, 20, 7, Layout::RowMajor).unwrap();
    let mut out = vec![0f32; 20 * 3 - 1];
    let err = cebra::transform::transform_into(model.as_ref(), &rec, TransformOptions::default(), &mut out, &|_| {}).unwrap_err();
    assert!(matches!(err, cebra::Error::BufferTooSmall(_)));
    assert!(out.iter().all(|v| *v == 0.0));
}

#[test]
fn non_finite_values_propagate() {
    let (model, _) = fixture_model("offset5-model");
    let mut x = vec![0.5f32; 30 * 7];
    x[15 * 7 + 2] = f32::NAN;
    let rec = Recording::new(&x, 30, 7, Layout::RowMajor).unwrap();
    let out = transform(model.as_ref(), &rec, TransformOptions { pad: false, ..Default::default() }).unwrap();
    // Windows covering step 15 (rows 11..=15 of 26) are NaN, the others are not.
    for r in 0..26 {
        let nan = out[r * 3..r * 3 + 3].iter().any(|v| v.is_nan());
        assert_eq!(nan, (11..=15).contains(&r), "row {r}");
    }
}

#[test]
fn a_converted_python_checkpoint_transforms_as_the_reference() {
    // tests/fixtures/checkpoint: a cebra.CEBRA fit + save("model.pt") converted by
    // tools/convert_cebra_checkpoint.py, and the reference's transform (tools/reference/check_converter.py).
    let model = weights::load_model(fixtures().join("checkpoint/offset10-model.safetensors")).unwrap();
    assert_eq!(model.architecture().name, "offset10-model");
    let file = fixture("checkpoint/offset10-model.transform.safetensors");
    let input = tensor(&file, "input");
    let (t, n) = (input.size()[0] as usize, input.size()[1] as usize);
    let x = values(input);
    for (key, pad) in [("padded", true), ("unpadded", false)] {
        for layout in [Layout::RowMajor, Layout::ColMajor] {
            let got = run(model.as_ref(), &x, t, n, layout, TransformOptions { pad, ..Default::default() });
            assert_close(&got, &values(tensor(&file, key)), &format!("checkpoint {key} {layout:?}"));
        }
    }
}

#[test]
fn a_file_of_an_unbuildable_model_is_refused() {
    let src = weights::read_file(fixtures().join("checkpoint/offset10-model.safetensors")).unwrap();
    let dir = std::env::temp_dir().join(format!("cebra-transform-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (key, value, needle) in [
        ("cebra.architecture", "my-own-model", "my-own-model"),
        ("cebra.num_neurons", "10", "cannot be built"),
    ] {
        let mut meta = src.metadata.clone();
        meta.insert(key.into(), value.into());
        let path = dir.join("bad.safetensors");
        weights::write_file(&path, &src.tensors, meta).unwrap();
        let err = weights::load_model(&path).err().expect("refused");
        assert!(matches!(err, cebra::Error::Format(_)) && err.to_string().contains(needle), "{err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn cli_transform_reads_and_writes_npy_and_safetensors() {
    use ndarray::{Array2, ShapeBuilder};
    let file = fixture("checkpoint/offset10-model.transform.safetensors");
    let input = tensor(&file, "input");
    let (t, n) = (input.size()[0] as usize, input.size()[1] as usize);
    let x = values(input);
    let dir = std::env::temp_dir().join(format!("cebra-cli-transform-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let c_order = Array2::from_shape_vec((t, n), x.clone()).unwrap();
    let f_order = Array2::from_shape_vec((t, n).f(), transpose(&x, t, n)).unwrap();
    assert_eq!(c_order, f_order);
    ndarray_npy::write_npy(dir.join("c.npy"), &c_order).unwrap();
    ndarray_npy::write_npy(dir.join("f.npy"), &f_order).unwrap();
    ndarray_npy::write_npy(dir.join("d.npy"), &c_order.mapv(f64::from)).unwrap();
    let model = fixtures().join("checkpoint/offset10-model.safetensors");
    let cli = |args: &[&std::ffi::OsStr]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_cebra")).arg("transform").args(args).output().unwrap()
    };
    for (src, extra, key) in [
        ("c.npy", vec![], "padded"),
        ("f.npy", vec!["--batch-size", "7"], "padded"),
        ("d.npy", vec!["--no-pad"], "unpadded"),
        ("f.npy", vec!["--no-pad", "--batch-size", "3"], "unpadded"),
    ] {
        let out = dir.join("out.npy");
        let mut args: Vec<&std::ffi::OsStr> = vec![model.as_os_str(), dir.join(src).into_os_string().leak(), "-o".as_ref(), out.as_os_str()];
        args.extend(extra.iter().map(std::ffi::OsStr::new));
        let o = cli(&args);
        assert!(o.status.success(), "{src} {extra:?}: {}", String::from_utf8_lossy(&o.stderr));
        let got: Array2<f32> = ndarray_npy::read_npy(&out).unwrap();
        let want = tensor(&file, key);
        assert_eq!(got.dim(), (want.size()[0] as usize, want.size()[1] as usize));
        assert_close(got.as_slice().unwrap(), &values(want), &format!("cli {src} {extra:?}"));
    }
    // safetensors in, safetensors out.
    let rec = dir.join("rec.safetensors");
    weights::write_file(&rec, &[("data".to_string(), input.shallow_clone())], Default::default()).unwrap();
    let out = dir.join("out.safetensors");
    let o = cli(&[model.as_os_str(), rec.as_os_str(), "-o".as_ref(), out.as_os_str(), "-q".as_ref()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let written = weights::read_file(&out).unwrap();
    assert_close(&values(tensor(&written, "embedding")), &values(tensor(&file, "padded")), "cli safetensors");
    // Errors name the problem.
    let o = cli(&[model.as_os_str(), dir.join("c.npy").as_os_str(), "-o".as_ref(), dir.join("out.txt").as_os_str()]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains(".npy or .safetensors"));
    let o = cli(&[model.as_os_str(), dir.join("missing.npy").as_os_str(), "-o".as_ref(), out.as_os_str()]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("missing.npy"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn one_libtorch_thread_runs_the_compiled_path_on_one_thread_with_the_same_rows() {
    let (model, file) = fixture_model("offset10-model-wide");
    let input = tensor(&file, "input");
    let (t, n) = (input.size()[0] as usize, input.size()[1] as usize);
    let x = values(input);
    let before = tch::get_num_threads();
    tch::set_num_threads(1);
    let one = run(model.as_ref(), &x, t, n, Layout::RowMajor, TransformOptions { batch_size: 5, ..Default::default() });
    tch::set_num_threads(before);
    assert_close(&one, &values(tensor(&file, "padded")), "one thread");
}
