//! Weights I/O: save/load round trips, files written by Python `safetensors.torch.save_file` (the
//! fixtures), strict-load errors naming the tensor, damaged files, and `load_model` rebuilding the
//! architecture from the file's metadata.
mod common;
use cebra::weights::{self, meta};
use cebra::{init, Error, Model, ModelArgs, Options};
use common::*;
use safetensors::tensor::{Dtype, TensorView};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("cebra-weights-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn model(name: &str, options: &str, label_num: Option<i64>) -> Box<dyn Model> {
    let args = ModelArgs::new(7, 12, 3).with_options(Options::parse(options).unwrap());
    let mut m = init(name, &args).unwrap_or_else(|e| panic!("{name}: {e}"));
    if let Some(n) = label_num {
        m.as_classifier_mut().unwrap().set_output_num(n, false).unwrap();
    }
    m
}

fn input_for(model: &dyn Model) -> Tensor {
    let t = model.offset().len() + if model.is_convolutional() { 4 } else { 0 };
    Tensor::randn([3, model.num_input(), t], (Kind::Float, tch::Device::Cpu))
}

/// Every state-dict entry equal (same keys, same order, same values).
fn assert_same_state(a: &dyn Model, b: &dyn Model, what: &str) {
    let (sa, sb) = (a.state_dict(), b.state_dict());
    assert_eq!(sa.len(), sb.len(), "{what}");
    for ((ka, ta), (kb, tb)) in sa.iter().zip(&sb) {
        assert_eq!(ka, kb, "{what}");
        assert_eq!(max_abs_diff(ta, tb), 0.0, "{what}: {ka}");
    }
}

fn snapshot(model: &dyn Model) -> Vec<(String, Tensor)> {
    model.state_dict().into_iter().map(|(k, t)| (k, t.copy())).collect()
}

fn assert_unchanged(model: &dyn Model, before: &[(String, Tensor)], what: &str) {
    let after = model.state_dict();
    assert_eq!(after.len(), before.len(), "{what}");
    for ((k, a), (_, b)) in after.iter().zip(before) {
        assert_eq!(max_abs_diff(a, b), 0.0, "{what}: a failed load changed {k}");
    }
}

/// Writes raw safetensors bytes (any dtype) with the crate's own writer library.
fn write_raw(path: &Path, tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)], metadata: Option<HashMap<String, String>>) {
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(name, dtype, shape, data)| (name.to_string(), TensorView::new(*dtype, shape.clone(), data).unwrap()))
        .collect();
    std::fs::write(path, safetensors::serialize(views, metadata).unwrap()).unwrap();
}

fn f32_bytes(t: &Tensor) -> Vec<u8> {
    let v = Vec::<f32>::try_from(t.flatten(0, -1)).unwrap();
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn shape(t: &Tensor) -> Vec<usize> {
    t.size().iter().map(|&d| d as usize).collect()
}

/// The state dict of `model` as raw f32 entries, editable by the error tests.
fn raw_state(model: &dyn Model) -> Vec<(String, Dtype, Vec<usize>, Vec<u8>)> {
    model.state_dict().iter().map(|(k, t)| (k.clone(), Dtype::F32, shape(t), f32_bytes(t))).collect()
}

fn write_raw_owned(path: &Path, tensors: &[(String, Dtype, Vec<usize>, Vec<u8>)]) {
    let borrowed: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)> =
        tensors.iter().map(|(k, d, s, b)| (k.as_str(), *d, s.clone(), b.clone())).collect();
    write_raw(path, &borrowed, None);
}

