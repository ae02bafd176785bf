//! Fuzz target `options`: the `"key=value;…"` option parser, directly ([`Options::parse`] and the typed
//! getters) and through the C ABI (`cebra_model_init`, `cebra_criterion_init`).
//!
//! Invariants checked on every input:
//! * nothing panics (libfuzzer-sys aborts on any panic, even one the C boundary would catch), hangs
//!   or allocates without bound;
//! * a parse that succeeds round-trips through `to_string_canonical`;
//! * every failure is an error with a non-empty message; through the C ABI it is a status other than
//!   `CEBRA_STATUS_PANIC`, with a message in `cebra_last_error` and no handle written;
//! * the C ABI agrees with the Rust parser: a string that `Options::parse` rejects (or that is not
//!   UTF-8) gives `CEBRA_STATUS_INVALID_ARGUMENT`.
#![no_main]

use cebra::Options;
use cebra::ffi::{
    CEBRA_STATUS_INVALID_ARGUMENT, CEBRA_STATUS_OK, CEBRA_STATUS_PANIC, CebraCriterion, CebraModel, CebraStatus,
    cebra_criterion_free, cebra_criterion_init, cebra_last_error, cebra_model_free, cebra_model_init,
};
use libfuzzer_sys::fuzz_target;
use std::ffi::{CStr, CString, c_char};

/// Models built with the fuzzed options, as `(name, num_neurons, num_units, num_output)`.
const MODELS: &[(&CStr, i64, i64, i64)] = &[
    (c"offset10-model", 7, 12, 3),
    // Accepts `n_intermediate_layers` and `tanh` besides `normalize`.
    (c"offset1-model-mse-v2-3layers", 7, 12, 3),
    // Accepts `clip_min` / `clip_max`.
    (c"offset1-model-mse-clip-1-1", 7, 12, 3),
];

/// Criteria built with the fuzzed options.
const CRITERIA: &[&CStr] = &[c"nce", c"learnable-cosine-infonce", c"fixed-euclidean-infonce"];

/// `CEBRA_FUZZ_VERBOSE=1`: print each result (for replaying single inputs).
fn verbose() -> bool {
    static VERBOSE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *VERBOSE.get_or_init(|| std::env::var_os("CEBRA_FUZZ_VERBOSE").is_some_and(|v| v != "0"))
}

fn last_error() -> String {
    unsafe { CStr::from_ptr(cebra_last_error()) }.to_string_lossy().into_owned()
}

/// Checks the C-level contract of a failed or successful call.
fn check_status(what: &str, status: CebraStatus, wrote_handle: bool, rust_ok: Option<bool>) {
    let message = last_error();
    if verbose() {
        eprintln!("{what}: status {status} {message}");
    }
    assert_ne!(status, CEBRA_STATUS_PANIC, "{what}: caught panic: {message}");
    if status == CEBRA_STATUS_OK {
        assert!(wrote_handle, "{what}: OK without a handle");
        assert!(message.is_empty(), "{what}: OK with a message: {message}");
        assert_ne!(rust_ok, Some(false), "{what}: OK although Options::parse fails");
    } else {
        assert!(!wrote_handle, "{what}: status {status} but a handle was written");
        assert!(!message.is_empty(), "{what}: status {status} without a message");
    }
    if rust_ok == Some(false) {
        assert_eq!(status, CEBRA_STATUS_INVALID_ARGUMENT, "{what}: {message}");
    }
}

fn check_rust(text: &str) -> bool {
    let parsed = Options::parse(text);
    if verbose() {
        eprintln!("Options::parse: {parsed:?}");
    }
    match parsed {
        Ok(options) => {
            let canonical = options.to_string_canonical();
            let again = Options::parse(&canonical)
                .unwrap_or_else(|e| panic!("canonical form {canonical:?} does not parse: {e}"));
            assert_eq!(again, options, "canonical form {canonical:?} does not round-trip");
            let keys: Vec<String> = options.keys().map(str::to_string).collect();
            for key in &keys {
                assert!(!key.is_empty());
                assert!(options.get(key).is_some());
                let _ = options.bool_or(key, false).map_err(|e| assert!(!e.to_string().is_empty()));
                let _ = options.f64_opt(key).map_err(|e| assert!(!e.to_string().is_empty()));
                let _ = options.i64_or(key, 0).map_err(|e| assert!(!e.to_string().is_empty()));
            }
            let _ = options.check_keys(&["normalize", "dropout"], "fuzz");
            let merged = options.merged_over(&Options::new().with("normalize", "true"));
            assert!(merged.keys().count() >= keys.len());
            true
        }
        Err(e) => {
            assert!(!e.to_string().is_empty(), "empty error message for {text:?}");
            false
        }
    }
}

fuzz_target!(init: { tch::set_num_threads(1); }, |data: &[u8]| {
    // The C ABI sees the string up to its first NUL.
    let c_bytes = data.split(|&b| b == 0).next().unwrap_or_default();
    let rust_ok = match std::str::from_utf8(c_bytes) {
        Ok(text) => Some(check_rust(text)),
        Err(_) => None,
    };
    if let Ok(text) = std::str::from_utf8(data) {
        check_rust(text);
    }
    let c_options = CString::new(c_bytes).expect("no interior NUL");
    let options: *const c_char = c_options.as_ptr();
    // Not UTF-8: the C ABI must reject it as an invalid argument.
    let rust_ok = rust_ok.or(Some(false));

    for &(name, n, u, o) in MODELS {
        let mut out: *mut CebraModel = std::ptr::null_mut();
        let status = unsafe { cebra_model_init(name.as_ptr(), n, u, o, options, &mut out) };
        check_status(&format!("cebra_model_init({name:?})"), status, !out.is_null(), rust_ok);
        unsafe { cebra_model_free(out) };
    }
    for &name in CRITERIA {
        let mut out: *mut CebraCriterion = std::ptr::null_mut();
        let status = unsafe { cebra_criterion_init(name.as_ptr(), options, &mut out) };
        check_status(&format!("cebra_criterion_init({name:?})"), status, !out.is_null(), rust_ok);
        unsafe { cebra_criterion_free(out) };
    }
});
