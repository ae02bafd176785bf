//! Training: Adam, replayed solver steps and the kNN decoder against the reference's numbers
//! (tests/fixtures/training, from tools/reference/make_training_fixtures.py); the solver's contract
//! (determinism, early stop, save/load, errors) and a small quality check.
mod common;
use cebra::train::{
    r2_score, Adam, AdamConfig, BatchIndex, KnnDecoder, Labels, Metric, Progress, Solver, SolverOptions, Targets,
    Trainer,
};
use cebra::transform::{Layout, Recording};
use cebra::Options;
use common::{fixture, max_abs_diff, tensor, values};
use tch::{Kind, Tensor};

fn indices(t: &Tensor) -> Vec<i64> {
    values(t).iter().map(|&v| v as i64).collect()
}

#[test]
fn adam_matches_torch_optim_adam() {
    let f = fixture("training/adam.safetensors");
    let params: Vec<Tensor> = (0..2).map(|i| tensor(&f, &format!("p{i}_init")).copy().set_requires_grad(true)).collect();
    let mut adam = Adam::new(params.iter().map(|p| p.shallow_clone()).collect(), AdamConfig::new(0.01)).unwrap();
    for k in 0..4 {
        adam.zero_grad().unwrap();
        for (i, p) in params.iter().enumerate() {
            let name = format!("grad{k}_p{i}");
            if f.tensors.iter().any(|(n, _)| *n == name) {
                // Put the given gradient into .grad through autograd: d(sum(p * g))/dp = g.
                (p * tensor(&f, &name)).sum(Kind::Float).backward();
            }
        }
        adam.step().unwrap();
        for (i, p) in params.iter().enumerate() {
            let want = tensor(&f, &format!("p{i}_step{k}"));
            let diff = max_abs_diff(&p.detach(), want);
            assert!(diff <= 1e-7, "step {k} param {i}: {diff}");
        }
    }
}

/// Replays the reference solver's two steps of a fixture case and compares records and weights.
fn replay(case: &str) {
    let f = fixture(&format!("training/step-{case}.safetensors"));
    let options = SolverOptions::from_options(&Options::parse(&f.metadata["options"]).unwrap()).unwrap();
    let data = tensor(&f, "data");
    let (t, n) = (data.size()[0] as usize, data.size()[1] as usize);
    let data = values(data);
    let labels = Labels::continuous(values(tensor(&f, "labels")), 2);
    let recording = Recording::new(&data, t, n, Layout::RowMajor).unwrap();
    let mut trainer = Trainer::new(&options, &recording, &labels).unwrap();
    let init: Vec<(String, Tensor)> = f
        .tensors
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("init.").map(|k| (k.to_string(), v.shallow_clone())))
        .collect();
    trainer.model_mut().load_state_dict(&init).unwrap();
    let mut grad0: Vec<(String, Tensor)> = Vec::new();
    for k in 0..2 {
        let batch = BatchIndex {
            reference: indices(tensor(&f, &format!("batch{k}.reference"))),
            positive: indices(tensor(&f, &format!("batch{k}.positive"))),
            negative: indices(tensor(&f, &format!("batch{k}.negative"))),
        };
        let record = trainer.step(&batch, k + 1, 2).unwrap();
        let want = values(tensor(&f, &format!("record{k}")));
        let got = [record.loss, record.align, record.uniform, record.temperature];
        for (j, name) in ["loss", "align", "uniform", "temperature"].iter().enumerate() {
            let diff = (got[j] - want[j] as f64).abs();
            assert!(diff <= 2e-5 * (1.0 + want[j].abs() as f64), "{case} step {k} {name}: {} vs {}", got[j], want[j]);
        }
        if k == 0 {
            // The gradients stay in .grad until the next step clears them.
            grad0 = trainer.model_mut().state_dict().into_iter().map(|(key, t)| (key, t.grad().copy())).collect();
        }
    }
    let state = trainer.model_mut().state_dict();
    let mut compared = 0;
    let mut elements = (0usize, 0usize); // (all, compared)
    let global_scale = f
        .tensors
        .iter()
        .filter(|(k, _)| k.starts_with("grad0."))
        .map(|(_, g)| f64::try_from(g.abs().max()).unwrap())
        .fold(0.0, f64::max);
    for (key, grad) in &grad0 {
        // Parameter names (grad0.*) are the state-dict keys of the unique parameters.
        let Some((_, want_grad)) = f.tensors.iter().find(|(k, _)| k.strip_prefix("grad0.") == Some(key.as_str())) else {
            continue;
        };
        compared += 1;
        let scale = f64::try_from(want_grad.abs().max()).unwrap();
        let diff = max_abs_diff(grad, want_grad);
        assert!(diff <= 1e-5 * (1.0 + scale), "{case}: gradient of {key} differs by {diff} (scale {scale})");
        // Weights after two Adam steps. Adam turns a gradient at rounding-noise level into a full
        // step of either sign (e.g. a last-layer bias under a translation-invariant Euclidean loss
        // has a zero gradient in exact arithmetic), so elements whose first gradient is below 1e-4
        // of the model's largest are not compared.
        let want = tensor(&f, &format!("final.{key}"));
        let (_, got) = state.iter().find(|(k, _)| k == key).unwrap();
        let mask = want_grad.abs().ge(1e-4 * global_scale);
        elements.0 += want_grad.numel();
        elements.1 += i64::try_from(mask.sum(Kind::Int64)).unwrap() as usize;
        let diff = max_abs_diff(&got.detach().masked_select(&mask), &want.masked_select(&mask));
        assert!(diff <= 2e-5, "{case}: weight {key} differs by {diff}");
    }
    assert_eq!(compared, f.tensors.iter().filter(|(k, _)| k.starts_with("grad0.")).count(), "{case}: every parameter compared");
    assert!(elements.1 * 10 >= elements.0 * 9, "{case}: only {} of {} weights compared", elements.1, elements.0);
    if let Some((_, want)) = f.tensors.iter().find(|(k, _)| k == "final_criterion") {
        let got = trainer.criterion().state_dict();
        let diff = max_abs_diff(&got[0].1.detach().reshape([1]), want);
        assert!(diff <= 1e-5, "{case}: log inverse temperature differs by {diff}");
    }
}