#[test]
fn save_load_round_trip() {
    let dir = TempDir::new("roundtrip");
    let cases: [(&str, &str, Option<i64>); 5] = [
        ("offset10-model", "", None),
        ("offset1-model-mse-v2-3layers", "", None),
        ("offset1-model-mse-resnet-2layers-tanh", "", None),
        ("supervised1-model", "", Some(5)),
        ("offset40-model-4x-subsample", "normalize=false", None),
    ];
    for (name, options, label_num) in cases {
        let mut source = model(name, options, label_num);
        let path = dir.path(&format!("{name}.safetensors"));
        weights::save(source.as_mut(), &path).unwrap();
        // No temporary file is left next to the result.
        let leftovers: Vec<_> = std::fs::read_dir(&dir.0).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(leftovers.iter().all(|f| !f.to_string_lossy().starts_with('.')), "{leftovers:?}");
        // Every key is in the file, shared tensors under each of their keys.
        let file = weights::read_file(&path).unwrap();
        let keys: Vec<&String> = file.tensors.iter().map(|(k, _)| k).collect();
        for (key, _) in source.state_dict() {
            assert!(keys.contains(&&key), "{name}: {key} not saved");
        }
        assert_eq!(file.tensors.len(), source.state_dict().len(), "{name}");
        // A differently initialised model of the same architecture becomes identical.
        let mut target = model(name, options, label_num);
        assert!(max_abs_diff(&source.state_dict()[0].1, &target.state_dict()[0].1) > 0.0);
        weights::load(target.as_mut(), &path).unwrap();
        assert_same_state(source.as_ref(), target.as_ref(), name);
        let x = input_for(source.as_ref());
        assert_eq!(max_abs_diff(&source.forward(&x).unwrap(), &target.forward(&x).unwrap()), 0.0, "{name}");
        if label_num.is_some() {
            let (_, pa) = source.as_classifier().unwrap().forward_classifier(&x).unwrap();
            let (_, pb) = target.as_classifier().unwrap().forward_classifier(&x).unwrap();
            assert_eq!(max_abs_diff(&pa, &pb), 0.0, "{name}: prediction");
        }
        // Shared weights stay shared after a load: one unique tensor per shared module.
        assert_eq!(source.num_parameters(), target.num_parameters(), "{name}");
        assert_eq!(target.parameters().len(), source.parameters().len(), "{name}");
        // Loading keeps the parameters trainable.
        assert!(target.parameters().iter().all(Tensor::requires_grad), "{name}");
    }
}

#[test]
fn shared_weights_are_saved_once_per_key_and_stay_tied() {
    let dir = TempDir::new("tied");
    let mut source = model("offset1-model-mse-v2-3layers", "", None);
    let path = dir.path("v2.safetensors");
    weights::save(source.as_mut(), &path).unwrap();
    let file = weights::read_file(&path).unwrap();
    // net.3, net.5 and net.7 are the one shared Linear(U, U): equal values under each key.
    let get = |k: &str| tensor(&file, k);
    assert_eq!(max_abs_diff(get("net.3.weight"), get("net.5.weight")), 0.0);
    assert_eq!(max_abs_diff(get("net.3.weight"), get("net.7.weight")), 0.0);
    let mut target = model("offset1-model-mse-v2-3layers", "", None);
    weights::load(target.as_mut(), &path).unwrap();
    // Changing the tensor under one key changes it under all: they are still one tensor.
    let state = target.state_dict();
    let w3 = &state.iter().find(|(k, _)| k == "net.3.weight").unwrap().1;
    let w7 = &state.iter().find(|(k, _)| k == "net.7.weight").unwrap().1;
    tch::no_grad(|| {
        let _ = w3.shallow_clone().fill_(0.25);
    });
    assert_eq!(f64::try_from(w7.max()).unwrap(), 0.25);
}

#[test]
fn files_written_by_python_load() {
    // The fixtures are `safetensors.torch.save_file(model.state_dict())` files (metadata sorted).
    for name in ["offset10-model", "offset1-model-mse-v2-3layers", "offset1-model-mse-resnet-3layers-tanh", "supervised10-model", "offset4-model-2x-subsample"] {
        let path = fixtures().join(format!("models/{name}.safetensors"));
        let file = weights::read_file(&path).unwrap();
        assert_eq!(file.metadata["name"], name);
        let mut m = model(name, "", if name.starts_with("supervised") { Some(5) } else { None });
        weights::load(m.as_mut(), &path).unwrap();
        for (key, t) in m.state_dict() {
            assert_eq!(max_abs_diff(&t, tensor(&file, &key)), 0.0, "{name}: {key}");
        }
        let io = fixture(&format!("models/{name}.io.safetensors"));
        let out = m.forward(tensor(&io, "input")).unwrap();
        assert!(max_abs_diff(&out, tensor(&io, "output")) <= 1e-5, "{name}");
        // Not written by libcebra: no architecture metadata, so load_model refuses it clearly.
        let err = weights::load_model(&path).err().unwrap();
        assert!(matches!(&err, Error::Format(m) if m.contains(meta::ARCHITECTURE) && m.contains("not saved by libcebra")), "{err}");
    }
}

