//! Model forward latency (inference, no autograd graph) of `offset10-model` with N=50 neurons, U=32
//! units, O=8 outputs: one 10-step window (batch 1, the streaming use case), a batch of 512 windows,
//! and one 1000-step recording (batch 1, T=1009, the offline embedding of a session).
//!
//! ```sh
//! cargo bench --bench models
//! CEBRA_REFERENCE_PYTHON=/path/to/venv/bin/python cargo bench --bench models   # + reference
//! ```
//! Environment: `CEBRA_BENCH_BUDGET_MS`, `CEBRA_BENCH_MIN_RUNS`, `CEBRA_BENCH_THREADS` (default 1).
mod common;
use cebra::{init, ModelArgs};
use tch::{Device, Kind, Tensor};

const NAME: &str = "offset10-model";
const CASES: [(i64, i64); 3] = [(1, 10), (512, 10), (1, 1009)];

fn main() {
    let threads = common::set_threads();
    let rule = common::Rule::from_env();
    println!(
        "models: {NAME} N=50 U=32 O=8, libtorch threads = {threads}, budget {} ms per measurement, min runs {}",
        rule.budget_ms, rule.min_runs
    );
    tch::manual_seed(0);
    let model = init(NAME, &ModelArgs::new(50, 32, 8)).unwrap();
    let mut rows = Vec::new();
    for (batch, time) in CASES {
        let x = Tensor::randn([batch, 50, time], (Kind::Float, Device::Cpu));
        let (us, runs) = rule.measure(|| {
            let _ = std::hint::black_box(model.forward(&x).unwrap());
        });
        rows.push((format!("{NAME} forward batch={batch} T={time}"), us, runs));
    }
    let cases = CASES.iter().map(|(b, t)| format!("{b}x{t}")).collect::<Vec<_>>().join(",");
    let extra = vec!["--name".into(), NAME.into(), "--cases".into(), cases];
    let reference = common::run_reference("bench_models.py", &rule, threads, &extra);
    common::print_table("model forward (µs per call, median)", &rows, reference.as_ref());
}