#[test]
fn a_step_matches_the_reference_fixed_cosine() {
    replay("cosine");
}

#[test]
fn a_step_matches_the_reference_learnable_temperature() {
    replay("learnable");
}

#[test]
fn a_step_matches_the_reference_euclidean() {
    replay("euclidean");
}

#[test]
fn a_step_matches_the_reference_feedforward_model() {
    replay("feedforward");
}

#[test]
fn a_step_matches_the_reference_hybrid() {
    replay("hybrid");
}

#[test]
fn a_step_matches_the_reference_full_batch() {
    replay("fullbatch");
}

#[test]
fn knn_decoder_matches_sklearn() {
    let f = fixture("training/knn.safetensors");
    let (train, test) = (values(tensor(&f, "train")), values(tensor(&f, "test")));
    let as_f64 = |name: &str| values(tensor(&f, name)).iter().map(|&v| v as f64).collect::<Vec<_>>();
    let as_i64 = |name: &str| values(tensor(&f, name)).iter().map(|&v| v as i64).collect::<Vec<_>>();
    for metric in ["cosine", "euclidean"] {
        for k in [1, 3, 7] {
            let m = Metric::parse(metric).unwrap();
            let reg = KnnDecoder::fit(&train, 4, Targets::Continuous(as_f64("y_train"), 2), k, m).unwrap();
            let Targets::Continuous(pred, 2) = reg.predict(&test).unwrap() else { panic!() };
            let want = as_f64(&format!("{metric}.k{k}.regression"));
            let diff = pred.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            assert!(diff < 1e-5, "{metric} k={k} regression: {diff}");
            let r2 = reg.score(&test, &Targets::Continuous(as_f64("y_test"), 2)).unwrap();
            let want_r2 = as_f64(&format!("{metric}.k{k}.regression_r2"))[0];
            assert!((r2 - want_r2).abs() < 1e-5, "{metric} k={k} R²: {r2} vs {want_r2}");
            let cls = KnnDecoder::fit(&train, 4, Targets::Discrete(as_i64("c_train")), k, m).unwrap();
            let Targets::Discrete(pred) = cls.predict(&test).unwrap() else { panic!() };
            assert_eq!(pred, as_i64(&format!("{metric}.k{k}.classification")), "{metric} k={k} classification");
            let r2 = cls.score(&test, &Targets::Discrete(as_i64("c_test"))).unwrap();
            let want_r2 = as_f64(&format!("{metric}.k{k}.classification_r2"))[0];
            assert!((r2 - want_r2).abs() < 1e-5, "{metric} k={k} classification R²: {r2} vs {want_r2}");
        }
    }
}

