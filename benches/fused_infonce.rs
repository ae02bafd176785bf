//! Fused vs libtorch InfoNCE: time per forward+backward (`Criterion::backward`) and peak memory for
//! n ∈ {512, 2048, 8192, 32768} rows (as many negatives), d ∈ {3, 8, 32}, fixed cosine and Euclidean
//! criterions, L2-normalised standard-normal inputs; the reference's time and peak memory too when
//! `CEBRA_REFERENCE_PYTHON` names a python with cebra. One run.
//!
//! ```sh
//! cargo bench --bench fused_infonce
//! CEBRA_REFERENCE_PYTHON=/work/venv/bin/python cargo bench --bench fused_infonce
//! ```
//! Each configuration runs in a child process (this binary again), which reports its median time
//! (the rule of `common`) and its peak resident memory (`VmHWM`) minus the resident memory before
//! the inputs were made, so that every row's memory is its own. The libtorch path and the reference
//! are skipped at n = 32768, where one n×n float32 temporary alone is 4.3 GB.
//! Environment: `CEBRA_BENCH_BUDGET_MS`, `CEBRA_BENCH_MIN_RUNS`, `CEBRA_BENCH_THREADS` (default: all
//! cores, for rayon and libtorch alike), `CEBRA_BENCH_N` / `CEBRA_BENCH_D` (comma-separated),
//! `CEBRA_BENCH_KINDS`, `CEBRA_BENCH_MAX_MATRIX_N` (largest n for libtorch and the reference, 8192).
mod common;
use cebra::criterions::Criterion;
use cebra::Options;
use std::process::Command;
use tch::{Device, Kind, Tensor};

const CHILD: &str = "CEBRA_FUSED_BENCH_CHILD";

fn list<T: std::str::FromStr + Clone>(var: &str, default: &[T]) -> Vec<T> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => {
            v.split(',').map(|s| s.trim().parse().ok().unwrap_or_else(|| panic!("{var}: bad value '{s}'"))).collect()
        }
        _ => default.to_vec(),
    }
}

/// Resident memory now and at peak, in kB, from /proc/self/status.
fn memory_kb() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// CPU seconds (user + system) this process has used: on a shared machine, the work a call costs
/// even when the wall clock waits for other processes.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes one `rusage` into the zeroed struct we own.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer to `usage`.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return f64::NAN;
    }
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// Child: one configuration; prints `median_us runs peak_kb cpu_us_per_call`.
fn child(spec: &str) {
    let parts: Vec<&str> = spec.split(',').collect();
    let [kind, implementation, n, d] = parts[..] else { panic!("bad child spec {spec}") };
    let (n, d): (i64, i64) = (n.parse().unwrap(), d.parse().unwrap());
    let threads = threads();
    tch::set_num_threads(threads as i32);
    rayon::ThreadPoolBuilder::new().num_threads(threads).build_global().unwrap();
    let rule = common::Rule::from_env();
    let (base_kb, _) = memory_kb();
    tch::manual_seed(0);
    let unit = || {
        let t = Tensor::randn([n, d], (Kind::Float, Device::Cpu));
        let norm = t.norm_scalaropt_dim(2, [1i64].as_slice(), true);
        t / norm
    };
    let (r, p, q) = (unit(), unit(), unit());
    let criterion = Criterion::new(kind, &Options::parse(&format!("implementation={implementation}")).unwrap()).unwrap();
    let cpu_start = cpu_seconds();
    let (us, runs) = rule.measure(|| {
        std::hint::black_box(criterion.backward(&r, &p, &q).unwrap());
    });
    // `measure` makes one untimed warm-up call besides the timed ones.
    let cpu_us = (cpu_seconds() - cpu_start) * 1e6 / (runs + 1) as f64;
    let (_, peak_kb) = memory_kb();
    println!("{us} {runs} {} {cpu_us}", peak_kb.saturating_sub(base_kb));
}

