//! Registry semantics (reference §1): registration order, override, deprecated aliases, duplicate
//! checks, parametrize expansion order, glob filtering, limits, thread safety and models defined
//! outside the crate.
use cebra::registry::glob_match;
use cebra::{Architecture, Error, Model, ModelArgs, ModelFactory, Offset, RegisterFlags, Registry};
use std::sync::Arc;
use tch::Tensor;

/// A model defined outside the crate: output = mean over channels, repeated `num_output` times.
struct MeanModel {
    architecture: Architecture,
}

impl Model for MeanModel {
    fn architecture(&self) -> &Architecture {
        &self.architecture
    }
    fn offset(&self) -> Offset {
        Offset::new(0, 1).unwrap()
    }
    fn num_input(&self) -> i64 {
        self.architecture.args.num_neurons
    }
    fn num_output(&self) -> i64 {
        self.architecture.args.num_output
    }
    fn is_convolutional(&self) -> bool {
        true
    }
    fn output_time(&self, time: i64) -> cebra::Result<i64> {
        Ok(time)
    }
    fn forward(&self, input: &Tensor) -> cebra::Result<Tensor> {
        Ok(input.mean_dim([1i64].as_slice(), true, None).repeat([1, self.num_output(), 1]))
    }
    fn forward_train(&self, input: &Tensor) -> cebra::Result<Tensor> {
        self.forward(input)
    }
    fn parameters(&self) -> Vec<Tensor> {
        Vec::new()
    }
    fn state_dict(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }
    fn load_state_dict(&mut self, tensors: &[(String, Tensor)]) -> cebra::Result<()> {
        cebra::model::check_state_dict(&[], tensors)
    }
    fn set_training(&mut self, _training: bool) {}
    fn is_training(&self) -> bool {
        false
    }
}

fn mean_factory() -> ModelFactory {
    Arc::new(|name: &str, args: &ModelArgs| -> cebra::Result<Box<dyn Model>> {
        Ok(Box::new(MeanModel { architecture: Architecture { name: name.into(), args: args.clone() } }))
    })
}

fn names(r: &Registry) -> Vec<String> {
    r.get_options(None, None, true)
}

#[test]
fn an_unknown_name_suggests_the_closest_ones() {
    let err = cebra::init("offset10-modle", &ModelArgs::new(3, 4, 2)).err().unwrap().to_string();
    assert!(err.contains("Did you mean 'offset10-model'"), "{err}");
    let err = cebra::init("OFFSET5-MODEL", &ModelArgs::new(3, 4, 2)).err().unwrap().to_string();
    assert!(err.contains("'offset5-model'"), "{err}");
    let err = cebra::init("completely-different", &ModelArgs::new(3, 4, 2)).err().unwrap().to_string();
    assert!(!err.contains("Did you mean"), "{err}");
}

#[test]
fn a_failed_registration_changes_nothing() {
    let r = Registry::new();
    let shared = mean_factory();
    r.register("a", mean_factory(), RegisterFlags::default()).unwrap();
    r.register("b", shared.clone(), RegisterFlags::default()).unwrap();
    // Overriding "a" with the factory already registered as "b" fails the duplicate-factory check:
    // the old "a" must still be there, in its place.
    let err = r.register("a", shared, RegisterFlags { override_existing: true, ..Default::default() }).unwrap_err();
    assert!(matches!(err, Error::AlreadyRegistered(_)), "{err}");
    assert_eq!(names(&r), ["a", "b"]);
    assert!(r.init("a", &ModelArgs::new(3, 4, 2)).is_ok());
}

#[test]
fn a_model_without_weights_refuses_a_file_with_tensors() {
    let mut model = mean_factory()("mean", &ModelArgs::new(3, 4, 2)).unwrap();
    let err = model.load_state_dict(&[("net.0.weight".to_string(), Tensor::zeros([2], (tch::Kind::Float, tch::Device::Cpu)))]).unwrap_err();
    assert!(matches!(&err, Error::Format(m) if m.contains("unexpected tensor 'net.0.weight'")), "{err}");
}