#[test]
fn r2_of_a_constant_truth_follows_sklearn() {
    let truth = Targets::Continuous(vec![2.0; 4], 1);
    assert_eq!(r2_score(&truth, &Targets::Continuous(vec![2.0; 4], 1)).unwrap(), 1.0);
    assert_eq!(r2_score(&truth, &Targets::Continuous(vec![2.0, 2.0, 2.0, 3.0], 1)).unwrap(), 0.0);
    assert!(r2_score(&truth, &Targets::Continuous(vec![2.0; 3], 1)).is_err());
}

/// A rat on a 1-D track: position drives Gaussian place cells with Poisson-like noise.
fn place_cells(t: usize, neurons: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    let mut uniform = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((state >> 11) as f64 / (1u64 << 53) as f64) as f32
    };
    let position: Vec<f32> = (0..t).map(|i| 0.5 - 0.5 * (i as f32 * 0.02).cos()).collect();
    let mut data = vec![0f32; t * neurons];
    for i in 0..t {
        for j in 0..neurons {
            let centre = j as f32 / (neurons - 1) as f32;
            let rate = 3.0 * (-(position[i] - centre).powi(2) / (2.0 * 0.05f32.powi(2))).exp();
            data[i * neurons + j] = rate + 0.5 * (uniform() - 0.5);
        }
    }
    (data, position)
}

fn small_options() -> SolverOptions {
    SolverOptions::new()
        .model_architecture("offset10-model")
        .batch_size(128)
        .num_hidden_units(16)
        .output_dimension(3)
        .learning_rate(3e-3)
        .max_iterations(150)
        .seed(42)
}

#[test]
fn a_short_fit_decodes_the_latent_well_above_chance() {
    let (t, neurons) = (2000, 30);
    let (data, position) = place_cells(t, neurons, 1);
    let recording = Recording::new(&data, t, neurons, Layout::RowMajor).unwrap();
    let mut solver = Solver::new(small_options()).unwrap();
    let history = solver.fit(&recording, &Labels::continuous(position.clone(), 1), |_| Progress::Continue).unwrap();
    let start = history.loss[..10].iter().sum::<f64>() / 10.0;
    let end = history.loss[history.len() - 10..].iter().sum::<f64>() / 10.0;
    // With temperature 1 the cosine loss spans at most 2 (alignment from -1 to 1).
    assert!(end < start - 0.1, "loss went from {start} to {end}");
    let embedding = solver.transform(&recording).unwrap();
    let split = t * 4 / 5;
    let y: Vec<f64> = position.iter().map(|&p| p as f64).collect();
    let decoder =
        KnnDecoder::fit(&embedding[..split * 3], 3, Targets::Continuous(y[..split].to_vec(), 1), 5, Metric::Cosine).unwrap();
    let r2 = decoder.score(&embedding[split * 3..], &Targets::Continuous(y[split..].to_vec(), 1)).unwrap();
    assert!(r2 > 0.8, "decoding R² {r2}");
    // Chance: the same decoder on shuffled targets (a fixed pseudo-random permutation).
    let mut shuffled = y[..split].to_vec();
    for i in (1..shuffled.len()).rev() {
        shuffled.swap(i, (i * 7919 + 13) % (i + 1));
    }
    let chance = KnnDecoder::fit(&embedding[..split * 3], 3, Targets::Continuous(shuffled, 1), 5, Metric::Cosine)
        .unwrap()
        .score(&embedding[split * 3..], &Targets::Continuous(y[split..].to_vec(), 1))
        .unwrap();
    assert!(r2 > chance + 0.5, "R² {r2} vs chance {chance}");
}

