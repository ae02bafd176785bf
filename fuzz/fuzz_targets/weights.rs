//! Fuzz target `weights`: the `.safetensors` loader on arbitrary bytes.
//!
//! * `weights::parse` on the bytes; when it succeeds, `Model::load_state_dict` on an
//!   `offset10-model(7, 12, 3)` and an `offset1-model-mse-v2-3layers(7, 12, 3)` (tied weights);
//! * through the C ABI, with the bytes written to a file: `cebra_model_load` into an
//!   `offset10-model(7, 12, 3)` handle and `cebra_model_load_file` (`weights::load_model`, which
//!   rebuilds the model from the file's `cebra.*` metadata).
//!
//! An input starting with `{` is also tried as `header JSON, NUL, tensor bytes` (see [`framed`]).
//!
//! Invariants: nothing panics, hangs or allocates without bound; every failure is an error with a
//! message (a status other than `CEBRA_STATUS_PANIC` through the C ABI); a failed load leaves the
//! model's weights bit-for-bit unchanged; a successful one installs the file's values; the C ABI
//! agrees with the Rust calls.
#![no_main]

use cebra::ffi::{
    CEBRA_STATUS_OK, CEBRA_STATUS_PANIC, CebraModel, CebraStatus, cebra_last_error, cebra_model_free, cebra_model_init,
    cebra_model_load, cebra_model_load_file,
};
use cebra::{Model, ModelArgs, weights};
use libfuzzer_sys::fuzz_target;
use std::ffi::{CStr, CString};
use std::sync::{Mutex, OnceLock};
use tch::{Kind, Tensor};

struct State {
    /// Rust-side models: `offset10-model`, `offset1-model-mse-v2-3layers`.
    models: Vec<Box<dyn Model>>,
    /// A C handle to an `offset10-model(7, 12, 3)`.
    handle: *mut CebraModel,
    /// Where the bytes go for the path-taking C calls.
    path: CString,
}

// The handle is used under the mutex only.
unsafe impl Send for State {}

static TMP_PATH: OnceLock<String> = OnceLock::new();

/// Removes the file the bytes were written to when libFuzzer exits (not after a crash).
extern "C" fn remove_tmp_file() {
    if let Some(path) = TMP_PATH.get() {
        let _ = std::fs::remove_file(path);
    }
}

fn state() -> &'static Mutex<State> {
    static STATE: OnceLock<Mutex<State>> = OnceLock::new();
    STATE.get_or_init(|| {
        tch::set_num_threads(1);
        let args = ModelArgs::new(7, 12, 3);
        let models = ["offset10-model", "offset1-model-mse-v2-3layers"]
            .iter()
            .map(|name| cebra::init(name, &args).expect("built-in model"))
            .collect();
        let mut handle = std::ptr::null_mut();
        let status = unsafe { cebra_model_init(c"offset10-model".as_ptr(), 7, 12, 3, std::ptr::null(), &mut handle) };
        assert_eq!(status, CEBRA_STATUS_OK);
        let dir = std::env::var("CEBRA_FUZZ_TMPDIR").unwrap_or_else(|_| {
            if std::path::Path::new("/dev/shm").is_dir() {
                "/dev/shm".into()
            } else {
                std::env::temp_dir().display().to_string()
            }
        });
        let path = format!("{dir}/cebra-fuzz-weights-{}.safetensors", std::process::id());
        TMP_PATH.set(path.clone()).expect("set once");
        unsafe { libc::atexit(remove_tmp_file) };
        Mutex::new(State { models, handle, path: CString::new(path).expect("no NUL") })
    })
}

/// The values of a tensor as bits (NaN-safe comparison).
fn bits(t: &Tensor) -> Vec<u32> {
    let t = t.detach().to_kind(Kind::Float).contiguous();
    let n = t.numel();
    let mut v = vec![0f32; n];
    t.copy_data(&mut v, n);
    v.into_iter().map(f32::to_bits).collect()
}

