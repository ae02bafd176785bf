//! Parity of every registered model with the reference (fixtures from tools/reference/make_fixtures.py
//! and the reference's own fingerprint table), plus registry semantics and model errors.
mod common;
use cebra::{init, Error, Model, ModelArgs, Options};
use common::*;
use tch::{Kind, Tensor};

const TOL: f64 = 1e-5;

fn fixture_model(name: &str) -> Box<dyn Model> {
    let mut model = init(name, &ModelArgs::new(7, 12, 3)).unwrap_or_else(|e| panic!("{name}: {e}"));
    if let Some(c) = model.as_classifier_mut() {
        c.set_output_num(5, false).unwrap();
    }
    cebra::weights::load(model.as_mut(), fixtures().join(format!("models/{name}.safetensors")))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    model
}

#[test]
fn registry_lists_the_reference_names_in_order() {
    let manifest = manifest();
    let names: Vec<String> = serde_json::from_value(manifest["names"].clone()).unwrap();
    assert_eq!(names.len(), 147);
    assert_eq!(cebra::get_options(None, None, true)[..147], names[..]);
    let unexpanded: Vec<String> = serde_json::from_value(manifest["names_unexpanded"].clone()).unwrap();
    assert_eq!(unexpanded.len(), 29);
    assert_eq!(cebra::get_options(None, None, false)[..29], unexpanded[..]);
}

#[test]
fn registry_queries_match_the_reference() {
    for query in manifest()["queries"].as_array().unwrap() {
        let pattern = query["pattern"].as_str();
        let limit = query["limit"].as_i64().map(|l| l as isize);
        let expand = query["expand"].as_bool().unwrap();
        let expected: Vec<String> = serde_json::from_value(query["result"].clone()).unwrap();
        let got = cebra::get_options(pattern, limit, expand);
        // Other tests may register extra names at the end; the reference names come first.
        let got: Vec<String> = got.into_iter().filter(|n| !n.starts_with("test-")).collect();
        assert_eq!(got, expected, "query {query}");
    }
}

#[test]
fn every_model_matches_reference_output() {
    let names = cebra::get_options(None, None, true);
    let mut failures = Vec::new();
    let mut checked = 0;
    for name in names.iter().filter(|n| !n.starts_with("test-")) {
        let io = fixture(&format!("models/{name}.io.safetensors"));
        let model = fixture_model(name);
        let input = tensor(&io, "input");
        let result = if model.as_classifier().is_some() {
            let (features, prediction) = model.as_classifier().unwrap().forward_classifier(input).unwrap();
            let net = model.forward(input).unwrap();
            [
                max_abs_diff(&features, tensor(&io, "features")),
                max_abs_diff(&prediction, tensor(&io, "prediction")),
                max_abs_diff(&net, tensor(&io, "output")),
            ]
            .into_iter()
            .fold(0.0, f64::max)
        } else {
            match model.forward(input) {
                Ok(out) if out.size() == tensor(&io, "output").size() => max_abs_diff(&out, tensor(&io, "output")),
                Ok(out) => {
                    failures.push(format!("{name}: shape {:?}", out.size()));
                    continue;
                }
                Err(e) => {
                    failures.push(format!("{name}: {e}"));
                    continue;
                }
            }
        };
        if result.is_nan() || result > TOL {
            failures.push(format!("{name}: max |ours - reference| = {result:e}"));
        }
        checked += 1;
    }
    assert!(failures.is_empty(), "{} of {} models differ from the reference:\n{}", failures.len(), names.len(), failures.join("\n"));
    assert_eq!(checked, 147);
}

