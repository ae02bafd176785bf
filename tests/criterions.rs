//! Every criterion against the reference fixtures (tools/reference/make_fixtures.py): the three
//! outputs and all gradients, plus the similarity and infonce free functions.
mod common;
use cebra::criterions::{dot_similarity, euclidean_similarity, infonce, Criterion};
use cebra::Options;
use common::*;

/// Per element |ours - ref| ≤ max(1e-6, 1e-5·|ref|): relative error 1e-5, absolute 1e-6 near zero.
/// The "extreme" cases (norms ~1e3, similarities ~1e6) are compared relative to the tensor's largest
/// magnitude, since float32 itself only resolves their elements to ~1e-7 of that.
fn close(name: &str, what: &str, ours: &tch::Tensor, reference: &tch::Tensor, failures: &mut Vec<String>) {
    assert_eq!(ours.size(), reference.size(), "{name}: {what} shape");
    let a = Vec::<f64>::try_from(ours.to_kind(tch::Kind::Double).flatten(0, -1)).unwrap();
    let b = Vec::<f64>::try_from(reference.to_kind(tch::Kind::Double).flatten(0, -1)).unwrap();
    let largest = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let mut worst = 0.0f64;
    for (x, y) in a.iter().zip(&b) {
        let allowed = if name.contains("extreme") { (1e-5 * largest).max(1e-6) } else { (1e-5 * y.abs()).max(1e-6) };
        let excess = (x - y).abs() / allowed;
        if excess.is_nan() || excess > 1.0 {
            worst = worst.max(if excess.is_nan() { f64::INFINITY } else { excess });
        }
    }
    if worst > 0.0 {
        failures.push(format!("{name}: {what} exceeds the tolerance by a factor {worst:.3}"));
    }
}