fn snapshot(model: &dyn Model) -> Vec<(String, Vec<u32>)> {
    model.state_dict().iter().map(|(k, t)| (k.clone(), bits(t))).collect()
}

/// `CEBRA_FUZZ_VERBOSE=1`: print each result (for replaying single inputs).
fn verbose() -> bool {
    static VERBOSE: OnceLock<bool> = OnceLock::new();
    *VERBOSE.get_or_init(|| std::env::var_os("CEBRA_FUZZ_VERBOSE").is_some_and(|v| v != "0"))
}

fn last_error() -> String {
    unsafe { CStr::from_ptr(cebra_last_error()) }.to_string_lossy().into_owned()
}

fn check_status(what: &str, status: CebraStatus) {
    let message = last_error();
    if verbose() {
        eprintln!("{what}: status {status} {message}");
    }
    assert_ne!(status, CEBRA_STATUS_PANIC, "{what}: caught panic: {message}");
    assert_eq!(status == CEBRA_STATUS_OK, message.is_empty(), "{what}: status {status}, message {message:?}");
}

/// An input that starts with `{` is also tried as `header JSON, NUL, tensor bytes`, framed here with
/// the right header length: a byte mutator rarely keeps the 8-byte length prefix in step with an edit
/// of the header, so without this the metadata and shapes would hardly be explored.
fn framed(data: &[u8]) -> Option<Vec<u8>> {
    if data.first() != Some(&b'{') {
        return None;
    }
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (header, payload) = (&data[..split], data.get(split + 1..).unwrap_or_default());
    let mut file = Vec::with_capacity(8 + data.len());
    file.extend_from_slice(&(header.len() as u64).to_le_bytes());
    file.extend_from_slice(header);
    file.extend_from_slice(payload);
    Some(file)
}

fuzz_target!(|data: &[u8]| {
    let mut guard = state().lock().unwrap_or_else(|e| e.into_inner());
    check(&mut guard, data);
    if let Some(file) = framed(data) {
        check(&mut guard, &file);
    }
});

fn check(state: &mut State, data: &[u8]) {
    // Rust side.
    let mut offset10_ok = false;
    match weights::parse(data) {
        Ok(file) => {
            for (i, model) in state.models.iter_mut().enumerate() {
                let before = snapshot(model.as_ref());
                let result = model.load_state_dict(&file.tensors);
                if verbose() {
                    eprintln!("load_state_dict({}): {:?}", model.architecture().name, result);
                }
                match result {
                    Ok(()) => {
                        if i == 0 {
                            offset10_ok = true;
                            // No tied keys: every key holds exactly the file's values.
                            for (key, got) in snapshot(model.as_ref()) {
                                let (_, t) = file.tensors.iter().find(|(k, _)| *k == key).expect("checked");
                                assert_eq!(got, bits(t), "tensor '{key}' not installed");
                            }
                        }
                    }
                    Err(e) => {
                        assert!(!e.to_string().is_empty());
                        assert!(before == snapshot(model.as_ref()), "a failed load changed the weights: {e}");
                    }
                }
            }
        }
        Err(e) => {
            if verbose() {
                eprintln!("weights::parse: {e}");
            }
            assert!(!e.to_string().is_empty())
        }
    }

    // C side, through a file.
    if std::fs::write(state.path.to_str().expect("UTF-8 path"), data).is_err() {
        return;
    }
    let status = unsafe { cebra_model_load(state.handle, state.path.as_ptr()) };
    check_status("cebra_model_load", status);
    assert_eq!(
        status == CEBRA_STATUS_OK,
        offset10_ok,
        "cebra_model_load disagrees with the Rust load: {}",
        last_error()
    );

    let mut out: *mut CebraModel = std::ptr::null_mut();
    let status = unsafe { cebra_model_load_file(state.path.as_ptr(), &mut out) };
    check_status("cebra_model_load_file", status);
    assert_eq!(status == CEBRA_STATUS_OK, !out.is_null());
    unsafe { cebra_model_free(out) };
}
