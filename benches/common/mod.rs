//! Shared by the benches: the timing rule, the reference runner and the table printer.
//!
//! Timing rule (the same in `tools/reference/bench_*.py`): one untimed warm-up call, then timed calls
//! until `CEBRA_BENCH_BUDGET_MS` (default 400 ms) of timed calls are spent and at least
//! `CEBRA_BENCH_MIN_RUNS` (default 1) calls were timed, at most 10 000; the median is reported.
#![allow(dead_code)]
use std::collections::HashMap;
use std::process::Command;
use std::time::Instant;

pub struct Rule {
    pub budget_ms: f64,
    pub min_runs: usize,
    pub max_runs: usize,
}

/// True when run by `cargo test` (cargo passes `--bench` only under `cargo bench`): the benches then
/// do a tiny smoke run, so the test suite checks that they work without spending minutes on timing.
pub fn smoke_run() -> bool {
    !std::env::args().any(|a| a == "--bench")
}

impl Rule {
    pub fn from_env() -> Rule {
        if smoke_run() {
            return Rule { budget_ms: 0.0, min_runs: 1, max_runs: 1 };
        }
        let var = |k: &str, d: f64| std::env::var(k).ok().and_then(|v| v.parse::<f64>().ok()).unwrap_or(d);
        Rule { budget_ms: var("CEBRA_BENCH_BUDGET_MS", 400.0), min_runs: var("CEBRA_BENCH_MIN_RUNS", 1.0) as usize, max_runs: 10_000 }
    }

    /// Median µs per call of `f`, and the number of timed calls.
    pub fn measure(&self, mut f: impl FnMut()) -> (f64, usize) {
        f();
        let mut times = Vec::new();
        let mut spent = 0.0;
        while times.len() < self.max_runs && (times.len() < self.min_runs.max(1) || spent < self.budget_ms * 1e3) {
            let start = Instant::now();
            f();
            let us = start.elapsed().as_secs_f64() * 1e6;
            spent += us;
            times.push(us);
        }
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let mid = times.len() / 2;
        let median = if times.len() % 2 == 1 { times[mid] } else { 0.5 * (times[mid - 1] + times[mid]) };
        (median, times.len())
    }
}

/// [`set_threads`] with one thread per core unless `CEBRA_BENCH_THREADS` says otherwise; the default
/// is written to the environment so that the reference's child process runs with the same count.
pub fn set_threads_default_all_cores() -> i32 {
    if std::env::var_os("CEBRA_BENCH_THREADS").is_none() {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        // SAFETY: plain environment write before any other thread of this process reads it.
        unsafe { std::env::set_var("CEBRA_BENCH_THREADS", cores.to_string()) };
    }
    set_threads()
}

/// Sets libtorch to `threads` intra-op threads (`CEBRA_BENCH_THREADS`, default 1) and returns it.
pub fn set_threads() -> i32 {
    let threads = std::env::var("CEBRA_BENCH_THREADS").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    tch::set_num_threads(threads);
    tch::get_num_threads()
}

/// One reference result row, keyed by the row's label.
pub struct Reference {
    pub rows: HashMap<String, (f64, usize)>,
    pub header: String,
}

/// Runs `tools/reference/<script>` with the python named by `CEBRA_REFERENCE_PYTHON`, if set. The
/// script prints `#`-prefixed info lines and `label<TAB>median_us<TAB>runs` rows.
pub fn run_reference(script: &str, rule: &Rule, threads: i32, extra: &[String]) -> Option<Reference> {
    if smoke_run() {
        return None;
    }
    let python = std::env::var_os("CEBRA_REFERENCE_PYTHON")?;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/reference/");
    let output = Command::new(&python)
        .arg(format!("{path}{script}"))
        .args(["--budget-ms", &rule.budget_ms.to_string(), "--min-runs", &rule.min_runs.to_string()])
        .args(["--max-runs", &rule.max_runs.to_string(), "--threads", &threads.to_string()])
        .args(extra)
        .output();
    let output = match output {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            eprintln!("reference bench failed ({}):\n{}", o.status, String::from_utf8_lossy(&o.stderr));
            return None;
        }
        Err(e) => {
            eprintln!("cannot run {}: {e}", python.to_string_lossy());
            return None;
        }
    };
    let text = String::from_utf8_lossy(&output.stdout);
    let mut rows = HashMap::new();
    let mut header = Vec::new();
    for line in text.lines() {
        if let Some(info) = line.strip_prefix('#') {
            header.push(info.trim().to_string());
            continue;
        }
        let parts: Vec<&str> = line.split('\t').collect();
        if let [label, us, runs] = parts[..] {
            rows.insert(label.to_string(), (us.parse().unwrap(), runs.parse().unwrap()));
        }
    }
    Some(Reference { rows, header: header.join("; ") })
}

/// Prints `label | ours µs (runs) | reference µs (runs) | ours/reference`.
pub fn print_table(title: &str, ours: &[(String, f64, usize)], reference: Option<&Reference>) {
    println!("\n{title}");
    let width = ours.iter().map(|(l, ..)| l.len()).max().unwrap_or(10).max(10);
    match reference {
        Some(_) => println!("{:<width$} | {:>12} {:>5} | {:>12} {:>5} | {:>7}", "case", "ours µs", "runs", "ref µs", "runs", "ratio"),
        None => println!("{:<width$} | {:>12} {:>5}", "case", "ours µs", "runs"),
    }
    for (label, us, runs) in ours {
        match reference.and_then(|r| r.rows.get(label)) {
            Some((ref_us, ref_runs)) => {
                println!("{label:<width$} | {us:>12.1} {runs:>5} | {ref_us:>12.1} {ref_runs:>5} | {:>7.2}", us / ref_us)
            }
            None if reference.is_some() => println!("{label:<width$} | {us:>12.1} {runs:>5} | {:>12} {:>5} | {:>7}", "-", "-", "-"),
            None => println!("{label:<width$} | {us:>12.1} {runs:>5}"),
        }
    }
    if let Some(r) = reference.filter(|r| !r.header.is_empty()) {
        println!("reference: {}", r.header);
    }
}
