//! The training C API is a thin layer over `cebra::train::Solver`: through it, the same options, seed
//! and data give bit for bit the history and embedding the core gives (column-major inputs and labels
//! included), the progress callback sees each step's record with its `user_data` and can stop the
//! fit, and a saved solver comes back with its history exactly.
use cebra::ffi::*;
use cebra::train::{Labels, Progress, Solver, SolverOptions};
use cebra::transform::{Layout, Recording};
use std::ffi::{c_void, CStr, CString};
use std::ptr;

const T: usize = 150;
const N: usize = 5;
const OUT: usize = 3;
const OPTIONS: &str = "model_architecture=offset10-model;num_hidden_units=8;output_dimension=3;batch_size=16;max_iterations=3;seed=11";

/// A recording driven by a 1-D latent (row-major `(T, N)`), the latent, and a class per step.
fn data() -> (Vec<f32>, Vec<f32>, Vec<i64>) {
    let latent: Vec<f32> = (0..T).map(|t| (t as f32 * 0.06).sin()).collect();
    let x = (0..T * N).map(|i| latent[i / N] * (i % N) as f32 - 0.02 * ((i * 7) % 3) as f32).collect();
    let classes = latent.iter().map(|&v| i64::from(v > 0.0)).collect();
    (x, latent, classes)
}

fn transposed(v: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; v.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = v[r * cols + c];
        }
    }
    out
}

fn last_error() -> String {
    // SAFETY: cebra_last_error never returns NULL and its buffer lives until the next call.
    unsafe { CStr::from_ptr(cebra_last_error()) }.to_string_lossy().into_owned()
}

fn ok(status: CebraStatus) {
    assert_eq!(status, CEBRA_STATUS_OK, "{}", last_error());
}

fn new_solver(options: &str) -> *mut CebraSolver {
    let text = CString::new(options).unwrap();
    let mut solver = ptr::null_mut();
    // SAFETY: a NUL-terminated string and a writable out-pointer.
    ok(unsafe { cebra_solver_new(text.as_ptr(), &mut solver) });
    solver
}

fn field(solver: *const CebraSolver, which: CebraHistoryField) -> Vec<f64> {
    let mut count = 0usize;
    // SAFETY: a live solver; a size query with a writable count.
    ok(unsafe { cebra_solver_history(solver, which, ptr::null_mut(), 0, &mut count) });
    let mut out = vec![0.0; count];
    // SAFETY: `out` holds `count` doubles.
    ok(unsafe { cebra_solver_history(solver, which, out.as_mut_ptr(), out.len(), &mut count) });
    out
}

fn embed(solver: *mut CebraSolver, x: &[f32], layout: u32) -> Vec<f32> {
    let mut out = vec![0.0; T * OUT];
    let mut rows = 0i64;
    // SAFETY: `x` holds T * N floats, `out` T * OUT.
    ok(unsafe { cebra_solver_transform(solver, x.as_ptr(), T as i64, N as i64, layout, out.as_mut_ptr(), out.len(), &mut rows) });
    assert_eq!(rows, T as i64);
    out
}

struct Seen {
    steps: Vec<(i64, i64, f64, f64, f64, f64)>,
    stop_at: i64,
}

unsafe extern "C" fn on_step(user_data: *mut c_void, step: i64, total: i64, loss: f64, align: f64, uniform: f64, temperature: f64) -> i32 {
    // SAFETY: the test passes a live `Seen` as user_data.
    let seen = unsafe { &mut *(user_data as *mut Seen) };
    seen.steps.push((step, total, loss, align, uniform, temperature));
    i32::from(seen.stop_at > 0 && step >= seen.stop_at)
}