#[test]
fn float64_and_float16_files_are_converted() {
    let dir = TempDir::new("dtypes");
    let source = model("offset1-model", "", None);
    for (dtype, kind) in [(Dtype::F64, Kind::Double), (Dtype::F16, Kind::Half), (Dtype::BF16, Kind::BFloat16)] {
        let tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = source
            .state_dict()
            .iter()
            .map(|(k, t)| {
                let c = t.to_kind(kind).contiguous();
                let mut bytes = vec![0u8; c.numel() * c.kind().elt_size_in_bytes()];
                c.copy_data_u8(&mut bytes, c.numel());
                (k.clone(), dtype, shape(t), bytes)
            })
            .collect();
        let path = dir.path(&format!("{dtype:?}.safetensors"));
        write_raw_owned(&path, &tensors);
        let mut target = model("offset1-model", "", None);
        weights::load(target.as_mut(), &path).unwrap();
        let tol = if dtype == Dtype::F64 { 0.0 } else { 1e-2 };
        for ((k, a), (_, b)) in source.state_dict().iter().zip(&target.state_dict()) {
            assert_eq!(b.kind(), Kind::Float);
            assert!(max_abs_diff(a, b) <= tol, "{dtype:?} {k}");
        }
    }
}

#[test]
fn strict_load_errors_name_the_tensor_and_change_nothing() {
    let dir = TempDir::new("strict");
    let reference = model("offset1-model-mse-v2-3layers", "", None);
    let good = raw_state(reference.as_ref());
    let mut target = model("offset1-model-mse-v2-3layers", "", None);
    let before = snapshot(target.as_ref());

    let mut check = |case: &str, tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)>, needle: &str| {
        let path = dir.path(&format!("{case}.safetensors"));
        write_raw_owned(&path, &tensors);
        let err = weights::load(target.as_mut(), &path).unwrap_err();
        assert!(matches!(err, Error::Format(_)), "{case}: {err:?}");
        let text = err.to_string();
        assert!(text.contains(needle), "{case}: '{text}' lacks '{needle}'");
        assert!(text.contains(&path.display().to_string()), "{case}: '{text}' lacks the path");
        assert_unchanged(target.as_ref(), &before, case);
    };

    // Missing key: the last one, so that everything before it would be loadable.
    let mut t = good.clone();
    let (last, ..) = t.pop().unwrap();
    check("missing", t, &format!("missing tensor '{last}'"));

    // An alias of a shared tensor missing is just as much an error.
    let t: Vec<_> = good.iter().filter(|(k, ..)| k != "net.7.weight").cloned().collect();
    check("missing-alias", t, "missing tensor 'net.7.weight'");

    let mut t = good.clone();
    t.push(("net.99.weight".into(), Dtype::F32, vec![2], vec![0; 8]));
    check("extra", t, "unexpected tensor 'net.99.weight'");

    let mut t = good.clone();
    let i = t.iter().position(|(k, ..)| k == "net.5.bias").unwrap();
    t[i].2 = vec![t[i].2[0] + 1];
    t[i].3 = vec![0; t[i].2[0] * 4];
    check("shape", t, "tensor 'net.5.bias' has shape");

    let mut t = good.clone();
    let i = t.iter().position(|(k, ..)| k == "net.1.weight").unwrap();
    t[i].1 = Dtype::I32;
    check("int32", t, "tensor 'net.1.weight' has dtype I32");

    let mut t = good.clone();
    let i = t.iter().position(|(k, ..)| k == "net.1.bias").unwrap();
    t[i].1 = Dtype::U8;
    t[i].3 = vec![0; t[i].2[0]];
    check("uint8", t, "tensor 'net.1.bias' has dtype U8");

    // And the good file loads.
    let path = dir.path("good.safetensors");
    write_raw_owned(&path, &good);
    weights::load(target.as_mut(), &path).unwrap();
    assert_same_state(reference.as_ref(), target.as_ref(), "good file");
}

