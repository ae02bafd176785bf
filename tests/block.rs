//! The whole-chunk kernels of the compiled plan (`Plan::run_block`, the transform path): every
//! instruction set against the reference's transform (fixtures of
//! tools/reference/make_transform_fixtures.py) for every chunk length, against libtorch for every
//! compilable registry model on long chunks, and the bits of a time step independent of where a
//! chunk starts or ends (what makes a chunked transform equal one pass).
mod common;
use cebra::stream::{BlockScratch, Isa, Plan};
use cebra::ModelArgs;
use common::{tensor, transform_fixture_model as fixture_model, values, TRANSFORM_CASES};
use tch::{Kind, Tensor};

const TOL: f32 = 1e-5;

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max)
}

/// Max |a - b| relative to the largest |b| (at least 1): unnormalised deep models with random
/// weights reach magnitudes where float32 rounding in intermediate layers exceeds an absolute 1e-5.
fn max_rel_diff(a: &[f32], b: &[f32]) -> f32 {
    max_diff(a, b) / b.iter().fold(1f32, |m, v| m.max(v.abs()))
}

/// `rows` time-major rows of `x` (`n` channels), edge-padded as the reference's transform pads.
fn padded_rows(x: &[f32], n: usize, left: usize, right: usize) -> Vec<f32> {
    let t = x.len() / n;
    (0..t + left + right - 1).flat_map(|p| x[p.saturating_sub(left).min(t - 1) * n..][..n].to_vec()).collect()
}

/// `run_block` over `rows` rows of a model with receptive field `field` and `o` outputs.
fn run(plan: &Plan, input: &[f32], rows: usize, field: usize, o: usize, scratch: &mut BlockScratch) -> Vec<f32> {
    let mut out = vec![f32::NAN; (rows + 1 - field) * o];
    plan.run_block(input, rows, &mut out, scratch);
    out
}

#[test]
fn every_chunk_length_matches_the_reference_on_every_instruction_set() {
    let mut covered = 0;
    for case in TRANSFORM_CASES {
        let (model, file) = fixture_model(case);
        if model.resample_factor() != 1 {
            continue; // resampling models run through libtorch
        }
        covered += 1;
        let offset = model.offset();
        let (left, right, field) = (offset.left as usize, offset.right as usize, offset.len() as usize);
        let input = tensor(&file, "input");
        let n = input.size()[1] as usize;
        let o = model.num_output() as usize;
        let x = padded_rows(&values(input), n, left, right);
        let want = values(tensor(&file, "padded"));
        for isa in Isa::available() {
            let plan = Plan::compile_for(model.as_ref(), isa).unwrap_or_else(|e| panic!("{case}: {e}"));
            let mut scratch = BlockScratch::default();
            // Every output length from 1 to the whole recording: every tail of the 16-, 32- and
            // 48-step tiles, with one scratch reused across lengths (stale values past the end).
            for rows in field..=x.len() / n {
                let got = run(&plan, &x[..rows * n], rows, field, o, &mut scratch);
                let d = max_diff(&got, &want[..got.len()]);
                assert!(d <= TOL, "{case} {isa:?} {rows} rows: max |diff| {d}");
            }
        }
    }
    assert_eq!(covered, TRANSFORM_CASES.len() - 2, "every non-resampling case");
}

