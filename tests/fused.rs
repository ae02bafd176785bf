//! The fused InfoNCE (src/fused) against the reference fixtures and against the libtorch path
//! (`implementation=libtorch`) on random and extreme inputs: loss, align, uniform and every gradient,
//! the learnable temperature included; the autograd bridge; bad arguments.
mod common;
use cebra::criterions::{Criterion, Implementation};
use cebra::fused::{self, Inputs, Scaling, Similarity};
use cebra::Options;
use common::*;
use tch::{Device, Kind, Tensor};

const INFONCE: [&str; 4] = ["fixed-cosine-infonce", "fixed-euclidean-infonce", "learnable-cosine-infonce", "learnable-euclidean-infonce"];

/// Per element |ours - theirs| ≤ max(1e-6, 1e-5·|theirs|); with `extreme`, relative to the tensor's
/// largest magnitude instead (float32 itself resolves huge logits only to ~1e-7 of that).
fn close(case: &str, what: &str, ours: &Tensor, theirs: &Tensor, extreme: bool, failures: &mut Vec<String>) {
    assert_eq!(ours.size(), theirs.size(), "{case}: {what} shape");
    let a = Vec::<f64>::try_from(ours.to_kind(Kind::Double).flatten(0, -1)).unwrap();
    let b = Vec::<f64>::try_from(theirs.to_kind(Kind::Double).flatten(0, -1)).unwrap();
    let largest = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let mut worst = 0.0f64;
    for (x, y) in a.iter().zip(&b) {
        let allowed = if extreme { (1e-5 * largest).max(1e-6) } else { (1e-5 * y.abs()).max(1e-6) };
        let excess = (x - y).abs() / allowed;
        if excess > 1.0 || excess.is_nan() {
            worst = worst.max(if excess.is_nan() { f64::INFINITY } else { excess });
        }
    }
    if worst > 0.0 {
        failures.push(format!("{case}: {what} exceeds the tolerance by a factor {worst:.3}"));
    }
}

fn criterion(name: &str, options: &str, implementation: &str) -> Criterion {
    let options = if options.is_empty() { format!("implementation={implementation}") } else { format!("{options};implementation={implementation}") };
    Criterion::new(name, &Options::parse(&options).unwrap()).unwrap()
}

/// Compares fused and libtorch (or the fixture's) outputs and gradients.
fn compare_all(case: &str, fused: &Criterion, oracle: &Criterion, (r, p, q): (&Tensor, &Tensor, &Tensor), extreme: bool, failures: &mut Vec<String>) {
    assert_eq!(fused.implementation(), Implementation::Fused);
    assert_eq!(oracle.implementation(), Implementation::Libtorch);
    let a = tch::no_grad(|| fused.forward(r, p, q)).unwrap();
    let b = tch::no_grad(|| oracle.forward(r, p, q)).unwrap();
    close(case, "loss", &a.loss, &b.loss, extreme, failures);
    close(case, "align", &a.align, &b.align, extreme, failures);
    close(case, "uniform", &a.uniform, &b.uniform, extreme, failures);
    let ga = fused.backward(r, p, q).unwrap();
    let gb = oracle.backward(r, p, q).unwrap();
    close(case, "objective", &Tensor::from(ga.loss), &Tensor::from(gb.loss), extreme, failures);
    close(case, "grad_ref", &ga.grad_ref, &gb.grad_ref, extreme, failures);
    close(case, "grad_pos", &ga.grad_pos, &gb.grad_pos, extreme, failures);
    close(case, "grad_neg", &ga.grad_neg, &gb.grad_neg, extreme, failures);
    match (ga.grad_log_inverse_temperature, gb.grad_log_inverse_temperature) {
        (Some(x), Some(y)) => close(case, "grad_log_inverse_temperature", &Tensor::from(x), &Tensor::from(y), extreme, failures),
        (None, None) => {}
        other => failures.push(format!("{case}: learnable gradient presence differs: {other:?}")),
    }
}