#[test]
fn damaged_files_are_format_errors_and_missing_files_io_errors() {
    let dir = TempDir::new("damaged");
    let mut source = model("offset10-model", "", None);
    let good = dir.path("good.safetensors");
    weights::save(source.as_mut(), &good).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let mut target = model("offset10-model", "", None);
    let before = snapshot(target.as_ref());

    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated-data", bytes[..bytes.len() - 100].to_vec()),
        ("truncated-header", bytes[..8 + header_len / 2].to_vec()),
        ("only-length", bytes[..8].to_vec()),
        ("short", bytes[..3].to_vec()),
        ("empty", Vec::new()),
        ("garbage", (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect()),
        ("text", b"this is not a safetensors file at all, just some text\n".to_vec()),
        ("huge-header-length", {
            let mut b = bytes.clone();
            b[..8].copy_from_slice(&u64::MAX.to_le_bytes());
            b
        }),
    ];
    for (case, content) in cases {
        let path = dir.path(&format!("{case}.safetensors"));
        std::fs::write(&path, content).unwrap();
        let err = weights::load(target.as_mut(), &path).unwrap_err();
        assert!(matches!(err, Error::Format(_)), "{case}: {err:?}");
        assert!(err.to_string().contains(&path.display().to_string()), "{case}: {err}");
        assert_unchanged(target.as_ref(), &before, case);
        let err = weights::load_model(&path).err().unwrap();
        assert!(matches!(err, Error::Format(_)), "{case}: {err:?}");
        assert!(weights::read_file(&path).is_err(), "{case}");
    }

    let missing = dir.path("does-not-exist.safetensors");
    for err in [weights::load(target.as_mut(), &missing).unwrap_err(), weights::load_model(&missing).err().unwrap()] {
        assert!(matches!(&err, Error::Io(m) if m.contains("does-not-exist.safetensors")), "{err:?}");
    }
    // A directory is not a file either.
    assert!(matches!(weights::load(target.as_mut(), &dir.0).unwrap_err(), Error::Io(_)));
    // Saving into a missing directory is an Io error and writes nothing.
    let err = weights::save(source.as_mut(), dir.path("no/such/dir/m.safetensors")).unwrap_err();
    assert!(matches!(err, Error::Io(_)), "{err:?}");
    assert_unchanged(target.as_ref(), &before, "after all failures");
}

