//! Whole-recording transform throughput: `offset10-model` (120 neurons, 32 units, 8 outputs) on a
//! 100,000-step row-major recording with padding, as `CEBRA.transform` does by default. Prints
//! million time steps per second for the compiled path (SIMD kernels, chunks in parallel), the
//! libtorch path, and the reference's `transform` when `CEBRA_REFERENCE_PYTHON` is set.
//!
//! ```sh
//! cargo bench --bench transform
//! CEBRA_REFERENCE_PYTHON=/work/venv/bin/python cargo bench --bench transform
//! ```
//! Environment: `CEBRA_BENCH_BUDGET_MS`, `CEBRA_BENCH_MIN_RUNS`, `CEBRA_BENCH_THREADS` (libtorch and
//! reference threads, default: one per core; the compiled path uses rayon's pool, one thread per
//! core, or one thread when this is 1).
mod common;
use cebra::transform::{transform_into, Layout, Recording, TransformOptions};
use cebra::{init, ModelArgs};

const NAME: &str = "offset10-model";

fn main() {
    // Both paths on every core unless CEBRA_BENCH_THREADS says otherwise (the compiled path runs
    // on one thread when libtorch is set to one).
    let threads = common::set_threads_default_all_cores();
    let rule = common::Rule::from_env();
    let steps: usize = if common::smoke_run() { 2_000 } else { 100_000 };
    let (n, u, o) = (120usize, 32, 8);
    println!(
        "transform: {NAME} N={n} U={u} O={o}, T={steps}, padded, libtorch threads = {threads}, rayon threads = {}",
        rayon::current_num_threads()
    );
    tch::manual_seed(0);
    let model = init(NAME, &ModelArgs::new(n as i64, u, o)).unwrap();
    let data: Vec<f32> = (0..steps * n).map(|i| ((i.wrapping_mul(2654435761) % 2001) as f32 / 1000.0) - 1.0).collect();
    let rec = Recording::new(&data, steps, n, Layout::RowMajor).unwrap();
    let mut out = vec![0f32; steps * o as usize];
    let mut rows = Vec::new();
    for (label, force_libtorch) in [("compiled", false), ("libtorch", true)] {
        let options = TransformOptions { pad: true, batch_size: 0, force_libtorch };
        let (us, runs) = rule.measure(|| {
            transform_into(model.as_ref(), &rec, options, &mut out, &|_| {}).unwrap();
        });
        println!("  {label:<9} {:>8.3} million steps/s", steps as f64 / us);
        rows.push((format!("{NAME} transform T={steps} {label}"), us, runs));
    }
    // The compiled plan on one thread, by instruction set, timed in CPU time of this process (less
    // sensitive to other processes on a shared machine than wall time).
    println!("\ncompiled plan, one thread, CPU time (padding excluded):");
    let rows_in = steps.min(20_000);
    for isa in cebra::stream::Isa::available() {
        let plan = cebra::stream::Plan::compile_for(model.as_ref(), isa).unwrap();
        let mut scratch = cebra::stream::BlockScratch::default();
        let out_rows = rows_in - 9;
        let mut block_out = vec![0f32; out_rows * o as usize];
        let reps = if common::smoke_run() { 1 } else { 5 };
        let cpu0 = cpu_seconds();
        for _ in 0..reps {
            for chunk in 0..rows_in / 512 {
                let s = chunk * 512;
                let len = (512 + 9).min(rows_in - s);
                if len < 10 {
                    break;
                }
                plan.run_block(&data[s * n..(s + len) * n], len, &mut block_out[..(len - 9) * o as usize], &mut scratch);
            }
        }
        let per_step = (cpu_seconds() - cpu0) / (reps * rows_in) as f64;
        println!("  {isa:?}: {:.3} µs CPU per step = {:.2} million steps/s per core", per_step * 1e6, 1e-6 / per_step);
    }
    let extra = vec!["--steps".into(), steps.to_string()];
    let reference = common::run_reference("bench_transform.py", &rule, threads, &extra);
    common::print_table("transform (µs per call, median)", &rows, None);
    if let Some(r) = &reference {
        for (label, (us, runs)) in &r.rows {
            println!("{label}: {us:.1} µs ({runs} runs) = {:.3} million steps/s", steps as f64 / us);
        }
        println!("reference: {}", r.header);
    }
}

/// CPU seconds used by this process so far.
fn cpu_seconds() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec for clock_gettime to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}