fn weights_of(solver: &Solver) -> Vec<Tensor> {
    solver.trained_model().unwrap().state_dict().into_iter().map(|(_, t)| t.detach().copy()).collect()
}

#[test]
fn same_seed_same_weights_other_seed_other_weights() {
    let (data, position) = place_cells(400, 8, 2);
    let recording = Recording::new(&data, 400, 8, Layout::RowMajor).unwrap();
    let labels = Labels::continuous(position, 1);
    let fit = |seed: u64| {
        let mut s = Solver::new(small_options().max_iterations(10).batch_size(32).seed(seed)).unwrap();
        let h = s.fit(&recording, &labels, |_| Progress::Continue).unwrap();
        (weights_of(&s), h)
    };
    let (a, ha) = fit(7);
    let (b, hb) = fit(7);
    let (c, _) = fit(8);
    assert_eq!(ha, hb);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(max_abs_diff(x, y), 0.0);
    }
    assert!(a.iter().zip(&c).any(|(x, y)| max_abs_diff(x, y) > 0.0));
}

#[test]
fn early_stop_keeps_what_was_learned_and_save_load_round_trips() {
    let (data, position) = place_cells(400, 8, 3);
    let recording = Recording::new(&data, 400, 8, Layout::RowMajor).unwrap();
    let mut solver = Solver::new(small_options().temperature_mode(cebra::train::TemperatureMode::Auto)).unwrap();
    let mut seen = Vec::new();
    let history = solver
        .fit(&recording, &Labels::continuous(position, 1), |r| {
            seen.push((r.step, r.total_steps));
            if r.step == 4 { Progress::Stop } else { Progress::Continue }
        })
        .unwrap();
    assert_eq!(seen, vec![(1, 150), (2, 150), (3, 150), (4, 150)]);
    assert_eq!(history.len(), 4);
    assert!(history.temperature.iter().all(|&t| t >= 0.1 && t.is_finite()));
    let before = solver.transform(&recording).unwrap();
    let path = std::env::temp_dir().join(format!("cebra-train-test-{}.safetensors", std::process::id()));
    solver.save(&path).unwrap();
    let loaded = Solver::load(&path).unwrap();
    assert_eq!(loaded.options(), solver.options());
    assert_eq!(loaded.history().unwrap(), &history);
    assert_eq!(loaded.transform(&recording).unwrap(), before);
    assert!((loaded.criterion().unwrap().temperature() - solver.criterion().unwrap().temperature()).abs() < 1e-6);
    // The same file is a model file.
    let model = cebra::weights::load_model(&path).unwrap();
    let again = cebra::transform::transform(model.as_ref(), &recording, Default::default()).unwrap();
    assert_eq!(again, before);
    // A plain model file is not a solver.
    cebra::weights::save(model.as_ref(), &path).unwrap();
    let err = Solver::load(&path).unwrap_err();
    assert!(matches!(err, cebra::Error::Format(_)) && err.to_string().contains("not a saved solver"), "{err}");
    std::fs::remove_file(&path).unwrap();
    // model() is an independent copy.
    let copy = solver.model().unwrap();
    assert_eq!(cebra::transform::transform(copy.as_ref(), &recording, Default::default()).unwrap(), before);
}