#[test]
fn load_model_rebuilds_the_architecture() {
    let dir = TempDir::new("load-model");
    let cases: [(&str, &str, Option<i64>); 6] = [
        ("offset10-model", "normalize=false", None),
        ("offset10-model", "", None),
        ("offset36-model-dropout", "dropout=0.3", None),
        ("offset1-model-mse-clip-25-5", "clip_min=3;clip_max=2", None),
        ("offset1-model-mse-v2-4layers-tanh", "", None),
        ("supervised10-model", "", Some(4)),
    ];
    for (name, options, label_num) in cases {
        let mut source = model(name, options, label_num);
        let path = dir.path(&format!("{name}.safetensors"));
        weights::save(source.as_mut(), &path).unwrap();
        let file = weights::read_file(&path).unwrap();
        assert_eq!(file.metadata[meta::ARCHITECTURE], name);
        assert_eq!(file.metadata[meta::NUM_NEURONS], "7");
        assert_eq!(file.metadata[meta::NUM_UNITS], "12");
        assert_eq!(file.metadata[meta::NUM_OUTPUT], "3");
        assert_eq!(file.metadata["format"], "pt", "safetensors.torch expects format=pt");
        assert_eq!(file.metadata.get(meta::LABEL_NUM), label_num.map(|n| n.to_string()).as_ref());
        assert!(file.metadata.contains_key(meta::VERSION));

        let loaded = weights::load_model(&path).unwrap();
        assert_eq!(loaded.architecture(), source.architecture(), "{name}");
        assert_eq!(loaded.offset(), source.offset());
        assert_eq!(loaded.num_parameters(), source.num_parameters(), "{name}");
        assert_same_state(source.as_ref(), loaded.as_ref(), name);
        let x = input_for(source.as_ref());
        let (a, b) = (source.forward(&x).unwrap(), loaded.forward(&x).unwrap());
        assert_eq!(a.size(), b.size(), "{name}");
        assert_eq!(max_abs_diff(&a, &b), 0.0, "{name}");
        match label_num {
            Some(n) => {
                let head = loaded.as_classifier().unwrap();
                assert_eq!(head.label_num(), Some(n));
                let (fa, pa) = source.as_classifier().unwrap().forward_classifier(&x).unwrap();
                let (fb, pb) = loaded.as_classifier().unwrap().forward_classifier(&x).unwrap();
                assert_eq!(max_abs_diff(&fa, &fb), 0.0);
                assert_eq!(max_abs_diff(&pa, &pb), 0.0);
            }
            None => assert!(loaded.as_classifier().and_then(|c| c.label_num()).is_none()),
        }
    }
    // normalize=false really came back: outputs are not unit-norm.
    let plain = weights::load_model(dir.path("offset10-model.safetensors")).unwrap();
    let mut raw = model("offset10-model", "normalize=false", None);
    weights::save(raw.as_mut(), dir.path("raw.safetensors")).unwrap();
    let raw_loaded = weights::load_model(dir.path("raw.safetensors")).unwrap();
    assert_eq!(raw_loaded.architecture().args.options.get("normalize"), Some("false"));
    let x = Tensor::randn([4, 7, 10], (Kind::Float, tch::Device::Cpu));
    let norms = |t: Tensor| Vec::<f64>::try_from(t.to_kind(Kind::Double).norm_scalaropt_dim(2, [1i64].as_slice(), false)).unwrap();
    assert!(norms(plain.forward(&x).unwrap()).iter().all(|n| (n - 1.0).abs() < 1e-5));
    assert!(norms(raw_loaded.forward(&x).unwrap()).iter().any(|n| (n - 1.0).abs() > 1e-3));
}

#[test]
fn load_model_metadata_errors() {
    let dir = TempDir::new("metadata");
    let mut source = model("offset1-model", "", None);
    let state = raw_state(source.as_ref());
    let full = weights::model_metadata(source.as_mut());
    let write = |case: &str, edit: &dyn Fn(&mut HashMap<String, String>)| -> PathBuf {
        let mut m = full.clone();
        edit(&mut m);
        let path = dir.path(&format!("{case}.safetensors"));
        let borrowed: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)> =
            state.iter().map(|(k, d, s, b)| (k.as_str(), *d, s.clone(), b.clone())).collect();
        write_raw(&path, &borrowed, Some(m));
        path
    };
    let format_err = |path: &Path, needle: &str| {
        let err = weights::load_model(path).err().unwrap_or_else(|| panic!("{} must fail", path.display()));
        assert!(matches!(&err, Error::Format(m) if m.contains(needle)), "{}: {err:?} lacks '{needle}'", path.display());
    };
    // No metadata at all.
    let bare = dir.path("bare.safetensors");
    let borrowed: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)> = state.iter().map(|(k, d, s, b)| (k.as_str(), *d, s.clone(), b.clone())).collect();
    write_raw(&bare, &borrowed, None);
    format_err(&bare, meta::ARCHITECTURE);
    // But plain `load` into a built model works for it.
    weights::load(model("offset1-model", "", None).as_mut(), &bare).unwrap();

    format_err(&write("no-arch", &|m| { m.remove(meta::ARCHITECTURE); }), meta::ARCHITECTURE);
    format_err(&write("no-units", &|m| { m.remove(meta::NUM_UNITS); }), meta::NUM_UNITS);
    format_err(&write("bad-int", &|m| { m.insert(meta::NUM_OUTPUT.into(), "three".into()); }), "not an integer");
    format_err(&write("unknown-arch", &|m| { m.insert(meta::ARCHITECTURE.into(), "offset99-model".into()); }), "cannot be built");
    format_err(&write("bad-options", &|m| { m.insert(meta::OPTIONS.into(), "normalise=true".into()); }), "cannot be built");
    format_err(&write("bad-option-syntax", &|m| { m.insert(meta::OPTIONS.into(), "normalize".into()); }), meta::OPTIONS);
    format_err(&write("head-on-non-classifier", &|m| { m.insert(meta::LABEL_NUM.into(), "4".into()); }), "no classifier head");
    // Metadata describing a bigger model than the tensors: rejected before the model is built.
    format_err(&write("bigger-than-file", &|m| { m.insert(meta::NUM_UNITS.into(), "14".into()); }), "needs more parameters than the file holds");
    // Metadata describing a smaller model: built, then the tensor check names the mis-shaped tensor.
    format_err(&write("shape-mismatch", &|m| { m.insert(meta::NUM_UNITS.into(), "10".into()); }), "has shape");
    // The options entry may be absent (no options).
    let ok = write("no-options", &|m| { m.remove(meta::OPTIONS); });
    weights::load_model(&ok).unwrap();
}

