//! Criterion latency: forward and forward+backward of every criterion kind for n ∈ {512, 2048, 8192}
//! rows (as many negatives as rows) and d ∈ {3, 8, 32} dimensions, L2-normalised standard-normal
//! inputs, µs per call (median, see `common` for the timing rule).
//!
//! ```sh
//! cargo bench --bench criterions
//! CEBRA_REFERENCE_PYTHON=/path/to/venv/bin/python cargo bench --bench criterions   # + reference
//! ```
//! Environment: `CEBRA_BENCH_BUDGET_MS`, `CEBRA_BENCH_MIN_RUNS`, `CEBRA_BENCH_THREADS` (default 1),
//! `CEBRA_BENCH_KINDS` (comma-separated subset), `CEBRA_BENCH_N` / `CEBRA_BENCH_D` (comma-separated).
mod common;
use cebra::criterions::Criterion;
use cebra::Options;
use tch::{Device, Kind, Tensor};

const KINDS: [&str; 5] =
    ["fixed-cosine-infonce", "fixed-euclidean-infonce", "learnable-cosine-infonce", "learnable-euclidean-infonce", "nce"];

fn list<T: std::str::FromStr + Clone>(var: &str, default: &[T]) -> Vec<T> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => {
            v.split(',').map(|s| s.trim().parse().ok().unwrap_or_else(|| panic!("{var}: bad value '{s}'"))).collect()
        }
        _ => default.to_vec(),
    }
}

fn main() {
    let threads = common::set_threads();
    let rule = common::Rule::from_env();
    let smoke = common::smoke_run();
    let kinds: Vec<String> = list("CEBRA_BENCH_KINDS", &KINDS.map(String::from));
    let ns: Vec<i64> = if smoke { vec![64] } else { list("CEBRA_BENCH_N", &[512, 2048, 8192]) };
    let ds: Vec<i64> = if smoke { vec![3] } else { list("CEBRA_BENCH_D", &[3, 8, 32]) };
    println!(
        "criterions: libtorch threads = {threads}, budget {} ms per measurement, min runs {}",
        rule.budget_ms, rule.min_runs
    );
    tch::manual_seed(0);
    let mut rows = Vec::new();
    for kind in &kinds {
        let criterion = Criterion::new(kind, &Options::new()).unwrap();
        for &n in &ns {
            for &d in &ds {
                let unit = || {
                    let t = Tensor::randn([n, d], (Kind::Float, Device::Cpu));
                    let norm = t.norm_scalaropt_dim(2, [1i64].as_slice(), true);
                    t / norm
                };
                let (r, p, q) = (unit(), unit(), unit());
                let (us, runs) = rule.measure(|| {
                    let out = criterion.forward(&r, &p, &q).unwrap();
                    std::hint::black_box(out);
                });
                rows.push((format!("{kind} n={n} d={d} forward"), us, runs));
                let (us, runs) = rule.measure(|| {
                    let g = criterion.backward(&r, &p, &q).unwrap();
                    std::hint::black_box(g);
                });
                rows.push((format!("{kind} n={n} d={d} forward+backward"), us, runs));
            }
        }
    }
    let join = |v: Vec<String>| v.join(",");
    let extra = vec![
        "--kinds".into(),
        kinds.join(","),
        "--n".into(),
        join(ns.iter().map(|v| v.to_string()).collect()),
        "--d".into(),
        join(ds.iter().map(|v| v.to_string()).collect()),
    ];
    let reference = common::run_reference("bench_criterions.py", &rule, threads, &extra);
    common::print_table("criterions (µs per call, median)", &rows, reference.as_ref());
}