#[test]
fn the_c_api_fits_as_the_core_does() {
    let (x, latent, classes) = data();
    // The core.
    let options = SolverOptions::from_options(&cebra::Options::parse(OPTIONS).unwrap()).unwrap();
    let mut core = Solver::new(options).unwrap();
    let recording = Recording::new(&x, T, N, Layout::RowMajor).unwrap();
    let history = core.fit(&recording, &Labels::continuous(latent.clone(), 1), |_| Progress::Continue).unwrap();
    let embedding = core.transform(&recording).unwrap();

    // The C API, column-major data and labels, with a progress callback.
    let solver = new_solver(OPTIONS);
    let xc = transposed(&x, T, N);
    let mut seen = Seen { steps: Vec::new(), stop_at: 0 };
    // SAFETY: every array holds what the call is told; `seen` outlives the call.
    ok(unsafe {
        cebra_solver_fit(solver, xc.as_ptr(), T as i64, N as i64, CEBRA_LAYOUT_COL_MAJOR, latent.as_ptr(), 1, ptr::null(), Some(on_step), &mut seen as *mut Seen as *mut c_void)
    });
    assert_eq!(field(solver, CEBRA_HISTORY_LOSS), history.loss);
    assert_eq!(field(solver, CEBRA_HISTORY_ALIGN), history.align);
    assert_eq!(field(solver, CEBRA_HISTORY_UNIFORM), history.uniform);
    assert_eq!(field(solver, CEBRA_HISTORY_TEMPERATURE), history.temperature);
    let expected: Vec<_> = (0..3).map(|i| (i as i64 + 1, 3, history.loss[i], history.align[i], history.uniform[i], history.temperature[i])).collect();
    assert_eq!(seen.steps, expected, "the callback sees each step's record");
    assert_eq!(embed(solver, &x, CEBRA_LAYOUT_ROW_MAJOR), embedding);
    assert_eq!(embed(solver, &xc, CEBRA_LAYOUT_COL_MAJOR), transposed(&embedding, T, OUT));

    // Saved and loaded: the record comes back exactly (every f64 of the metadata round-trips).
    let dir = std::env::temp_dir().join(format!("cebra-ffi-solver-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = CString::new(dir.join("solver.safetensors").to_str().unwrap()).unwrap();
    let mut loaded = ptr::null_mut();
    // SAFETY: a live solver, a NUL-terminated path, a writable out-pointer.
    ok(unsafe { cebra_solver_save(solver, path.as_ptr()) });
    // SAFETY: as above.
    ok(unsafe { cebra_solver_load(path.as_ptr(), &mut loaded) });
    for which in [CEBRA_HISTORY_LOSS, CEBRA_HISTORY_ALIGN, CEBRA_HISTORY_UNIFORM, CEBRA_HISTORY_TEMPERATURE] {
        assert_eq!(field(loaded, which), field(solver, which), "history field {which} after save/load");
    }
    assert_eq!(embed(loaded, &x, CEBRA_LAYOUT_ROW_MAJOR), embedding);
    std::fs::remove_dir_all(&dir).unwrap();

    // Discrete labels and an early stop: the core with the same stop gives the same record.
    let mut stopped = Seen { steps: Vec::new(), stop_at: 2 };
    // SAFETY: as for the first fit.
    ok(unsafe {
        cebra_solver_fit(solver, x.as_ptr(), T as i64, N as i64, CEBRA_LAYOUT_ROW_MAJOR, ptr::null(), 0, classes.as_ptr(), Some(on_step), &mut stopped as *mut Seen as *mut c_void)
    });
    let core_stopped = core
        .fit(&recording, &Labels::discrete(classes.clone()), |r| if r.step >= 2 { Progress::Stop } else { Progress::Continue })
        .unwrap();
    assert_eq!(stopped.steps.len(), 2);
    assert_eq!(field(solver, CEBRA_HISTORY_LOSS), core_stopped.loss);
    assert_eq!(embed(solver, &x, CEBRA_LAYOUT_ROW_MAJOR), core.transform(&recording).unwrap());

    // SAFETY: live handles, freed once.
    unsafe {
        cebra_solver_free(loaded);
        cebra_solver_free(solver);
    }
}