#[test]
fn fused_matches_every_reference_fixture_case() {
    let dir = fixtures().join("criterions");
    let mut cases: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    cases.sort();
    let mut failures = Vec::new();
    let mut count = 0;
    for path in cases {
        let case = path.file_stem().unwrap().to_string_lossy().to_string();
        if case == "similarity" || case.starts_with("nce") {
            continue;
        }
        let file = cebra::weights::read_file(&path).unwrap();
        let c = criterion(&file.metadata["criterion"], &file.metadata["options"], "fused");
        let t = |k: &str| tensor(&file, k);
        let extreme = case.contains("extreme");
        let out = tch::no_grad(|| c.forward(t("ref"), t("pos"), t("neg"))).unwrap();
        close(&case, "loss", &out.loss, t("loss"), extreme, &mut failures);
        close(&case, "align", &out.align, t("align"), extreme, &mut failures);
        close(&case, "uniform", &out.uniform, t("uniform"), extreme, &mut failures);
        let g = c.backward(t("ref"), t("pos"), t("neg")).unwrap();
        close(&case, "objective", &Tensor::from(g.loss as f32), t("loss"), extreme, &mut failures);
        close(&case, "grad_ref", &g.grad_ref, t("grad_ref"), extreme, &mut failures);
        close(&case, "grad_pos", &g.grad_pos, t("grad_pos"), extreme, &mut failures);
        close(&case, "grad_neg", &g.grad_neg, t("grad_neg"), extreme, &mut failures);
        if c.is_learnable() {
            let gl = Tensor::from(g.grad_log_inverse_temperature.unwrap() as f32);
            close(&case, "grad_log_inverse_temperature", &gl, t("grad_log_inverse_temperature"), extreme, &mut failures);
        }
        count += 1;
    }
    assert!(failures.is_empty(), "fused vs reference:\n{}", failures.join("\n"));
    assert_eq!(count, 42, "InfoNCE fixture cases");
}

fn randn(rows: i64, d: i64, seed: i64) -> Tensor {
    tch::manual_seed(seed);
    Tensor::randn([rows, d], (Kind::Float, Device::Cpu))
}

fn unit_rows(t: Tensor) -> Tensor {
    let norm = t.norm_scalaropt_dim(2, [1i64].as_slice(), true);
    t / norm
}

/// Random inputs in the reference's regimes: unit rows for cosine, rows of norm `euclidean_norm` for
/// Euclidean (the fixtures' 0.1 keeps squared distances small).
fn inputs(name: &str, n: i64, m: i64, d: i64, seed: i64, euclidean_norm: f64) -> (Tensor, Tensor, Tensor) {
    let make = |rows: i64, s: i64| {
        // Unit rows in d = 1 are ±1: every similarity ties and the gradients cancel to exactly 0.
        let t = if d == 1 { randn(rows, d, s) * 0.5 } else { unit_rows(randn(rows, d, s)) };
        if name.contains("euclidean") { t * euclidean_norm } else { t }
    };
    (make(n, seed), make(n, seed + 1), make(m, seed + 2))
}

#[test]
fn fused_matches_libtorch_on_random_shapes_and_temperatures() {
    let mut failures = Vec::new();
    // n ≠ m, neither a multiple of the 64-wide tile nor of the 16-row block, d = 1 included.
    let shapes = [(1, 1, 1), (37, 150, 1), (37, 150, 3), (100, 64, 8), (64, 100, 32), (130, 129, 33), (512, 512, 8)];
    let mut seed = 10;
    for name in INFONCE {
        for &(n, m, d) in &shapes {
            for options in ["temperature=1", "temperature=0.1", "temperature=0.01"] {
                seed += 3;
                let (r, p, q) = inputs(name, n, m, d, seed, 0.5);
                let case = format!("{name} n={n} m={m} d={d} {options}");
                compare_all(&case, &criterion(name, options, "fused"), &criterion(name, options, "libtorch"), (&r, &p, &q), false, &mut failures);
            }
        }
    }
    assert!(failures.is_empty(), "fused vs libtorch:\n{}", failures.join("\n"));
}