#[test]
fn model_properties_match_the_reference() {
    for name in cebra::get_options(None, None, true).iter().filter(|n| !n.starts_with("test-")) {
        let io = fixture(&format!("models/{name}.io.safetensors"));
        let meta = |k: &str| io.metadata[k].clone();
        let model = fixture_model(name);
        let offset = model.offset();
        assert_eq!(offset.left.to_string(), meta("offset_left"), "{name}");
        assert_eq!(offset.right.to_string(), meta("offset_right"), "{name}");
        assert_eq!(model.resample_factor().to_string(), meta("resample_factor"), "{name}");
        assert_eq!(model.is_convolutional().to_string(), meta("convolutional"), "{name}");
        let (total, trainable) = model.num_parameters();
        assert_eq!(total.to_string(), meta("num_parameters_total"), "{name}");
        assert_eq!(trainable.to_string(), meta("num_parameters_trainable"), "{name}");
        assert_eq!(model.num_input(), 7);
        assert_eq!(model.num_output(), 3);
        // Exactly the models whose fixture has a classifier output expose the classifier interface.
        let has_head_outputs = io.tensors.iter().any(|(k, _)| k == "prediction");
        assert_eq!(model.as_classifier().is_some(), has_head_outputs, "{name}");
    }
}

/// The reference's own table (N=10, U=16, O=4): state-dict keys and shapes, tied keys, unique parameter
/// counts, and the deterministic fingerprint forward pass.
#[test]
fn fingerprints_match_the_reference_table() {
    let text = std::fs::read_to_string(fixtures().join("reference-models.json")).unwrap();
    let table: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut failures = Vec::new();
    for record in table["models"].as_array().unwrap() {
        let name = record["name"].as_str().unwrap();
        let mut model = init(name, &ModelArgs::new(10, 16, 4)).unwrap();
        let classifier = record["classifier_model"].as_bool().unwrap();
        if classifier {
            model.as_classifier_mut().unwrap().set_output_num(3, false).unwrap();
        }
        let sd_field = if classifier { "state_dict_after_set_output_num_3" } else { "state_dict" };
        let expected: Vec<(String, Vec<i64>)> = record[sd_field]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::from_value(v.clone()).unwrap()))
            .collect();
        let ours = model.state_dict_shapes();
        assert_eq!(ours, expected, "{name}: state dict keys/shapes");
        let unique: i64 = record["num_unique_parameters"].as_i64().unwrap();
        if !classifier {
            assert_eq!(model.num_parameters().0, unique, "{name}: unique parameters");
        }
        let tied = record["tied_state_dict_keys"].as_object().unwrap();
        // Fill rule of the table: w[i] = 0.3 sin(1.3 i + 0.7 j + 0.5); aliases keep their first key's value.
        let mut filled: Vec<(String, Tensor)> = Vec::new();
        for (j, (key, shape)) in expected.iter().enumerate() {
            let value = match tied.get(key) {
                Some(first) => filled.iter().find(|(k, _)| k == first.as_str().unwrap()).unwrap().1.shallow_clone(),
                None => {
                    let numel: i64 = shape.iter().product();
                    let i = Tensor::arange(numel, (Kind::Double, tch::Device::Cpu));
                    ((i * 1.3 + 0.7 * j as f64 + 0.5).sin() * 0.3).to_kind(Kind::Float).reshape(shape.as_slice())
                }
            };
            filled.push((key.clone(), value));
        }
        model.load_state_dict(&filled).unwrap();
        let shape: Vec<i64> = serde_json::from_value(record["fingerprint"]["input_shape"].clone()).unwrap();
        let (b, c, t) = (
            Tensor::arange(shape[0], (Kind::Double, tch::Device::Cpu)).view([-1, 1, 1]),
            Tensor::arange(shape[1], (Kind::Double, tch::Device::Cpu)).view([1, -1, 1]),
            Tensor::arange(shape[2], (Kind::Double, tch::Device::Cpu)).view([1, 1, -1]),
        );
        let x = (b * 0.9 + c * 0.4 + t * 0.25 + 0.1).sin().to_kind(Kind::Float);
        let out: Vec<f64> = if classifier {
            let (f, p) = model.as_classifier().unwrap().forward_classifier(&x).unwrap();
            let mut v = Vec::<f64>::try_from(f.to_kind(Kind::Double).flatten(0, -1)).unwrap();
            v.extend(Vec::<f64>::try_from(p.to_kind(Kind::Double).flatten(0, -1)).unwrap());
            v
        } else {
            Vec::<f64>::try_from(model.forward(&x).unwrap().to_kind(Kind::Double).flatten(0, -1)).unwrap()
        };
        let reference = record["fingerprint"]["output_float32"].clone();
        // Classifier records hold [features, prediction].
        let flat: Vec<f64> = if classifier {
            serde_json::from_value::<Vec<Vec<f64>>>(reference).unwrap().concat()
        } else {
            serde_json::from_value(reference).unwrap()
        };
        if out.len() != flat.len() {
            failures.push(format!("{name}: {} outputs, reference {}", out.len(), flat.len()));
            continue;
        }
        let diff = out.iter().zip(&flat).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        if diff.is_nan() || diff > TOL {
            failures.push(format!("{name}: max diff {diff:e}"));
        }
    }
    assert!(failures.is_empty(), "fingerprint mismatches:\n{}", failures.join("\n"));
}

