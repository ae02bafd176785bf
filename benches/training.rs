//! Training speed: iterations per second of the solver's loop for `offset10-model` (120 neurons,
//! 32 units, 8 outputs), a 3-D continuous label with `time_delta` positives, T = 10000 steps, at
//! batch 512 and 2048 — the reference's `fit` measured the same way when `CEBRA_REFERENCE_PYTHON` is
//! set. Rows: the sampler (indices), the step (windows, forward, loss, backward, Adam) and a whole
//! iteration.
//!
//! ```sh
//! cargo bench --bench training
//! CEBRA_REFERENCE_PYTHON=/work/venv/bin/python cargo bench --bench training
//! ```
//! Environment: `CEBRA_BENCH_BUDGET_MS`, `CEBRA_BENCH_MIN_RUNS`, `CEBRA_BENCH_THREADS` (libtorch and
//! reference threads, default: one per core), `CEBRA_BENCH_BATCHES` (default `512,2048`).
mod common;
use cebra::train::{Labels, SolverOptions, Trainer};
use cebra::transform::{Layout, Recording};

fn main() {
    let threads = common::set_threads_default_all_cores();
    let rule = common::Rule::from_env();
    let steps: usize = if common::smoke_run() { 500 } else { 10_000 };
    let batches: Vec<usize> = if common::smoke_run() {
        vec![32]
    } else {
        std::env::var("CEBRA_BENCH_BATCHES")
            .unwrap_or_else(|_| "512,2048".into())
            .split(',')
            .map(|b| b.trim().parse().expect("CEBRA_BENCH_BATCHES: comma-separated batch sizes"))
            .collect()
    };
    println!("training: offset10-model N=120 U=32 O=8, T={steps}, 3-D continuous label, time_delta, libtorch threads = {threads}");
    let n = 120;
    let data: Vec<f32> = (0..steps * n).map(|i| ((i.wrapping_mul(2654435761) % 2001) as f32 / 1000.0) - 1.0).collect();
    let labels: Vec<f32> = (0..steps)
        .flat_map(|t| {
            let t = t as f32;
            [(t * 0.01).sin(), (t * 0.013).cos(), (t * 0.007 + 1.0).sin()]
        })
        .collect();
    let recording = Recording::new(&data, steps, n, Layout::RowMajor).unwrap();
    let labels = Labels::continuous(labels, 3);
    let mut rows = Vec::new();
    for &batch_size in &batches {
        let options = SolverOptions::new()
            .model_architecture("offset10-model")
            .batch_size(batch_size)
            .num_hidden_units(32)
            .output_dimension(8)
            .seed(0);
        let mut trainer = Trainer::new(&options, &recording, &labels).unwrap();
        let label = format!("offset10-model batch={batch_size}");
        let mut batch = trainer.next_batch().unwrap();
        let (sampler_us, r1) = rule.measure(|| batch = trainer.next_batch().unwrap());
        let (step_us, r2) = rule.measure(|| {
            trainer.step(&batch, 1, 1).unwrap();
        });
        let (iteration_us, r3) = rule.measure(|| {
            let b = trainer.next_batch().unwrap();
            trainer.step(&b, 1, 1).unwrap();
        });
        println!("  batch {batch_size}: {:.1} it/s (sampler {:.2} ms, step {:.2} ms)", 1e6 / iteration_us, sampler_us / 1e3, step_us / 1e3);
        rows.push((format!("{label} sampler"), sampler_us, r1));
        rows.push((format!("{label} step"), step_us, r2));
        rows.push((format!("{label} iteration"), iteration_us, r3));
    }
    let batch_list: Vec<String> = batches.iter().map(|b| b.to_string()).collect();
    let extra = vec!["--batch-sizes".into(), batch_list.join(","), "--steps".into(), steps.to_string()];
    let reference = common::run_reference("bench_training.py", &rule, threads, &extra);
    common::print_table("training (µs per call, median; ratio < 1: faster than the reference)", &rows, reference.as_ref());
    if let Some(r) = &reference {
        for &b in &batches {
            let key = format!("offset10-model batch={b} iteration");
            if let (Some((ref_us, _)), Some((_, ours, _))) = (r.rows.get(&key), rows.iter().find(|(l, ..)| *l == key)) {
                println!("batch {b}: ours {:.1} it/s, reference {:.1} it/s: {:.2}x", 1e6 / ours, 1e6 / ref_us, ref_us / ours);
            }
        }
    }
}
