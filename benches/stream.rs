//! Streaming latency through the C ABI, one thread: `offset10-model` (120 neurons, 32 units,
//! 8 outputs), p50/p99/max of `cebra_stream_push` over 100,000 pushes, and the same for plain
//! one-window forwards (`cebra_model_forward`, batch 1, 10 steps), in one run. With
//! `CEBRA_REFERENCE_PYTHON` set, also the reference's forward of one window.
//!
//! ```sh
//! cargo bench --bench stream
//! CEBRA_REFERENCE_PYTHON=/work/venv/bin/python cargo bench --bench stream
//! ```
mod common;
use cebra::ffi::*;
use std::time::Instant;

fn percentiles(mut ns: Vec<f64>) -> (f64, f64, f64) {
    ns.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let at = |q: f64| ns[((ns.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99), *ns.last().unwrap())
}

fn main() {
    let threads = common::set_threads();
    let smoke = common::smoke_run();
    let (pushes, forwards) = if smoke { (200, 20) } else { (100_000, 5_000) };
    let (n, u, o) = (120i64, 32i64, 8i64);
    println!("stream: offset10-model N={n} U={u} O={o}, one thread (libtorch threads = {threads}), isa {:?}", cebra::stream::Isa::detect());
    let data: Vec<f32> = (0..(pushes + 10) * n as usize).map(|i| ((i * 7919 % 2001) as f32 / 1000.0) - 1.0).collect();
    let mut model: *mut CebraModel = std::ptr::null_mut();
    let mut stream: *mut CebraStream = std::ptr::null_mut();
    let mut e = vec![0f32; o as usize];
    let mut ready = 0u8;
    let mut push_ns = Vec::with_capacity(pushes);
    let mut forward_ns = Vec::with_capacity(forwards);
    // SAFETY: handles are created, used with buffers of the stated sizes, and freed here.
    unsafe {
        assert_eq!(cebra_manual_seed(0), CEBRA_STATUS_OK);
        assert_eq!(cebra_model_init(c"offset10-model".as_ptr(), n, u, o, std::ptr::null(), &mut model), CEBRA_STATUS_OK);
        assert_eq!(cebra_stream_new(model, &mut stream), CEBRA_STATUS_OK);
        for k in 0..pushes + 10 {
            let sample = data[k * n as usize..].as_ptr();
            let start = Instant::now();
            let status = cebra_stream_push(stream, sample, n, e.as_mut_ptr(), o as usize, &mut ready);
            let ns = start.elapsed().as_nanos() as f64;
            assert_eq!(status, CEBRA_STATUS_OK);
            if k >= 10 {
                push_ns.push(ns);
            }
        }
        // One window of 10 steps as (1, N, 10).
        let window: Vec<f32> = data[..10 * n as usize].to_vec();
        let mut out_time = 0i64;
        for k in 0..forwards + 10 {
            let start = Instant::now();
            let status = cebra_model_forward(model, window.as_ptr(), 1, n, 10, e.as_mut_ptr(), o as usize, &mut out_time);
            let ns = start.elapsed().as_nanos() as f64;
            assert_eq!(status, CEBRA_STATUS_OK);
            if k >= 10 {
                forward_ns.push(ns);
            }
        }
        cebra_stream_free(stream);
        cebra_model_free(model);
    }
    println!("\n{:<44} | {:>9} | {:>9} | {:>9}", "per call (µs)", "p50", "p99", "max");
    for (label, ns) in [(format!("cebra_stream_push x{pushes}"), push_ns), (format!("cebra_model_forward 1x{n}x10 x{forwards}"), forward_ns)] {
        let (p50, p99, max) = percentiles(ns);
        println!("{label:<44} | {:>9.2} | {:>9.2} | {:>9.2}", p50 / 1e3, p99 / 1e3, max / 1e3);
    }
    // The core push by instruction set, in CPU time of this process (steadier than wall time on a
    // shared machine).
    println!("\nStream::push (core, no C boundary), CPU time per push:");
    for isa in cebra::stream::Isa::available().into_iter().filter(|i| *i != cebra::stream::Isa::Scalar) {
        tch::manual_seed(0);
        let model = cebra::init("offset10-model", &cebra::ModelArgs::new(n, u, o)).unwrap();
        let mut s = cebra::stream::Stream::with_isa(std::sync::Arc::new(std::sync::Mutex::new(model)), isa).unwrap();
        let mut e = vec![0f32; o as usize];
        let t0 = cpu_seconds();
        for k in 0..pushes {
            let _ = s.push(&data[k * n as usize..(k + 1) * n as usize], &mut e).unwrap();
        }
        println!("  {isa:?}: {:.2} µs", (cpu_seconds() - t0) * 1e6 / pushes as f64);
    }
    let rule = common::Rule::from_env();
    let extra = vec!["--name".into(), "offset10-model".into(), "--cases".into(), "1x10".into(), "--neurons".into(), n.to_string()];
    if let Some(r) = common::run_reference("bench_models.py", &rule, threads, &extra) {
        for (label, (us, runs)) in &r.rows {
            println!("reference {label}: median {us:.2} µs ({runs} runs)");
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
