//! Helpers shared by the integration tests: fixture paths and tensor comparison.
#![allow(dead_code)]
use cebra::weights::{read_file, TensorFile};
use std::path::PathBuf;
use tch::Tensor;

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn fixture(rel: &str) -> TensorFile {
    read_file(fixtures().join(rel)).unwrap_or_else(|e| panic!("fixture {rel}: {e}"))
}

pub fn tensor<'a>(file: &'a TensorFile, name: &str) -> &'a Tensor {
    file.tensors
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, t)| t)
        .unwrap_or_else(|| panic!("fixture has no tensor '{name}'"))
}

/// Max |a - b|, treating NaN == NaN as equal and any other NaN mismatch as infinite.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size(), "shape mismatch");
    let a = Vec::<f64>::try_from(a.to_kind(tch::Kind::Double).flatten(0, -1)).unwrap();
    let b = Vec::<f64>::try_from(b.to_kind(tch::Kind::Double).flatten(0, -1)).unwrap();
    a.iter()
        .zip(&b)
        .map(|(x, y)| {
            if x.is_nan() && y.is_nan() {
                0.0
            } else if x.is_nan() || y.is_nan() {
                f64::INFINITY
            } else {
                (x - y).abs()
            }
        })
        .fold(0.0, f64::max)
}

/// Max relative error with an absolute floor: |a-b| / max(|b|, floor).
pub fn max_rel_err(a: &Tensor, b: &Tensor, floor: f64) -> f64 {
    assert_eq!(a.size(), b.size(), "shape mismatch");
    let a = Vec::<f64>::try_from(a.to_kind(tch::Kind::Double).flatten(0, -1)).unwrap();
    let b = Vec::<f64>::try_from(b.to_kind(tch::Kind::Double).flatten(0, -1)).unwrap();
    a.iter()
        .zip(&b)
        .map(|(x, y)| if x.is_nan() || y.is_nan() { f64::INFINITY } else { (x - y).abs() / y.abs().max(floor) })
        .fold(0.0, f64::max)
}

pub fn manifest() -> serde_json::Value {
    let text = std::fs::read_to_string(fixtures().join("manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The cases of tools/reference/make_transform_fixtures.py (`tests/fixtures/transform/<case>.safetensors`).
pub const TRANSFORM_CASES: &[&str] = &[
    "offset10-model",
    "offset10-model-mse",
    "offset5-model",
    "offset15-model",
    "offset36-model-more-dropout",
    "offset10-model-mse-tanh",
    "offset1-model",
    "offset1-model-v4",
    "offset1-model-v5",
    "offset1-model-mse-clip-5-5",
    "offset1-model-mse-resnet-3layers-tanh",
    "offset1-model-mse-v2-2layers",
    "offset40-model-4x-subsample",
    "offset20-model-4x-subsample",
    "offset10-model-wide",
];

/// A tensor's values, row-major.
pub fn values(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(t.contiguous().view([-1])).unwrap()
}

/// The model of a transform fixture, with the reference's weights, and the fixture file.
pub fn transform_fixture_model(case: &str) -> (Box<dyn cebra::Model>, TensorFile) {
    let file = fixture(&format!("transform/{case}.safetensors"));
    let n = tensor(&file, "input").size()[1];
    let args = if case.ends_with("-wide") { cebra::ModelArgs::new(n, 32, 8) } else { cebra::ModelArgs::new(n, 12, 3) };
    let mut model = cebra::init(&file.metadata["name"], &args).unwrap();
    cebra::weights::load(model.as_mut(), fixtures().join(&file.metadata["weights"])).unwrap();
    (model, file)
}