#[test]
fn long_chunks_of_every_compilable_model_match_libtorch() {
    let names = cebra::get_options(None, None, true);
    let mut compiled = 0;
    for (i, name) in names.iter().enumerate() {
        tch::manual_seed(i as i64);
        // 20 hidden units: 3 panels of 8 (6 AVX2 half-panels), the last one partly padding.
        let model = cebra::init(name, &ModelArgs::new(9, 20, 5)).unwrap();
        let Ok(scalar) = Plan::compile_for(model.as_ref(), Isa::Scalar) else { continue };
        compiled += 1;
        let field = model.offset().len() as usize;
        let rows = 300 + field; // several 48-step tiles and a tail of 12 = 16 - 4
        let x = Tensor::randn([rows as i64, 9], (Kind::Float, tch::Device::Cpu));
        let input = values(&x);
        let want = if model.is_convolutional() {
            values(&model.forward(&x.transpose(0, 1).unsqueeze(0).contiguous()).unwrap().squeeze_dim(0).transpose(0, 1))
        } else if field > 1 {
            // A model of one window at a time: every window as a batch of (neurons, field).
            values(&model.forward(&x.unfold(0, field as i64, 1).contiguous()).unwrap())
        } else {
            values(&model.forward(&x).unwrap())
        };
        let mut scratch = BlockScratch::default();
        let base = run(&scalar, &input, rows, field, 5, &mut scratch);
        assert!(max_rel_diff(&base, &want) <= TOL, "{name} scalar: {}", max_rel_diff(&base, &want));
        for isa in Isa::available() {
            let plan = Plan::compile_for(model.as_ref(), isa).unwrap();
            let got = run(&plan, &input, rows, field, 5, &mut scratch);
            assert!(max_rel_diff(&got, &want) <= TOL, "{name} {isa:?}: {}", max_rel_diff(&got, &want));
        }
    }
    assert_eq!(compiled, 147 - 6, "every non-resampling model compiles");
}

#[test]
fn a_steps_bits_do_not_depend_on_where_its_chunk_starts_or_ends() {
    let (model, file) = fixture_model("offset10-model-wide");
    let n = tensor(&file, "input").size()[1] as usize;
    let rows = 200;
    let x: Vec<f32> = (0..rows * n).map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 2.0).collect();
    for isa in Isa::available() {
        let plan = Plan::compile_for(model.as_ref(), isa).unwrap();
        let mut scratch = BlockScratch::default();
        let whole = run(&plan, &x, rows, 10, 8, &mut scratch);
        // Odd starts and lengths put each step in another lane of another tile.
        for (start, len) in [(1, 10), (3, 57), (17, 64), (31, 150), (5, 195), (0, 49), (100, 100)] {
            let part = run(&plan, &x[start * n..(start + len) * n], len, 10, 8, &mut scratch);
            assert_eq!(part, whole[start * 8..(start + len - 9) * 8], "{isa:?} chunk {start}+{len}");
        }
        // What the plan prefetches while it computes changes nothing.
        let mut out = vec![0f32; whole.len()];
        for upcoming in [&x[..], &x[..5], &x[n * 100..]] {
            plan.run_block_before(&x, rows, &mut out, &mut scratch, upcoming);
            assert_eq!(out, whole, "{isa:?} with a prefetch region");
        }
    }
}

#[test]
fn a_model_with_wider_panels_than_its_channels_keeps_its_padding_out() {
    // 3 outputs in a panel of 8, 13 neurons (not a multiple of the 8x8 transpose), odd hidden width.
    let model = cebra::init("offset10-model", &ModelArgs::new(13, 11, 3)).unwrap();
    let rows = 137;
    let x = Tensor::randn([rows as i64, 13], (Kind::Float, tch::Device::Cpu));
    let want = values(&model.forward(&x.transpose(0, 1).unsqueeze(0).contiguous()).unwrap().squeeze_dim(0).transpose(0, 1));
    for isa in Isa::available() {
        let plan = Plan::compile_for(model.as_ref(), isa).unwrap();
        let got = run(&plan, &values(&x), rows, 10, 3, &mut BlockScratch::default());
        assert!(max_diff(&got, &want) <= TOL, "{isa:?}");
        let norms: Vec<f32> = got.chunks(3).map(|r| r.iter().map(|v| v * v).sum::<f32>().sqrt()).collect();
        assert!(norms.iter().all(|v| (v - 1.0).abs() < 1e-5), "{isa:?}: rows are normalised");
    }
}