/// Writes files for `tools/reference/check_saved.py` when `CEBRA_SAVED_DIR` is set: `<name>.safetensors`
/// (saved by `cebra::weights::save`) and `<name>.io.safetensors` (`input`, `output`, and for
/// classifiers `features` and `prediction`). Without the variable it only checks that writing works.
#[test]
fn write_files_for_the_reference_check() {
    let keep = std::env::var_os("CEBRA_SAVED_DIR").map(PathBuf::from);
    let tmp = TempDir::new("for-python");
    let dir = keep.clone().unwrap_or_else(|| tmp.0.clone());
    std::fs::create_dir_all(&dir).unwrap();
    let cases: [(&str, &str, Option<i64>); 5] = [
        ("offset10-model", "", None),
        ("offset10-model-mse", "", None),
        ("offset1-model-mse-v2-3layers-tanh", "", None),
        ("offset1-model-mse-resnet-3layers", "", None),
        ("supervised1-model", "", Some(5)),
    ];
    for (name, options, label_num) in cases {
        let mut m = model(name, options, label_num);
        let path = dir.join(format!("{name}.safetensors"));
        weights::save(m.as_mut(), &path).unwrap();
        let x = input_for(m.as_ref());
        let mut io = vec![("input".to_string(), x.shallow_clone()), ("output".to_string(), m.forward(&x).unwrap())];
        if let Some(c) = m.as_classifier() {
            let (f, p) = c.forward_classifier(&x).unwrap();
            io.push(("features".into(), f));
            io.push(("prediction".into(), p));
        }
        weights::write_file(dir.join(format!("{name}.io.safetensors")), &io, HashMap::new()).unwrap();
    }
}

/// Files whose metadata describes a huge model (found by fuzzing, fuzz/repro/weights) are rejected
/// before anything big is allocated: the model must fit in the file's own tensors.
#[test]
fn metadata_cannot_make_the_loader_allocate_beyond_the_file() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/repro/weights");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let start = std::time::Instant::now();
        let err = cebra::weights::load_model(&path).err().unwrap_or_else(|| panic!("{} must fail", path.display()));
        assert!(matches!(err, cebra::Error::Format(_) | cebra::Error::InvalidArgument(_)), "{}: {err}", path.display());
        // Generous bound: the failure is immediate, the old behaviour allocated gigabytes for seconds.
        assert!(start.elapsed().as_secs_f64() < 2.0, "{} took {:?}", path.display(), start.elapsed());
        count += 1;
    }
    assert!(count >= 5);
    let err = cebra::init("offset1-model-mse-v2-3layers", &cebra::ModelArgs::new(7, 12, 3).with_options(cebra::Options::parse("n_intermediate_layers=1000000000").unwrap())).err().unwrap();
    assert!(err.to_string().contains("'n_intermediate_layers' must be between 1 and 1000"), "{err}");
}