fn threads() -> usize {
    std::env::var("CEBRA_BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

fn run_child(kind: &str, implementation: &str, n: i64, d: i64) -> Option<(f64, u64, f64)> {
    let exe = std::env::current_exe().unwrap();
    let mut command = Command::new(exe);
    command.env(CHILD, format!("{kind},{implementation},{n},{d}"));
    if !common::smoke_run() {
        command.arg("--bench");
    }
    let out = command.output().unwrap();
    if !out.status.success() {
        eprintln!("{kind} {implementation} n={n} d={d} failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<&str> = text.split_whitespace().collect();
    match fields[..] {
        [us, _runs, kb, cpu_us] => Some((us.parse().ok()?, kb.parse().ok()?, cpu_us.parse().ok()?)),
        _ => None,
    }
}

/// The reference's forward+backward time and its process's peak memory for one configuration.
fn reference(kind: &str, n: i64, d: i64, threads: usize) -> Option<(f64, u64)> {
    let rule = common::Rule::from_env();
    let extra: Vec<String> =
        ["--kinds", kind, "--n", &n.to_string(), "--d", &d.to_string(), "--only", "forward+backward", "--peak-rss"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    let result = common::run_reference("bench_criterions.py", &rule, threads as i32, &extra)?;
    let (us, _) = *result.rows.get(&format!("{kind} n={n} d={d} forward+backward"))?;
    let peak = result.header.split("peak_rss_kb=").nth(1)?.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()?;
    Some((us, peak))
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD) {
        child(&spec);
        return;
    }
    let smoke = common::smoke_run();
    let threads = threads();
    let rule = common::Rule::from_env();
    let kinds: Vec<String> = list("CEBRA_BENCH_KINDS", &["fixed-cosine-infonce".to_string(), "fixed-euclidean-infonce".to_string()]);
    let ns: Vec<i64> = if smoke { vec![100] } else { list("CEBRA_BENCH_N", &[512, 2048, 8192, 32768]) };
    let ds: Vec<i64> = if smoke { vec![3] } else { list("CEBRA_BENCH_D", &[3, 8, 32]) };
    let max_matrix_n: i64 = list("CEBRA_BENCH_MAX_MATRIX_N", &[8192])[0];
    println!(
        "fused_infonce: {threads} threads (rayon and libtorch), budget {} ms per measurement, min runs {}; \
         time = median µs per forward+backward (wall), cpu = CPU µs per call (all threads), \
         memory = peak RSS growth in MB",
        rule.budget_ms, rule.min_runs
    );
    let mb = |kb: u64| kb as f64 / 1024.0;
    println!(
        "\n{:<24} {:>6} {:>3} | {:>12} {:>12} {:>8} | {:>12} {:>12} {:>8} | {:>12} {:>8} | {:>9} {:>9}",
        "criterion", "n", "d", "fused µs", "cpu µs", "MB", "libtorch µs", "cpu µs", "MB", "reference µs", "MB", "lt/fused", "ref/fused"
    );
    for kind in &kinds {
        for &n in &ns {
            for &d in &ds {
                let fused = run_child(kind, "fused", n, d);
                let libtorch = if n <= max_matrix_n { run_child(kind, "libtorch", n, d) } else { None };
                let reference = if n <= max_matrix_n { reference(kind, n, d, threads) } else { None };
                let cell = |v: Option<(f64, u64)>| match v {
                    Some((us, kb)) => format!("{us:>12.1} {:>8.1}", mb(kb)),
                    None => format!("{:>12} {:>8}", "-", "-"),
                };
                let ours = |v: Option<(f64, u64, f64)>| match v {
                    Some((us, kb, cpu)) => format!("{us:>12.1} {cpu:>12.1} {:>8.1}", mb(kb)),
                    None => format!("{:>12} {:>12} {:>8}", "-", "-", "-"),
                };
                let ratio = |other: Option<f64>| match (other, fused) {
                    (Some(o), Some((f, ..))) => format!("{:>9.2}", o / f),
                    _ => format!("{:>9}", "-"),
                };
                println!(
                    "{kind:<24} {n:>6} {d:>3} | {} | {} | {} | {} {}",
                    ours(fused),
                    ours(libtorch),
                    cell(reference),
                    ratio(libtorch.map(|l| l.0)),
                    ratio(reference.map(|r| r.0)),
                );
                if smoke {
                    assert!(fused.is_some() && libtorch.is_some(), "smoke run: both implementations ran");
                }
            }
        }
    }
    if std::env::var_os("CEBRA_REFERENCE_PYTHON").is_some() {
        println!("reference memory: the whole python process's peak RSS (torch + cebra imported, ~600 MB before any work)");
    }
}