#[test]
fn every_criterion_case_matches_the_reference() {
    // The manifest lists every case the fixture script wrote, so a vanished file fails here.
    let cases: Vec<String> = manifest()["criterion_cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert!(!cases.is_empty(), "the manifest lists no criterion case");
    let mut failures = Vec::new();
    for case in &cases {
        let case = case.clone();
        let file = cebra::weights::read_file(fixtures().join(format!("criterions/{case}.safetensors")))
            .unwrap_or_else(|e| panic!("criterion case {case}: {e}"));
        let criterion_name = &file.metadata["criterion"];
        let options = Options::parse(&file.metadata["options"]).unwrap();
        let mut criterion = Criterion::new(criterion_name, &options).unwrap();
        let t = |k: &str| tensor(&file, k);
        let expected_temperature: f64 = file.metadata["temperature"].parse().unwrap();
        if (criterion.temperature() - expected_temperature).abs() > 1e-6 * expected_temperature {
            failures.push(format!("{case}: temperature {} vs {expected_temperature}", criterion.temperature()));
        }
        if criterion.is_learnable() {
            let ours = &criterion.state_dict()[0].1;
            close(&case, "log_inverse_temperature", ours, t("log_inverse_temperature"), &mut failures);
        }
        let out = criterion.forward(t("ref"), t("pos"), t("neg")).unwrap();
        close(&case, "loss", &out.loss, t("loss"), &mut failures);
        close(&case, "align", &out.align, t("align"), &mut failures);
        close(&case, "uniform", &out.uniform, t("uniform"), &mut failures);
        let grads = criterion.backward(t("ref"), t("pos"), t("neg")).unwrap();
        close(&case, "grad_ref", &grads.grad_ref, t("grad_ref"), &mut failures);
        close(&case, "grad_pos", &grads.grad_pos, t("grad_pos"), &mut failures);
        close(&case, "grad_neg", &grads.grad_neg, t("grad_neg"), &mut failures);
        if criterion.is_learnable() {
            let g = tch::Tensor::from(grads.grad_log_inverse_temperature.unwrap() as f32);
            close(&case, "grad_log_inverse_temperature", &g, t("grad_log_inverse_temperature"), &mut failures);
        } else {
            assert!(grads.grad_log_inverse_temperature.is_none());
        }
        // Loading a state replaces the learnable temperature (log_inverse_temperature = 0.25 gives
        // temperature exp(-0.25), unless min_temperature clamps it); other criterions have no state and
        // refuse any tensor.
        let state = vec![("log_inverse_temperature".to_string(), tch::Tensor::from(0.25f32))];
        if criterion.is_learnable() {
            criterion.load_state_dict(&state).unwrap();
            let expected = (-0.25f64).exp().max(criterion.min_temperature().unwrap_or(0.0));
            if (criterion.temperature() - expected).abs() > 1e-6 {
                failures.push(format!("{case}: loaded temperature {} != {expected}", criterion.temperature()));
            }
        } else {
            assert!(criterion.state_dict().is_empty(), "{case}");
            assert!(criterion.load_state_dict(&state).is_err(), "{case}: a stateless criterion accepted a tensor");
        }
    }
    assert!(failures.is_empty(), "criterion mismatches:\n{}", failures.join("\n"));
}

#[test]
fn similarities_and_infonce_match_the_reference() {
    let file = fixture("criterions/similarity.safetensors");
    let mut cases: Vec<String> = file.tensors.iter().filter_map(|(k, _)| k.strip_suffix(".ref").map(String::from)).collect();
    cases.sort();
    assert!(cases.len() >= 3);
    let mut failures = Vec::new();
    for case in cases {
        let t = |k: &str| tensor(&file, &format!("{case}.{k}"));
        let (dp, dn) = dot_similarity(t("ref"), t("pos"), t("neg")).unwrap();
        close(&case, "dot_pos", &dp, t("dot_pos"), &mut failures);
        close(&case, "dot_neg", &dn, t("dot_neg"), &mut failures);
        let (ep, en) = euclidean_similarity(t("ref"), t("pos"), t("neg")).unwrap();
        close(&case, "euclidean_pos", &ep, t("euclidean_pos"), &mut failures);
        close(&case, "euclidean_neg", &en, t("euclidean_neg"), &mut failures);
        let (l, a, u) = infonce(&dp, &dn).unwrap();
        close(&case, "infonce_loss", &l, t("infonce_loss"), &mut failures);
        close(&case, "infonce_align", &a, t("infonce_align"), &mut failures);
        close(&case, "infonce_uniform", &u, t("infonce_uniform"), &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn aliases_and_listing() {
    let names = cebra::criterions::get_options(None, None);
    assert_eq!(names.len(), 7);
    assert_eq!(cebra::criterions::get_options(Some("learnable-*"), None), ["learnable-cosine-infonce", "learnable-euclidean-infonce"]);
    assert_eq!(cebra::criterions::get_options(None, Some(-5)).len(), 2);
    let r = tch::Tensor::randn([5, 3], (tch::Kind::Float, tch::Device::Cpu));
    let (p, n) = (r.randn_like(), r.randn_like());
    for (alias, full) in [("infonce", "fixed-cosine-infonce"), ("infomse", "fixed-euclidean-infonce")] {
        let o = Options::parse("temperature=0.3").unwrap();
        let a = Criterion::new(alias, &o).unwrap().forward(&r, &p, &n).unwrap();
        let b = Criterion::new(full, &o).unwrap().forward(&r, &p, &n).unwrap();
        assert_eq!(max_abs_diff(&a.loss, &b.loss), 0.0);
    }
}

#[test]
fn bad_criterion_arguments_are_clear_errors() {
    let cases = [
        ("nope", "", "criterion 'nope' is not known"),
        ("infonce", "temperature=0", "'temperature' must be positive"),
        ("infonce", "temperature=-1", "'temperature' must be positive"),
        ("infonce", "min_temperature=0.1", "unknown option 'min_temperature'"),
        ("nce", "reduce=max", "'reduce' must be 'mean' or 'sum'"),
        ("learnable-cosine-infonce", "min_temperature=-0.1", "'min_temperature' must be positive"),
        ("fixed-cosine-infonce", "temperature=abc", "'temperature' must be a finite number"),
    ];
    for (name, opts, message) in cases {
        let err = Criterion::new(name, &Options::parse(opts).unwrap()).unwrap_err();
        assert!(err.to_string().contains(message), "{name} {opts}: {err}");
    }
    let c = Criterion::new("infonce", &Options::new()).unwrap();
    let z = |r: i64, d: i64| tch::Tensor::zeros([r, d], (tch::Kind::Float, tch::Device::Cpu));
    assert!(matches!(c.forward(&z(3, 2), &z(4, 2), &z(3, 2)), Err(cebra::Error::ShapeMismatch(_))));
    assert!(matches!(c.forward(&z(3, 2), &z(3, 2), &z(3, 5)), Err(cebra::Error::ShapeMismatch(_))));
    // n != m is allowed, as in the reference.
    assert_eq!(c.forward(&z(3, 2), &z(3, 2), &z(7, 2)).unwrap().loss.size(), Vec::<i64>::new());
}

#[test]
fn small_temperatures_and_large_norms_stay_finite() {
    let r = tch::Tensor::randn([64, 8], (tch::Kind::Float, tch::Device::Cpu)) * 1e3;
    let (p, n) = (r.randn_like() * 1e3, r.randn_like() * 1e3);
    for name in ["fixed-cosine-infonce", "fixed-euclidean-infonce", "learnable-cosine-infonce", "learnable-euclidean-infonce"] {
        let c = Criterion::new(name, &Options::parse("temperature=0.001").unwrap()).unwrap();
        let out = c.forward(&r, &p, &n).unwrap();
        assert!(f64::try_from(&out.loss).unwrap().is_finite(), "{name}");
        let g = c.backward(&r, &p, &n).unwrap();
        assert!(g.loss.is_finite() && bool::try_from(g.grad_ref.isfinite().all()).unwrap(), "{name}");
    }
}