#[test]
fn order_override_and_duplicates() {
    let r = Registry::new();
    let (a, b, c) = (mean_factory(), mean_factory(), mean_factory());
    r.register("a", a.clone(), RegisterFlags::default()).unwrap();
    r.register("b", b.clone(), RegisterFlags::default()).unwrap();
    r.register("c", c, RegisterFlags::default()).unwrap();
    assert_eq!(names(&r), ["a", "b", "c"]);
    // Duplicate name.
    let err = r.register("a", mean_factory(), RegisterFlags::default()).unwrap_err();
    assert!(matches!(&err, Error::AlreadyRegistered(m) if m.contains("Name a is already registered")), "{err}");
    // Override moves the name to the end.
    r.register("a", mean_factory(), RegisterFlags { override_existing: true, ..Default::default() }).unwrap();
    assert_eq!(names(&r), ["b", "c", "a"]);
    // The same factory under a second name needs the deprecated flag.
    let err = r.register("b-alias", b.clone(), RegisterFlags::default()).unwrap_err();
    assert!(matches!(&err, Error::AlreadyRegistered(m) if m.contains("'b-alias'") && m.contains("'b'")), "{err}");
    r.register("b-alias", b, RegisterFlags { deprecated: true, ..Default::default() }).unwrap();
    assert_eq!(names(&r), ["b", "c", "a", "b-alias"]);
    // Deprecated aliases build silently.
    assert_eq!(r.init("b-alias", &ModelArgs::new(3, 4, 2)).unwrap().architecture().name, "b-alias");
    // Unknown names and unregister.
    let err = r.init("nope", &ModelArgs::new(3, 4, 2)).err().unwrap();
    assert!(err.to_string().starts_with("name is nope, not found in options."), "{err}");
    assert!(err.to_string().contains("`cebra list`"), "{err}");
    r.unregister("c").unwrap();
    assert!(matches!(r.unregister("c"), Err(Error::UnknownName(_))));
    assert!(matches!(r.register("", mean_factory(), RegisterFlags::default()), Err(Error::InvalidArgument(_))));
}

#[test]
fn parametrize_expands_last_key_fastest_and_lists_families_once() {
    let r = Registry::new();
    r.register("plain", mean_factory(), RegisterFlags::default()).unwrap();
    r.parametrize("fam-{x}-{y}", &[("x", vec!["1".into(), "2".into()]), ("y", vec!["a".into(), "b".into(), "c".into()])], mean_factory()).unwrap();
    assert_eq!(names(&r), ["plain", "fam-1-a", "fam-1-b", "fam-1-c", "fam-2-a", "fam-2-b", "fam-2-c"]);
    assert_eq!(r.get_options(None, None, false), ["plain", "fam-1-a"]);
    // Filtering happens after the family reduction, as in the reference.
    assert!(r.get_options(Some("fam-2-b"), None, false).is_empty());
    // Each generated name builds with its keyword defaults; the caller's options win for that call only.
    let m = r.init("fam-2-b", &ModelArgs::new(3, 4, 2)).unwrap();
    assert_eq!(m.architecture().args.options.get("x"), Some("2"));
    let m = r.init("fam-2-b", &ModelArgs::new(3, 4, 2).with_options(cebra::Options::parse("x=9").unwrap())).unwrap();
    assert_eq!(m.architecture().args.options.get("x"), Some("9"));
    let m = r.init("fam-2-b", &ModelArgs::new(3, 4, 2)).unwrap();
    assert_eq!(m.architecture().args.options.get("x"), Some("2"), "no sticky keyword arguments");
}

#[test]
fn glob_and_limit_follow_fnmatch_and_python_slicing() {
    assert!(glob_match("offset1*", "offset10-model"));
    assert!(glob_match("offset[15]-model", "offset5-model"));
    assert!(!glob_match("offset[!15]-model", "offset5-model"));
    assert!(glob_match("offset[0-9]-model", "offset4-model"));
    assert!(glob_match("?ffset5-model", "offset5-model"));
    assert!(!glob_match("OFFSET1*", "offset1-model"), "case-sensitive");
    assert!(!glob_match("offset1", "offset1-model"), "whole name");
    assert!(glob_match("*-*-*", "a-b-c"));
    assert!(glob_match("a[", "a["), "an unclosed bracket is literal");
    let all = cebra::get_options(None, None, true);
    assert_eq!(cebra::get_options(None, Some(3), true), ["offset10-model", "offset10-model-mse", "offset5-model"]);
    assert!(cebra::get_options(None, Some(0), true).is_empty());
    assert_eq!(cebra::get_options(None, Some(-1), true).len(), all.len() - 1);
    assert_eq!(cebra::get_options(Some("*resnet*"), Some(2), true), ["offset1-model-mse-resnet-1layers-tanh", "offset1-model-mse-resnet-1layers"]);
}