#[test]
fn learnable_temperature_clamped_and_free() {
    let mut failures = Vec::new();
    for name in ["learnable-cosine-infonce", "learnable-euclidean-infonce"] {
        // exp(log(1/0.05)) = 20 > 1/0.2: clamped, so no gradient reaches the parameter; then free.
        for options in ["temperature=0.05;min_temperature=0.2", "temperature=0.5;min_temperature=0.1", "temperature=0.01"] {
            let (r, p, q) = inputs(name, 70, 90, 5, 99, 0.3);
            let case = format!("{name} {options}");
            let fused = criterion(name, options, "fused");
            compare_all(&case, &fused, &criterion(name, options, "libtorch"), (&r, &p, &q), false, &mut failures);
            let g = fused.backward(&r, &p, &q).unwrap().grad_log_inverse_temperature.unwrap();
            assert_eq!(g == 0.0, options.starts_with("temperature=0.05"), "{case}: gradient {g}");
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn extreme_logits_match_libtorch() {
    let mut failures = Vec::new();
    for name in INFONCE {
        // Norms ~1e3 (similarities ~1e6) at τ=1, and unit rows at τ=0.001 (logits ±1000): the
        // stabilisation by the row maximum must hold, and the loss stays finite.
        for (scale, options) in [(1e3, "temperature=1"), (1.0, "temperature=0.001")] {
            let (r, p, q) = (randn(50, 4, 1) * scale, randn(50, 4, 2) * scale, randn(77, 4, 3) * scale);
            let case = format!("{name} scale={scale} {options}");
            let fused = criterion(name, options, "fused");
            let loss = f64::try_from(tch::no_grad(|| fused.forward(&r, &p, &q)).unwrap().loss).unwrap();
            assert!(loss.is_finite(), "{case}: loss {loss}");
            compare_all(&case, &fused, &criterion(name, options, "libtorch"), (&r, &p, &q), true, &mut failures);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn autograd_bridge_gives_the_libtorch_gradients_on_leaves() {
    for name in INFONCE {
        let (r, p, q) = inputs(name, 40, 70, 6, 5, 0.5);
        let leaves = || (r.copy().set_requires_grad(true), p.copy().set_requires_grad(true), q.copy().set_requires_grad(true));
        // Each output's gradient separately, on both implementations, through a non-leaf (x·1.5).
        for output in ["loss", "align", "uniform"] {
            let mut grads = Vec::new();
            for implementation in ["fused", "libtorch"] {
                let c = criterion(name, "temperature=0.2", implementation);
                let (lr, lp, lq) = leaves();
                let out = c.forward(&(&lr * 1.5), &(&lp * 1.5), &(&lq * 1.5)).unwrap();
                let chosen = match output {
                    "loss" => out.loss,
                    "align" => out.align,
                    _ => out.uniform,
                };
                assert!(chosen.requires_grad(), "{name} {implementation} {output}");
                chosen.backward();
                let param = c.parameters().first().map(|t| t.grad());
                // A leaf the output does not depend on (neg, for align) has no gradient: zeros.
                let grad = |t: &Tensor| if t.grad().defined() { t.grad() } else { t.zeros_like() };
                grads.push((f64::try_from(&chosen).unwrap(), grad(&lr), grad(&lp), grad(&lq), param.map(|_| grad(&c.parameters()[0]))));
            }
            let (a, b) = (&grads[0], &grads[1]);
            let mut failures = Vec::new();
            let case = format!("{name} {output}");
            close(&case, "value", &Tensor::from(a.0), &Tensor::from(b.0), false, &mut failures);
            close(&case, "ref.grad", &a.1, &b.1, false, &mut failures);
            close(&case, "pos.grad", &a.2, &b.2, false, &mut failures);
            close(&case, "neg.grad", &a.3, &b.3, false, &mut failures);
            if let (Some(x), Some(y)) = (&a.4, &b.4) {
                close(&case, "log_inverse_temperature.grad", x, y, false, &mut failures);
            }
            assert!(failures.is_empty(), "{}", failures.join("\n"));
        }
        // objective_backward accumulates the same gradients and returns the objective.
        let (lr, lp, lq) = leaves();
        let fused = criterion(name, "temperature=0.2", "fused");
        let value = fused.objective_backward(&lr, &lp, &lq).unwrap();
        let expected = criterion(name, "temperature=0.2", "libtorch").backward(&r, &p, &q).unwrap();
        let mut failures = Vec::new();
        close(name, "objective", &Tensor::from(value), &Tensor::from(expected.loss), false, &mut failures);
        close(name, "objective_backward ref.grad", &lr.grad(), &expected.grad_ref, false, &mut failures);
        close(name, "objective_backward neg.grad", &lq.grad(), &expected.grad_neg, false, &mut failures);
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        // Under no_grad nothing is recorded.
        let out = tch::no_grad(|| fused.forward(&lr, &lp, &lq)).unwrap();
        assert!(!out.loss.requires_grad());
    }
}

#[test]
fn inputs_the_kernel_does_not_cover_take_the_libtorch_path() {
    let c = criterion("fixed-euclidean-infonce", "", "fused");
    let oracle = criterion("fixed-euclidean-infonce", "", "libtorch");
    // float64: the libtorch path, bit for bit.
    let (r, p, q) = (randn(9, 3, 1).to_kind(Kind::Double), randn(9, 3, 2).to_kind(Kind::Double), randn(11, 3, 3).to_kind(Kind::Double));
    let (a, b) = (c.backward(&r, &p, &q).unwrap(), oracle.backward(&r, &p, &q).unwrap());
    assert_eq!(a.grad_ref.kind(), Kind::Double);
    assert_eq!(max_abs_diff(&a.grad_ref, &b.grad_ref), 0.0);
    // NaN in, NaN out, as in the reference.
    let r = randn(9, 3, 1);
    let _ = r.get(2).get(1).fill_(f64::NAN);
    let out = tch::no_grad(|| c.forward(&r, &randn(9, 3, 2), &randn(11, 3, 3))).unwrap();
    assert!(f64::try_from(&out.loss).unwrap().is_nan());
    // Shape errors are the same as the libtorch path's.
    let z = |rows: i64, d: i64| Tensor::zeros([rows, d], (Kind::Float, Device::Cpu));
    assert!(matches!(c.forward(&z(3, 2), &z(4, 2), &z(3, 2)), Err(cebra::Error::ShapeMismatch(_))));
    assert!(matches!(c.backward(&z(3, 2), &z(3, 2), &z(3, 5)), Err(cebra::Error::ShapeMismatch(_))));
}

#[test]
fn implementation_option() {
    assert_eq!(Criterion::new("infonce", &Options::new()).unwrap().implementation(), Implementation::Fused);
    assert_eq!(Criterion::new("infomse", &Options::parse("implementation=libtorch").unwrap()).unwrap().implementation(), Implementation::Libtorch);
    assert_eq!(Criterion::new("nce", &Options::new()).unwrap().implementation(), Implementation::Libtorch);
    for (name, options, message) in [
        ("infonce", "implementation=gpu", "'implementation' must be 'fused' or 'libtorch', got 'gpu'"),
        ("nce", "implementation=fused", "criterion 'nce' has only the 'libtorch' implementation"),
    ] {
        let err = Criterion::new(name, &Options::parse(options).unwrap()).unwrap_err();
        assert!(err.to_string().contains(message), "{name} {options}: {err}");
    }
}

#[test]
fn kernel_api_checks_its_arguments_and_agrees_with_itself() {
    let x: Vec<f32> = (0..12).map(|i| (i as f32 * 0.37).sin()).collect();
    let base = Inputs {
        reference: &x[..6],
        positive: &x[6..],
        negative: &x,
        n: 2,
        m: 4,
        d: 3,
        similarity: Similarity::Euclidean,
        scaling: Scaling::MultiplyByInverseTemperature(2.0),
        precomputed: None,
    };
    let forward = fused::forward(&base).unwrap();
    let both = fused::forward_backward(&base).unwrap();
    assert_eq!(forward, both.losses);
    assert_eq!((both.reference.len(), both.positive.len(), both.negative.len()), (6, 6, 12));
    // Without precomputed terms the kernel computes them itself; the same numbers as libtorch.
    let t = |v: &[f32], rows: i64| Tensor::from_slice(v).view([rows, 3]);
    let c = criterion("learnable-euclidean-infonce", "temperature=0.5", "libtorch");
    let g = c.backward(&t(&x[..6], 2), &t(&x[6..], 2), &t(&x, 4)).unwrap();
    let mut failures = Vec::new();
    close("kernel", "grad_ref", &Tensor::from_slice(&both.reference).view([2, 3]), &g.grad_ref, false, &mut failures);
    close("kernel", "grad_neg", &Tensor::from_slice(&both.negative).view([4, 3]), &g.grad_neg, false, &mut failures);
    // ∂L/∂log s = s·∂L/∂s.
    close("kernel", "grad_s", &Tensor::from(both.inverse_temperature.unwrap() * 2.0), &Tensor::from(g.grad_log_inverse_temperature.unwrap()), false, &mut failures);
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    let bad = [
        (Inputs { n: 0, ..base }, "needs n, m, d >= 1"),
        (Inputs { m: 5, ..base }, "'negative' has 12 values, expected 5 x 3"),
        (Inputs { reference: &x[..5], ..base }, "'reference' has 5 values, expected 2 x 3"),
        (Inputs { scaling: Scaling::MultiplyByInverseTemperature(0.0), ..base }, "temperature must be finite and positive"),
        (Inputs { scaling: Scaling::DivideByTemperature(f32::INFINITY), ..base }, "temperature must be finite and positive"),
        (Inputs { n: usize::MAX, ..base }, "expected"),
    ];
    for (inputs, message) in bad {
        let err = fused::forward_backward(&inputs).unwrap_err();
        assert!(err.to_string().contains(message), "{err}");
        assert!(fused::forward(&inputs).is_err());
    }
    // Into the caller's buffers: the same numbers; a buffer of the wrong size is refused.
    let (mut gr, mut gp, mut gq) = (vec![0.0f32; 6], vec![0.0f32; 6], vec![0.0f32; 12]);
    let terms = fused::forward_backward_into(&base, fused::GradientsOut { reference: &mut gr, positive: &mut gp, negative: &mut gq }).unwrap();
    assert_eq!((terms.losses, &gr, &gp, &gq), (both.losses, &both.reference, &both.positive, &both.negative));
    assert_eq!(terms.inverse_temperature.map(f64::to_bits), both.inverse_temperature.map(f64::to_bits));
    let mut short_negative = vec![0.0f32; 11];
    let out = fused::GradientsOut { reference: &mut gr, positive: &mut gp, negative: &mut short_negative };
    let err = fused::forward_backward_into(&base, out).unwrap_err().to_string();
    assert!(err.contains("the gradient buffer for 'negative' has 11 values, expected 4 x 3"), "{err}");
    let short = [0.0f32; 1];
    let pre = fused::Precomputed { reference_sq: &short, negative_sq: &short, positive_similarity: &short };
    let err = fused::forward(&Inputs { precomputed: Some(pre), ..base }).unwrap_err();
    assert!(err.to_string().contains("'reference_sq' has 1 values, expected 2"), "{err}");
}

/// The same call gives the same bits every time, whichever thread runs which block: the column sums
/// are cut into fixed pieces and added in piece order. Several pieces per thread (n = 2100: 33 blocks,
/// a short last one), three threads, many calls; and the one-thread result agrees to the tolerance.
#[test]
fn results_do_not_depend_on_scheduling() {
    let (n, m, d) = (2100usize, 700usize, 5usize);
    let values = |count: usize, seed: i64| Vec::<f32>::try_from(randn(count as i64, 1, seed).flatten(0, -1)).unwrap();
    let (r, p, q) = (values(n * d, 1), values(n * d, 2), values(m * d, 3));
    for similarity in [Similarity::Dot, Similarity::Euclidean] {
        let inputs = Inputs {
            reference: &r,
            positive: &p,
            negative: &q,
            n,
            m,
            d,
            similarity,
            scaling: Scaling::DivideByTemperature(0.3),
            precomputed: None,
        };
        let bits = |g: &fused::Gradients| {
            let all = g.reference.iter().chain(&g.positive).chain(&g.negative);
            (all.map(|v| v.to_bits()).collect::<Vec<_>>(), g.losses.loss.to_bits(), g.inverse_temperature.map(f64::to_bits))
        };
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        let first = pool.install(|| fused::forward_backward(&inputs).unwrap());
        for call in 0..20 {
            let again = pool.install(|| fused::forward_backward(&inputs).unwrap());
            assert!(bits(&again) == bits(&first), "{similarity:?}: call {call} differs from the first");
        }
        let single = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap().install(|| fused::forward_backward(&inputs).unwrap());
        let tensor = |v: &[f32]| Tensor::from_slice(v);
        let mut failures = Vec::new();
        for (what, a, b) in [("grad_ref", &single.reference, &first.reference), ("grad_neg", &single.negative, &first.negative)] {
            close(&format!("{similarity:?}"), what, &tensor(a), &tensor(b), false, &mut failures);
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}