#[test]
fn shared_keys_load_last_alias_wins() {
    for name in ["offset1-model-mse-v2-3layers", "offset1-model-mse-resnet-3layers-tanh"] {
        let mut model = init(name, &ModelArgs::new(7, 12, 3)).unwrap();
        cebra::weights::load(model.as_mut(), fixtures().join(format!("models/tied-{name}.safetensors"))).unwrap();
        let io = fixture(&format!("models/tied-{name}.io.safetensors"));
        let out = model.forward(tensor(&io, "input")).unwrap();
        assert!(max_abs_diff(&out, tensor(&io, "output")) <= TOL, "{name}");
    }
}

#[test]
fn wrong_inputs_are_clear_errors() {
    let model = init("offset10-model", &ModelArgs::new(7, 12, 3)).unwrap();
    let err = model.forward(&Tensor::zeros([2, 6, 20], (Kind::Float, tch::Device::Cpu))).unwrap_err();
    assert!(matches!(&err, Error::ShapeMismatch(m) if m.contains("7 input channels")), "{err}");
    let err = model.forward(&Tensor::zeros([2, 7, 9], (Kind::Float, tch::Device::Cpu))).unwrap_err();
    assert!(matches!(&err, Error::ShapeMismatch(m) if m.contains("at least 10 time steps")), "{err}");
    let mlp = init("offset1-model", &ModelArgs::new(7, 12, 3)).unwrap();
    let err = mlp.forward(&Tensor::zeros([2, 7, 6], (Kind::Float, tch::Device::Cpu))).unwrap_err();
    assert!(
        matches!(&err, Error::ShapeMismatch(m) if m.contains("not convolutional") && m.contains("exactly 1 time step ")),
        "{err}"
    );
    // A 2-D (batch, neurons) input is accepted by the flattening models, as in the reference.
    assert_eq!(mlp.forward(&Tensor::zeros([2, 7], (Kind::Float, tch::Device::Cpu))).unwrap().size(), [2, 3]);
    let two_x = init("offset4-model-2x-subsample", &ModelArgs::new(7, 12, 3)).unwrap();
    for (t, ok) in [(3, false), (4, true), (5, true), (6, false)] {
        assert_eq!(two_x.forward(&Tensor::zeros([1, 7, t], (Kind::Float, tch::Device::Cpu))).is_ok(), ok, "T={t}");
    }
    let four_x = init("offset40-model-4x-subsample", &ModelArgs::new(7, 12, 3)).unwrap();
    for (t, out) in [(40, 1), (43, 1), (44, 2), (100, 16)] {
        assert_eq!(four_x.output_time(t).unwrap(), out, "T={t}");
    }
}

#[test]
fn constructor_errors_follow_the_reference() {
    let cases: [(&str, ModelArgs, &str); 6] = [
        ("offset10-model", ModelArgs::new(10, 0, 4), "Hidden dimension needs to be at least 1, but got 0."),
        ("offset1-model", ModelArgs::new(10, 1, 4), "Number of hidden units needs to be at least 2, but got 1."),
        ("offset5-model", ModelArgs::new(0, 16, 4), "Input dimension needs to be at least 1, but got 0."),
        ("offset5-model", ModelArgs::new(10, 16, 0), "Output dimension needs to be at least 1, but got 0."),
        ("nope", ModelArgs::new(10, 16, 4), "name is nope, not found in options"),
        ("offset10-model", ModelArgs::new(10, 16, 4).with_options(Options::new().with("normalise", "true")), "unknown option 'normalise'"),
    ];
    for (name, args, message) in cases {
        let err = init(name, &args).err().unwrap_or_else(|| panic!("{name} {args:?} must fail"));
        assert!(err.to_string().contains(message), "{name}: '{err}' lacks '{message}'");
    }
    assert!(matches!(init("nope", &ModelArgs::new(1, 2, 1)), Err(Error::UnknownName(_))));
    let bad = Options::new().with("clip_min", "-5").with("clip_max", "-6");
    assert!(init("offset1-model-mse-clip-5-5", &ModelArgs::new(3, 4, 2).with_options(bad)).is_err());
}

