//! Layer-level parity with the reference modules (`tests/fixtures/layers.safetensors`, written by
//! tools/reference/make_fixtures.py): every case of the file is built as a [`cebra::layers::Layer`]
//! holding the case's parameters and its forward output compared, NaN positions included.
#![allow(clippy::neg_cmp_op_on_partial_ord)] // `!(x <= tol)` also fails on NaN
mod common;
use cebra::layers::{Conv1d, Layer, Linear};
use cebra::weights::TensorFile;
use common::*;
use tch::Tensor;

const TOL: f64 = 1e-6;

/// A case: the layer holding the case's parameters.
fn build(file: &TensorFile, case: &str) -> Layer {
    let meta: serde_json::Value = serde_json::from_str(&file.metadata[case]).unwrap();
    let t = |k: &str| tensor(file, &format!("{case}.{k}")).shallow_clone();
    let int = |k: &str| meta[k].as_i64().unwrap_or_else(|| panic!("{case}: metadata {k}"));
    let conv = |inp, out, kernel, stride| Conv1d {
        weight: t("weight"),
        bias: t("bias"),
        in_channels: inp,
        out_channels: out,
        kernel,
        stride,
    };
    let kind = meta["layer"].as_str().unwrap();
    match kind {
        "GELU" => {
            assert_eq!(meta["approximate"], "none");
            Layer::Gelu
        }
        "Tanh" => Layer::Tanh,
        "Hardtanh" => {
            let min = meta["min_val"].as_f64().unwrap();
            let max = meta["max_val"].as_f64().unwrap();
            Layer::Hardtanh { min, max }
        }
        "Flatten" => {
            assert_eq!((int("start_dim"), int("end_dim")), (1, -1));
            Layer::Flatten
        }
        "Squeeze" => Layer::Squeeze,
        "_Norm" => {
            assert_eq!(int("dim"), 1);
            Layer::Norm
        }
        "Conv1d" => Layer::Conv1d(conv(int("in_channels"), int("out_channels"), int("kernel_size"), int("stride"))),
        "_Skip" => {
            let modules: Vec<&str> = meta["modules"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
            let inner = modules
                .iter()
                .map(|m| match *m {
                    "Conv1d(4,4,3)" => Layer::Conv1d(conv(4, 4, 3, 1)),
                    "GELU" => Layer::Gelu,
                    other => panic!("{case}: unknown module {other}"),
                })
                .collect();
            let crop = meta["crop"].as_array().unwrap();
            let crop = (crop[0].as_i64().unwrap(), crop[1].as_i64().unwrap());
            Layer::Skip { inner, crop }
        }
        "_SkipLinear" => Layer::SkipLinear(Linear {
            weight: t("weight"),
            bias: t("bias"),
            in_features: int("in_features"),
            out_features: int("out_features"),
        }),
        "_MeanAndConv" => Layer::MeanAndConv(conv(int("inp"), int("output"), int("kernel"), int("stride"))),
        other => panic!("{case}: layer type {other} has no test"),
    }
}

#[test]
fn every_layer_case_matches_the_reference() {
    let file = fixture("layers.safetensors");
    let mut cases: Vec<String> = file.metadata.keys().filter(|k| *k != "format").cloned().collect();
    cases.sort();
    // Every tensor of the file belongs to a case with metadata (nothing in the file goes untested).
    for (key, _) in &file.tensors {
        let case = key.rsplit_once('.').unwrap().0;
        assert!(cases.iter().any(|c| c == case), "tensor {key} has no case metadata");
    }
    let mut failures = Vec::new();
    for case in &cases {
        let meta: serde_json::Value = serde_json::from_str(&file.metadata[case]).unwrap();
        let layer = build(&file, case);
        let input = tensor(&file, &format!("{case}.input"));
        let expected = tensor(&file, &format!("{case}.output"));
        let out = match layer.forward(input, false) {
            Ok(out) => out,
            Err(e) => {
                failures.push(format!("{case}: {e}"));
                continue;
            }
        };
        if out.size() != expected.size() {
            failures.push(format!("{case}: shape {:?}, reference {:?}", out.size(), expected.size()));
            continue;
        }
        // NaN exactly where the reference has NaN (max_abs_diff treats any other NaN as infinite).
        let nan_ours = out.isnan();
        let nan_ref = expected.isnan();
        if !nan_ours.equal(&nan_ref) {
            failures.push(format!("{case}: NaN positions differ"));
        }
        if meta["nan"].as_bool() == Some(true) {
            assert!(bool::try_from(nan_ref.any()).unwrap(), "{case}: the reference case has NaN outputs");
        }
        let diff = max_abs_diff(&out, expected);
        if !(diff <= TOL) {
            failures.push(format!("{case}: max |ours - reference| = {diff:e}"));
        }
        // The shape arithmetic agrees with the forward pass (for time-carrying 3-D inputs; Flatten's
        // rule is the models' "one time step" rule, checked in `layer_shape_rules`).
        if input.dim() == 3 && !matches!(layer, Layer::Flatten) {
            let predicted = layer.output_time(Some(input.size()[2])).unwrap();
            let actual = if out.dim() == 3 { Some(out.size()[2]) } else { None };
            if predicted != actual {
                failures.push(format!("{case}: output_time {predicted:?}, forward gives {actual:?}"));
            }
        }
        // Training mode changes nothing for these layers (no dropout among them).
        let train = layer.forward(input, true).unwrap();
        if max_abs_diff(&out, &train) != 0.0 {
            failures.push(format!("{case}: training-mode output differs"));
        }
    }
    assert_eq!(cases.len(), 17, "cases: {cases:?}");
    assert!(failures.is_empty(), "layer mismatches:\n{}", failures.join("\n"));
}

#[test]
fn layer_shape_rules() {
    // Flatten takes one time step (or a 2-D input); a longer time axis is an error.
    assert_eq!(Layer::Flatten.output_time(Some(1)).unwrap(), None);
    assert_eq!(Layer::Flatten.output_time(None).unwrap(), None);
    assert!(Layer::Flatten.output_time(Some(3)).is_err());
    // Squeeze drops a unit time axis only.
    assert_eq!(Layer::Squeeze.output_time(Some(1)).unwrap(), None);
    assert_eq!(Layer::Squeeze.output_time(Some(4)).unwrap(), Some(4));
    // Convolutions: unpadded, strided; too short an input is an error naming the kernel.
    let zeros = |shape: &[i64]| Tensor::zeros(shape, (tch::Kind::Float, tch::Device::Cpu));
    let c = Conv1d { weight: zeros(&[3, 2, 3]), bias: zeros(&[3]), in_channels: 2, out_channels: 3, kernel: 3, stride: 2 };
    let conv = Layer::Conv1d(c.shallow_clone());
    assert_eq!(conv.output_time(Some(11)).unwrap(), Some(5));
    assert_eq!(conv.output_time(Some(3)).unwrap(), Some(1));
    let err = conv.output_time(Some(2)).unwrap_err();
    assert!(err.to_string().contains("kernel (3)"), "{err}");
    assert!(conv.output_time(None).is_err());
    assert_eq!(conv.input_channels(), Some(2));
    assert_eq!(cebra::layers::conv_output_len(8, 4, 2), Some(3));
    assert_eq!(cebra::layers::conv_output_len(3, 4, 2), None);
    // A skip whose cropped identity does not match the inner output is rejected.
    let skip = Layer::Skip { inner: vec![Layer::Conv1d(Conv1d { stride: 1, ..c })], crop: (1, 0) };
    assert!(skip.output_time(Some(9)).is_err());
    assert!(Layer::Gelu.input_channels().is_none());
}

#[test]
fn dropout1d_drops_whole_channels_in_training_only() {
    let x = Tensor::ones([8, 16, 5], (tch::Kind::Float, tch::Device::Cpu));
    let layer = Layer::Dropout1d { p: 0.5 };
    assert_eq!(max_abs_diff(&layer.forward(&x, false).unwrap(), &x), 0.0);
    let y = layer.forward(&x, true).unwrap();
    // Each (batch, channel) row is either all zero or all 1/(1-p) = 2.
    let rows = Vec::<f64>::try_from(y.to_kind(tch::Kind::Double).flatten(0, -1)).unwrap();
    let mut zero_rows = 0;
    for row in rows.chunks(5) {
        assert!(row.iter().all(|v| *v == row[0]) && (row[0] == 0.0 || row[0] == 2.0), "{row:?}");
        zero_rows += (row[0] == 0.0) as usize;
    }
    assert!(zero_rows > 0 && zero_rows < 128, "{zero_rows} of 128 channels dropped");
    let none = Layer::Dropout1d { p: 0.0 }.forward(&x, true).unwrap();
    assert_eq!(max_abs_diff(&none, &x), 0.0);
}