#[test]
fn every_loader_and_mode_trains() {
    let (data, position) = place_cells(300, 6, 4);
    let recording = Recording::new(&data, 300, 6, Layout::RowMajor).unwrap();
    let classes: Vec<i64> = position.iter().map(|&p| (p * 3.0).min(2.0) as i64).collect();
    let cont = Labels::continuous(position.clone(), 1);
    let cases: Vec<(&str, SolverOptions, Labels)> = vec![
        ("time", small_options(), Labels::none()),
        ("time_delta", small_options(), cont.clone()),
        ("delta", small_options().conditional(cebra::train::Conditional::Delta).delta(0.1), cont.clone()),
        ("discrete", small_options(), Labels::discrete(classes.clone())),
        ("mixed", small_options(), cont.clone().with_discrete(classes.clone())),
        ("hybrid", small_options().hybrid(true), cont.clone()),
        ("full batch", small_options().batch_size(0), cont.clone()),
        ("full batch, time", small_options().batch_size(0), Labels::none()),
        ("euclidean", small_options().distance(cebra::train::Distance::Euclidean).model_architecture("offset10-model-mse"), cont.clone()),
        ("feed-forward", small_options().model_architecture("offset1-model"), cont.clone()),
        ("libtorch criterion", small_options().criterion_implementation("libtorch"), cont.clone()),
        ("dropout", small_options().model_architecture("offset36-model-dropout"), cont.clone()),
    ];
    for (name, options, labels) in cases {
        let mut solver = Solver::new(options.max_iterations(3)).unwrap();
        let h = solver.fit(&recording, &labels, |_| Progress::Continue).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(h.len(), 3, "{name}");
        assert!(h.loss.iter().all(|l| l.is_finite()), "{name}: {:?}", h.loss);
        assert_eq!(solver.transform(&recording).unwrap().len(), 300 * 3, "{name}");
    }
}

#[test]
fn fused_and_libtorch_criterions_train_alike() {
    let (data, position) = place_cells(400, 8, 5);
    let recording = Recording::new(&data, 400, 8, Layout::RowMajor).unwrap();
    let labels = Labels::continuous(position, 1);
    let run = |implementation: &str| {
        let mut s = Solver::new(small_options().max_iterations(5).criterion_implementation(implementation)).unwrap();
        s.fit(&recording, &labels, |_| Progress::Continue).unwrap()
    };
    let (a, b) = (run("fused"), run("libtorch"));
    for (x, y) in a.loss.iter().zip(&b.loss) {
        assert!((x - y).abs() < 1e-4, "{:?} vs {:?}", a.loss, b.loss);
    }
}

#[test]
fn bad_input_gets_clear_errors() {
    let (data, position) = place_cells(100, 4, 6);
    let recording = Recording::new(&data, 100, 4, Layout::RowMajor).unwrap();
    let labels = Labels::continuous(position.clone(), 1);
    let err = |options: SolverOptions, labels: &Labels| {
        let mut s = Solver::new(options).unwrap();
        s.fit(&recording, labels, |_| Progress::Continue).unwrap_err().to_string()
    };
    let o = small_options().max_iterations(2);
    assert!(err(o.clone(), &Labels::continuous(position[..50].to_vec(), 1)).contains("continuous labels"));
    assert!(err(o.clone(), &Labels::discrete(vec![-1; 100])).contains("non-negative"));
    assert!(err(o.clone().batch_size(0), &Labels::discrete(vec![0; 100])).contains("full-batch"));
    assert!(err(o.clone().hybrid(true), &Labels::none()).contains("hybrid"));
    assert!(err(o.clone().conditional(cebra::train::Conditional::Delta), &labels).contains("delta"));
    assert!(err(o.clone().model_architecture("supervised10-model"), &labels).contains("supervised"));
    assert!(err(o.clone().model_architecture("resample1-model"), &labels).contains("convolutional"));
    assert!(err(o.clone().hybrid(true).output_dimension(2), &labels).contains("output_dimension"));
    let mut nan = data.clone();
    nan[17] = f32::NAN;
    let nan_rec = Recording::new(&nan, 100, 4, Layout::RowMajor).unwrap();
    let mut s = Solver::new(o.clone()).unwrap();
    assert!(s.fit(&nan_rec, &labels, |_| Progress::Continue).unwrap_err().to_string().contains("finite"));
    // Not fitted; wrong width.
    assert!(s.transform(&recording).unwrap_err().to_string().contains("not fitted"));
    s.fit(&recording, &labels, |_| Progress::Continue).unwrap();
    let other = vec![0f32; 100 * 5];
    let e = s.transform(&Recording::new(&other, 100, 5, Layout::RowMajor).unwrap()).unwrap_err().to_string();
    assert!(e.contains("4 neurons"), "{e}");
    // Options.
    for (text, key) in [
        ("learning_rate=-1", "learning_rate"),
        ("temperature_mode=warm", "temperature_mode"),
        ("distance=manhattan", "distance"),
        ("conditional=space", "conditional"),
        ("batch_size=-3", "batch_size"),
        ("seed=-1", "seed"),
        ("device=tpu", "device"),
        ("optimizer=sgd", "optimizer"),
        ("model_architecture=offset10-modle", "offset10-model"),
        ("learning_rte=0.1", "learning_rte"),
    ] {
        let e = Solver::from_options_str(text).unwrap_err().to_string();
        assert!(e.contains(key), "{text}: {e}");
    }
    // CUDA on a CPU-only libtorch is refused with the reason.
    if !tch::Cuda::is_available() {
        let e = Solver::from_options_str("device=cuda").unwrap_err().to_string();
        assert!(e.contains("CUDA"), "{e}");
    }
}