#[test]
fn outside_models_register_globally() {
    cebra::register("test-mean-model", mean_factory(), RegisterFlags::default()).unwrap();
    assert!(cebra::get_options(Some("test-*"), None, true).contains(&"test-mean-model".to_string()));
    let model = cebra::init("test-mean-model", &ModelArgs::new(3, 4, 2)).unwrap();
    let x = Tensor::ones([1, 3, 5], (tch::Kind::Float, tch::Device::Cpu));
    assert_eq!(model.forward(&x).unwrap().size(), [1, 2, 5]);
    cebra::models().unregister("test-mean-model").unwrap();
}

#[test]
fn concurrent_use_keeps_the_listing_consistent() {
    let r = Arc::new(Registry::new());
    r.register("base", mean_factory(), RegisterFlags::default()).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let r = r.clone();
            std::thread::spawn(move || {
                for i in 0..200 {
                    let name = format!("t{t}-{i}");
                    r.register(&name, mean_factory(), RegisterFlags::default()).unwrap();
                    assert_eq!(r.get_options(None, None, true)[0], "base");
                    r.init(&name, &ModelArgs::new(2, 2, 2)).unwrap();
                    r.unregister(&name).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(names(&r), ["base"]);
}

#[test]
fn inference_builds_no_graph_and_training_does() {
    let model = cebra::init("offset10-model", &ModelArgs::new(4, 8, 3)).unwrap();
    let x = Tensor::randn([2, 4, 10], (tch::Kind::Float, tch::Device::Cpu));
    assert!(!model.forward(&x).unwrap().requires_grad());
    assert!(model.forward_train(&x).unwrap().requires_grad());
}

#[test]
fn learnable_criterion_saves_and_loads_with_the_model() {
    use cebra::criterions::Criterion;
    use cebra::weights::{load_with_criterion, save_with_criterion};
    let model = cebra::init("offset10-model-mse", &ModelArgs::new(4, 8, 3)).unwrap();
    let criterion = Criterion::new("learnable-euclidean-infonce", &cebra::Options::parse("temperature=0.3;min_temperature=0.01").unwrap()).unwrap();
    // Move the learned temperature away from its initial value (as training would), so that the round
    // trip shows the state, not the options, comes back: exp(-0.7) ≈ 0.497 instead of 0.3.
    let _ = tch::no_grad(|| criterion.parameters()[0].fill_(-0.7f64));
    let trained = criterion.temperature();
    assert!((trained - 0.3).abs() > 0.1, "the temperature was not changed: {trained}");
    let dir = std::env::temp_dir().join(format!("cebra-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("with-criterion.safetensors");
    save_with_criterion(model.as_ref(), &criterion, &path).unwrap();
    let (loaded, restored) = load_with_criterion(&path).unwrap();
    assert_eq!(restored.name(), "learnable-euclidean-infonce");
    assert!((restored.temperature() - trained).abs() < 1e-6, "{} != {trained}", restored.temperature());
    assert_eq!(restored.min_temperature(), Some(0.01));
    let x = Tensor::randn([2, 4, 12], (tch::Kind::Float, tch::Device::Cpu));
    assert_eq!(f64::try_from((model.forward(&x).unwrap() - loaded.forward(&x).unwrap()).abs().max()).unwrap(), 0.0);
    // A plain model file has no criterion.
    cebra::weights::save(model.as_ref(), dir.join("plain.safetensors")).unwrap();
    assert!(matches!(load_with_criterion(dir.join("plain.safetensors")), Err(Error::Format(_))));
    std::fs::remove_dir_all(&dir).unwrap();
}