#[test]
fn options_change_the_architecture() {
    let norm = init("offset10-model", &ModelArgs::new(7, 12, 3)).unwrap();
    let no_norm = init("offset10-model", &ModelArgs::new(7, 12, 3).with_options(Options::parse("normalize=false").unwrap())).unwrap();
    let x = Tensor::randn([2, 7, 10], (Kind::Float, tch::Device::Cpu));
    let n: Vec<f64> = Vec::try_from(norm.forward(&x).unwrap().to_kind(Kind::Double).norm_scalaropt_dim(2, [1i64].as_slice(), false)).unwrap();
    assert!(n.iter().all(|v| (v - 1.0).abs() < 1e-5), "{n:?}");
    assert_eq!(no_norm.forward(&x).unwrap().size(), [2, 3]);
    // Keyword arguments do not stick to a parametrized name between calls (unlike the reference).
    let a = init("offset1-model-mse-clip-5-5", &ModelArgs::new(3, 4, 2).with_options(Options::parse("clip_min=3").unwrap())).unwrap();
    let b = init("offset1-model-mse-clip-5-5", &ModelArgs::new(3, 4, 2)).unwrap();
    let (na, nb) = (a.architecture().args.options.get("clip_min").map(String::from), b.architecture().args.options.get("clip_min").map(String::from));
    assert_eq!(na.as_deref(), Some("3"));
    assert_eq!(nb.as_deref(), Some("5"));
}

#[test]
fn dropout_is_active_only_in_training() {
    let mut model = init("offset36-model-more-dropout", &ModelArgs::new(7, 12, 3).with_options(Options::parse("dropout=0.5").unwrap())).unwrap();
    let x = Tensor::randn([4, 7, 40], (Kind::Float, tch::Device::Cpu));
    let a = model.forward(&x).unwrap();
    assert!(max_abs_diff(&a, &model.forward(&x).unwrap()) == 0.0, "eval mode is deterministic");
    model.set_training(true);
    let b = model.forward(&x).unwrap();
    assert!(max_abs_diff(&a, &b) > 1e-3, "training mode drops channels");
    model.set_training(false);
    assert!(max_abs_diff(&a, &model.forward(&x).unwrap()) == 0.0);
}

#[test]
fn classifier_head_follows_the_reference() {
    let mut model = init("supervised1-model", &ModelArgs::new(7, 12, 3)).unwrap();
    let x = Tensor::randn([2, 7, 1], (Kind::Float, tch::Device::Cpu));
    let err = model.as_classifier().unwrap().forward_classifier(&x).unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch(_)), "{err}");
    model.as_classifier_mut().unwrap().set_output_num(4, false).unwrap();
    let err = model.as_classifier_mut().unwrap().set_output_num(4, false).unwrap_err();
    assert_eq!(err.to_string(), "classifier is already initialized.");
    model.as_classifier_mut().unwrap().set_output_num(6, true).unwrap();
    let (f, p) = model.as_classifier().unwrap().forward_classifier(&x).unwrap();
    assert_eq!((f.size(), p.size()), (vec![2, 3], vec![2, 6]));
    assert!(f64::try_from(f.min()).unwrap() >= 0.0, "features are post-ReLU");
    let keys: Vec<String> = model.state_dict().into_iter().map(|(k, _)| k).collect();
    assert_eq!(&keys[keys.len() - 2..], ["classifier.weight", "classifier.bias"]);
    assert!(init("offset10-model", &ModelArgs::new(7, 12, 3)).unwrap().as_classifier().is_none());
}
