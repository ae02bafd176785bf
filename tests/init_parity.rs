//! Initialisation parity: `cebra::manual_seed(s)` + `cebra::init(...)` draws the very numbers PyTorch
//! draws for `torch.manual_seed(s)` + `cebra.models.init(...)` (fixtures `tests/fixtures/init/`), and
//! every weight and bias lies within PyTorch's default bound ±1/sqrt(fan_in).
//!
//! One `#[test]` only: the checks use libtorch's global generator, which tests running in parallel
//! threads of one binary would share.
#![allow(clippy::neg_cmp_op_on_partial_ord)] // `!(x <= tol)` also fails on NaN
mod common;
use cebra::{init, ModelArgs};
use common::*;

const INIT_SEED: u64 = 1234;
const LABEL_NUM: i64 = 5;

/// Builds `name` the way the fixture script does and returns its state dict.
fn seeded_state_dict(name: &str, classifier: bool) -> Vec<(String, tch::Tensor)> {
    cebra::manual_seed(INIT_SEED);
    let mut model = init(name, &ModelArgs::new(7, 12, 3)).unwrap_or_else(|e| panic!("{name}: {e}"));
    if classifier {
        model
            .as_classifier_mut()
            .unwrap_or_else(|| panic!("{name} is not a classifier"))
            .set_output_num(LABEL_NUM, false)
            .unwrap();
    }
    model.state_dict()
}

fn check_fixtures(failures: &mut Vec<String>) -> usize {
    let mut paths: Vec<_> = std::fs::read_dir(fixtures().join("init")).unwrap().map(|e| e.unwrap().path()).collect();
    paths.sort();
    let mut checked = 0;
    for path in paths {
        let file_name = path.file_name().unwrap().to_string_lossy().to_string();
        let Some(stem) = file_name.strip_suffix(".safetensors") else { continue };
        let (name, classifier) = match stem.strip_suffix(".classifier") {
            Some(name) => (name, true),
            None => (stem, false),
        };
        let file = cebra::weights::read_file(&path).unwrap();
        assert_eq!(file.metadata.get("seed").map(String::as_str), Some("1234"), "{file_name}");
        let ours = seeded_state_dict(name, classifier);
        // Same keys (the file lists them in reference order in `state_dict_keys`).
        let expected_keys: Vec<String> = serde_json::from_str(&file.metadata["state_dict_keys"]).unwrap();
        let our_keys: Vec<String> = ours.iter().map(|(k, _)| k.clone()).collect();
        if our_keys != expected_keys {
            failures.push(format!("{file_name}: keys {our_keys:?}, reference {expected_keys:?}"));
            continue;
        }
        for (key, ours_t) in &ours {
            let reference = tensor(&file, key);
            if ours_t.size() != reference.size() {
                failures.push(format!("{file_name}: {key} shape {:?} vs {:?}", ours_t.size(), reference.size()));
                continue;
            }
            let diff = max_abs_diff(ours_t, reference);
            if !(diff <= 1e-7) {
                failures.push(format!("{file_name}: {key} differs by {diff:e}"));
            }
        }
        checked += 1;
    }
    checked
}

/// PyTorch's defaults: `kaiming_uniform_(a=sqrt(5))` gives weights in ±1/sqrt(fan_in), biases are
/// drawn from the same interval. Checks every parameter of every registered reference model.
fn check_bounds(failures: &mut Vec<String>) -> usize {
    let mut checked = 0;
    cebra::manual_seed(7);
    for name in cebra::get_options(None, None, true).iter().filter(|n| !n.starts_with("test-")) {
        let mut model = init(name, &ModelArgs::new(7, 12, 3)).unwrap();
        if let Some(c) = model.as_classifier_mut() {
            c.set_output_num(LABEL_NUM, false).unwrap();
        }
        let state = model.state_dict();
        for (key, t) in &state {
            // fan_in from the matching weight: (out, in[, kernel]) -> in * kernel.
            let weight_key = key.strip_suffix(".bias").map(|p| format!("{p}.weight")).unwrap_or(key.clone());
            let weight = &state.iter().find(|(k, _)| *k == weight_key).unwrap().1;
            let fan_in: i64 = weight.size()[1..].iter().product();
            let bound = 1.0 / (fan_in as f64).sqrt();
            let max = f64::try_from(t.abs().max()).unwrap();
            // float32 rounding of the bound itself.
            if !(max <= bound * (1.0 + 1e-6)) {
                failures.push(format!("{name}: {key} reaches {max}, bound 1/sqrt({fan_in}) = {bound}"));
            }
            // The draw covers the interval (a sanity check that it is not e.g. a tenth of it).
            if t.numel() >= 64 && !(max >= 0.8 * bound) {
                failures.push(format!("{name}: {key} only reaches {max} of the bound {bound}"));
            }
            let mean = f64::try_from(t.mean(tch::Kind::Double)).unwrap();
            if t.numel() >= 256 && !(mean.abs() <= 0.1 * bound) {
                failures.push(format!("{name}: {key} has mean {mean}, not centred (bound {bound})"));
            }
            checked += 1;
        }
    }
    checked
}

#[test]
fn initialisation_matches_pytorch() {
    let mut failures = Vec::new();
    let files = check_fixtures(&mut failures);
    assert_eq!(files, 31, "expected 29 init fixtures + 2 classifier fixtures");

    // The same seed gives the same model twice; a different seed a different one.
    let a = seeded_state_dict("offset10-model", false);
    let b = seeded_state_dict("offset10-model", false);
    for ((ka, ta), (_, tb)) in a.iter().zip(&b) {
        assert_eq!(max_abs_diff(ta, tb), 0.0, "reseeding must reproduce {ka}");
    }
    cebra::manual_seed(INIT_SEED + 1);
    let c = init("offset10-model", &ModelArgs::new(7, 12, 3)).unwrap().state_dict();
    assert!(max_abs_diff(&a[0].1, &c[0].1) > 0.0, "another seed must give other weights");

    let tensors = check_bounds(&mut failures);
    assert!(tensors > 1000, "only {tensors} parameter tensors checked");
    assert!(failures.is_empty(), "{} initialisation mismatches:\n{}", failures.len(), failures.join("\n"));
}