#[test]
fn column_major_data_trains_as_row_major() {
    let (data, position) = place_cells(200, 5, 7);
    let mut col = vec![0f32; data.len()];
    for t in 0..200 {
        for c in 0..5 {
            col[c * 200 + t] = data[t * 5 + c];
        }
    }
    let labels = Labels::continuous(position, 1);
    let fit = |d: &[f32], layout| {
        let mut s = Solver::new(small_options().max_iterations(3).batch_size(16)).unwrap();
        s.fit(&Recording::new(d, 200, 5, layout).unwrap(), &labels, |_| Progress::Continue).unwrap()
    };
    assert_eq!(fit(&data, Layout::RowMajor), fit(&col, Layout::ColMajor));
}

/// A model defined by C callbacks computes outside libtorch: the solver refuses it, saying why.
#[test]
fn a_callback_model_is_refused_with_the_reason() {
    use cebra::ffi::*;
    unsafe extern "C" fn zeros(
        _user: *mut std::ffi::c_void, _input: *const f32, batch: i64, _num_input: i64, _time: i64,
        output: *mut f32, num_output: i64, out_time: i64,
    ) -> i32 {
        for i in 0..(batch * num_output * out_time) as usize {
            // SAFETY: inside (batch, num_output, out_time), as libcebra passes.
            unsafe { *output.add(i) = 0.0 };
        }
        0
    }
    // SAFETY: a valid NUL-terminated name and a callback of the declared type.
    unsafe {
        assert_eq!(cebra_register_callback(c"train-test-cb".as_ptr(), 1, 2, Some(zeros), std::ptr::null_mut(), None, 0), CEBRA_STATUS_OK);
    }
    let data = vec![0.5f32; 50 * 3];
    let recording = Recording::new(&data, 50, 3, Layout::RowMajor).unwrap();
    let mut solver = Solver::new(small_options().model_architecture("train-test-cb").max_iterations(2)).unwrap();
    let err = solver.fit(&recording, &Labels::none(), |_| Progress::Continue).unwrap_err().to_string();
    assert!(err.contains("cannot be trained"), "{err}");
    // SAFETY: a valid NUL-terminated name.
    unsafe { assert_eq!(cebra_unregister(c"train-test-cb".as_ptr()), CEBRA_STATUS_OK) };
}

/// Fits started on several threads at once each get their seed's weights (the seeding and the weight
/// draw share libtorch's global generator; the solver serialises them).
#[test]
fn concurrent_fits_follow_their_seeds() {
    let (data, position) = place_cells(300, 6, 9);
    let fit = |seed: u64| {
        let recording = Recording::new(&data, 300, 6, Layout::RowMajor).unwrap();
        let mut s = Solver::new(small_options().max_iterations(3).batch_size(16).seed(seed)).unwrap();
        s.fit(&recording, &Labels::continuous(position.clone(), 1), |_| Progress::Continue).unwrap();
        weights_of(&s)
    };
    let alone = [fit(1), fit(2)];
    for _ in 0..3 {
        let together: Vec<Vec<Tensor>> = std::thread::scope(|scope| {
            let handles: Vec<_> = [1u64, 2, 1, 2].iter().map(|&seed| scope.spawn(move || fit(seed))).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (i, weights) in together.iter().enumerate() {
            for (a, b) in weights.iter().zip(&alone[i % 2]) {
                assert_eq!(max_abs_diff(a, b), 0.0, "thread {i}");
            }
        }
    }
}
