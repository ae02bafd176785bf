//! The training commands of the `cebra` binary, run as a user would: `synth`, `fit`, `transform` of a
//! saved solver, `plot` and `decode`, and the errors they give for bad input.
use ndarray::{Array1, Array2};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A fresh scratch directory per test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cebra-cli-train-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn cebra<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_cebra")).args(args).output().expect("cebra runs")
}

fn ok(out: &Output) -> String {
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "cebra failed ({}):\nstdout: {stdout}\nstderr: {stderr}", out.status);
    stdout.into_owned()
}

/// Runs a command that must fail; returns its stderr, which must contain every one of `expect`.
fn fails<S: AsRef<std::ffi::OsStr>>(args: &[S], expect: &[&str]) -> String {
    let out = cebra(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "accepted: {:?}\nstderr: {stderr}", args.iter().map(|a| a.as_ref().to_owned()).collect::<Vec<_>>());
    assert_ne!(out.status.code(), Some(0));
    for e in expect {
        assert!(stderr.contains(e), "stderr lacks '{e}': {stderr}");
    }
    stderr
}

fn p(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// A small synthetic recording (300 steps, 16 neurons) written by `cebra synth`.
fn small_recording(dir: &Path) {
    ok(&cebra(["synth", "-o", &p(dir), "--timesteps", "300", "--neurons", "16", "--seed", "3"]));
}

const FIT_FLAGS: &[&str] = &[
    "--model-architecture",
    "offset10-model",
    "--batch-size",
    "32",
    "--max-iterations",
    "12",
    "--output-dimension",
    "3",
    "--learning-rate",
    "0.003",
    "--seed",
    "5",
];

fn fit(dir: &Path, extra: &[&str], output: &str) -> Output {
    let mut args = vec!["fit".to_string(), p(&dir.join("neural.npy")), "--labels".into(), p(&dir.join("position.npy"))];
    args.extend(FIT_FLAGS.iter().map(|s| s.to_string()));
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(["-o".to_string(), p(&dir.join(output))]);
    cebra(args)
}

fn read2(path: &Path) -> Array2<f32> {
    ndarray_npy::read_npy(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn synth_is_deterministic_and_shaped_as_documented() {
    let (a, b) = (scratch("synth-a"), scratch("synth-b"));
    small_recording(&a);
    small_recording(&b);
    for name in ["neural.npy", "position.npy", "behaviour.npy"] {
        assert_eq!(std::fs::read(a.join(name)).unwrap(), std::fs::read(b.join(name)).unwrap(), "{name} differs between runs");
    }
    let (neural, position, behaviour) = (read2(&a.join("neural.npy")), read2(&a.join("position.npy")), read2(&a.join("behaviour.npy")));
    assert_eq!(neural.dim(), (300, 16));
    assert_eq!(position.dim(), (300, 1));
    assert_eq!(behaviour.dim(), (300, 3));
    assert!(neural.iter().all(|&v| v >= 0.0 && v.fract() == 0.0), "spike counts are non-negative integers");
    assert!(neural.sum() > 0.0);
    assert!(position.iter().all(|&x| (0.0..=1.6).contains(&x)));
    // The rat turns: both running directions occur, and the one-hot columns are exclusive.
    assert!(behaviour.rows().into_iter().all(|r| r[1] + r[2] == 1.0 && r[0] == r.to_vec()[0]));
    assert!(behaviour.column(1).sum() > 0.0 && behaviour.column(2).sum() > 0.0);
    assert_eq!(behaviour.column(0), position.column(0));
    // Another seed, another recording.
    let c = scratch("synth-c");
    ok(&cebra(["synth", "-o", &p(&c), "--timesteps", "300", "--neurons", "16", "--seed", "4"]));
    assert_ne!(std::fs::read(a.join("neural.npy")).unwrap(), std::fs::read(c.join("neural.npy")).unwrap());
    for d in [a, b, c] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn fit_saves_a_solver_that_transform_plot_and_decode_read() {
    let dir = scratch("pipeline");
    small_recording(&dir);
    let csv = dir.join("loss.csv");
    let emb = dir.join("fit-embedding.npy");
    let out = fit(&dir, &["--loss-csv", &p(&csv), "--embedding", &p(&emb)], "model.safetensors");
    let stdout = ok(&out);
    assert!(stdout.contains("fitted 12 steps"), "{stdout}");
    // Not a terminal: plain progress lines on stderr.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("step 1/12 loss") && stderr.contains("step 12/12 loss"), "{stderr}");

    // The saved file is a solver (options and history) and a model.
    let model_path = dir.join("model.safetensors");
    let solver = cebra::train::Solver::load(&model_path).unwrap();
    assert_eq!(solver.options().model_architecture, "offset10-model");
    assert_eq!(solver.options().batch_size, 32);
    assert_eq!(solver.options().seed, Some(5));
    assert_eq!(solver.options().output_dimension, 3);
    let history = solver.history().unwrap();
    assert_eq!(history.len(), 12);
    let lines: Vec<String> = std::fs::read_to_string(&csv).unwrap().lines().map(str::to_string).collect();
    assert_eq!(lines[0], "step,loss,align,uniform,temperature");
    assert_eq!(lines.len(), 13);
    for (i, line) in lines[1..].iter().enumerate() {
        let cells: Vec<f64> = line.split(',').map(|c| c.parse().unwrap()).collect();
        assert_eq!(cells[0] as usize, i + 1);
        assert_eq!(cells[1], history.loss[i], "loss.csv step {}", i + 1);
        assert_eq!(cells[4], history.temperature[i]);
    }

    // `cebra transform` reads the solver file as a model; it agrees with the solver's own transform
    // (written by fit --embedding) and with the library's.
    let transformed = dir.join("transformed.npy");
    ok(&cebra(["transform", &p(&model_path), &p(&dir.join("neural.npy")), "-o", &p(&transformed), "-q"]));
    let (a, b) = (read2(&emb), read2(&transformed));
    assert_eq!(a.dim(), (300, 3));
    assert_eq!(a.dim(), b.dim());
    let diff = a.iter().zip(b.iter()).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    assert!(diff <= 1e-5, "transform of the saved solver differs from fit --embedding by {diff}");
    let data = read2(&dir.join("neural.npy"));
    let recording = cebra::transform::Recording::new(data.as_slice().unwrap(), 300, 16, cebra::transform::Layout::RowMajor).unwrap();
    let library = solver.transform(&recording).unwrap();
    let diff = library.iter().zip(b.iter()).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    assert!(diff <= 1e-5, "library transform differs by {diff}");
    // The embedding of offset10-model is normalised (cosine): rows on the unit sphere.
    assert!(b.rows().into_iter().all(|r| (r.dot(&r) - 1.0).abs() < 1e-4));

    // Plots: valid PNGs of the requested size whose pixels vary.
    let emb_png = dir.join("emb.png");
    ok(&cebra(["plot", &p(&transformed), "--color", &p(&dir.join("position.npy")), "-o", &p(&emb_png)]));
    check_png(&emb_png, (800, 800));
    let emb2_png = dir.join("emb2.png");
    ok(&cebra(["plot", &p(&transformed), "--dims", "0,2", "--size", "300", "-o", &p(&emb2_png)]));
    check_png(&emb2_png, (300, 300));
    let loss_png = dir.join("loss.png");
    ok(&cebra(["plot", "--loss", &p(&model_path), "-o", &p(&loss_png)]));
    check_png(&loss_png, (800, 500));

    // Decode with a held-out tail; the R² printed is what the library computes on the same split.
    let predictions = dir.join("predictions.npy");
    let stdout = ok(&cebra([
        "decode",
        "--model",
        &p(&model_path),
        "--data",
        &p(&dir.join("neural.npy")),
        "--labels",
        &p(&dir.join("position.npy")),
        "--split",
        "0.8",
        "-o",
        &p(&predictions),
    ]));
    let r2 = parse_r2(&stdout);
    let model = cebra::weights::load_model(&model_path).unwrap();
    let position = read2(&dir.join("position.npy"));
    let embed = |r: std::ops::Range<usize>| {
        let part = &data.as_slice().unwrap()[r.start * 16..r.end * 16];
        let rec = cebra::transform::Recording::new(part, r.len(), 16, cebra::transform::Layout::RowMajor).unwrap();
        cebra::transform::transform(model.as_ref(), &rec, Default::default()).unwrap()
    };
    let targets = |r: std::ops::Range<usize>| {
        cebra::train::Targets::Continuous(position.as_slice().unwrap()[r].iter().map(|&v| v as f64).collect(), 1)
    };
    let decoder = cebra::train::KnnDecoder::fit(&embed(0..240), 3, targets(0..240), 3, cebra::train::Metric::Cosine).unwrap();
    let expected = decoder.score(&embed(240..300), &targets(240..300)).unwrap();
    assert!((r2 - expected).abs() < 5e-5, "printed R2 {r2}, library {expected}");
    assert!(stdout.contains("240 training rows, 60 test rows"), "{stdout}");
    assert_eq!(read2(&predictions).dim(), (60, 1));

    // The same decoding from explicit embeddings and labels.
    let write = |name: &str, a: Vec<f32>, rows: usize, cols: usize| {
        let path = dir.join(name);
        ndarray_npy::write_npy(&path, &Array2::from_shape_vec((rows, cols), a).unwrap()).unwrap();
        p(&path)
    };
    let train_e = write("train-e.npy", embed(0..240), 240, 3);
    let test_e = write("test-e.npy", embed(240..300), 60, 3);
    let train_l = write("train-l.npy", position.as_slice().unwrap()[..240].to_vec(), 240, 1);
    let test_l = write("test-l.npy", position.as_slice().unwrap()[240..].to_vec(), 60, 1);
    let stdout = ok(&cebra(["decode", "--train-embedding", &train_e, "--train-labels", &train_l, "--test-embedding", &test_e, "--test-labels", &test_l]));
    assert!((parse_r2(&stdout) - expected).abs() < 5e-5, "{stdout}");
    // Euclidean and k = 5 reach the library's numbers too.
    let stdout = ok(&cebra([
        "decode", "--train-embedding", &train_e, "--train-labels", &train_l, "--test-embedding", &test_e, "--test-labels", &test_l, "--k",
        "5", "--metric", "euclidean",
    ]));
    let decoder = cebra::train::KnnDecoder::fit(&embed(0..240), 3, targets(0..240), 5, cebra::train::Metric::Euclidean).unwrap();
    let expected = decoder.score(&embed(240..300), &targets(240..300)).unwrap();
    assert!((parse_r2(&stdout) - expected).abs() < 5e-5, "{stdout} vs {expected}");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn parse_r2(stdout: &str) -> f64 {
    let value = stdout.split_whitespace().skip_while(|w| *w != "R2").nth(1).unwrap_or_else(|| panic!("no R2 in {stdout}"));
    let r2: f64 = value.trim_end_matches(',').parse().unwrap();
    assert!(r2.is_finite() && r2 <= 1.0, "{r2}");
    r2
}

fn check_png(path: &Path, size: (u32, u32)) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap_or_else(|e| panic!("{}: not a PNG: {e}", path.display()));
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), size, "{}", path.display());
    assert_eq!(info.color_type, png::ColorType::Rgb);
    let mut colours: Vec<[u8; 3]> = buf[..info.buffer_size()].chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect();
    let white = colours.iter().filter(|c| **c == [255, 255, 255]).count();
    colours.sort_unstable();
    colours.dedup();
    assert!(colours.len() > 20, "{}: only {} distinct colours", path.display(), colours.len());
    assert!(white > buf.len() / 3 / 4, "{}: the background is white", path.display());
}

#[test]
fn fit_is_reproducible_from_the_seed_and_reads_npz_safetensors_and_discrete_labels() {
    let dir = scratch("formats");
    small_recording(&dir);
    ok(&fit(&dir, &["-q", "--loss-csv", &p(&dir.join("a.csv"))], "a.safetensors"));
    ok(&fit(&dir, &["-q", "--loss-csv", &p(&dir.join("b.csv"))], "b.safetensors"));
    let (a, b) = (std::fs::read_to_string(dir.join("a.csv")).unwrap(), std::fs::read_to_string(dir.join("b.csv")).unwrap());
    assert_eq!(a, b, "same seed, different losses");
    // The same options through --options give the same fit.
    let neural = p(&dir.join("neural.npy"));
    let position = p(&dir.join("position.npy"));
    ok(&cebra([
        "fit",
        &neural,
        "--continuous",
        &position,
        "--options",
        "model_architecture=offset10-model;batch_size=32;max_iterations=12;output_dimension=3;learning_rate=0.003;seed=5",
        "--loss-csv",
        &p(&dir.join("c.csv")),
        "-q",
        "-o",
        &p(&dir.join("c.safetensors")),
    ]));
    assert_eq!(a, std::fs::read_to_string(dir.join("c.csv")).unwrap(), "--options differs from the flags");

    // .npz with named arrays, and a .safetensors recording: the same data, the same fit.
    let data = read2(&dir.join("neural.npy"));
    let pos = read2(&dir.join("position.npy"));
    let npz = dir.join("recording.npz");
    let mut writer = ndarray_npy::NpzWriter::new_compressed(std::fs::File::create(&npz).unwrap());
    writer.add_array("neural", &data).unwrap();
    writer.add_array("position", &pos.mapv(f64::from)).unwrap(); // float64 labels are read too
    writer.finish().unwrap();
    let st = dir.join("recording.safetensors");
    let tensor = tch::Tensor::from_slice(data.as_slice().unwrap()).view([300, 16]);
    cebra::weights::write_file(&st, &[("neural".to_string(), tensor)], Default::default()).unwrap();
    let mut args: Vec<String> = vec!["fit".into(), format!("{}:neural", p(&npz)), "--labels".into(), format!("{}:position", p(&npz))];
    args.extend(FIT_FLAGS.iter().map(|s| s.to_string()));
    args.extend(["-q", "--loss-csv"].map(String::from));
    args.extend([p(&dir.join("d.csv")), "-o".into(), p(&dir.join("d.safetensors"))]);
    ok(&cebra(&args));
    args[1] = p(&st); // its only tensor
    let csv_arg = args.len() - 3;
    args[csv_arg] = p(&dir.join("e.csv"));
    ok(&cebra(&args));
    let d = std::fs::read_to_string(dir.join("d.csv")).unwrap();
    let e = std::fs::read_to_string(dir.join("e.csv")).unwrap();
    // float64 labels are converted to float32, as the recording in the .npy files was written.
    assert_eq!(a, d, ".npz input gives another fit");
    assert_eq!(a, e, ".safetensors input gives another fit");

    // Integer labels are discrete: the fit runs with the discrete sampler (another loss curve).
    let classes: Array1<i64> = pos.column(0).mapv(|x| (x / 0.4) as i64);
    let classes_path = dir.join("classes.npy");
    ndarray_npy::write_npy(&classes_path, &classes).unwrap();
    let mut args: Vec<String> = vec!["fit".into(), neural.clone(), "--labels".into(), p(&classes_path)];
    args.extend(FIT_FLAGS.iter().map(|s| s.to_string()));
    args.extend(["-o".into(), p(&dir.join("f.safetensors"))]);
    let stderr = String::from_utf8_lossy(&cebra(&args).stderr).into_owned();
    assert!(stderr.contains("discrete labels"), "{stderr}");
    // Float labels through --discrete are refused.
    args[2] = "--discrete".into();
    args[3] = position.clone();
    let msg = fails(&args, &["discrete labels", "holds floats"]);
    assert!(msg.contains("position.npy"), "{msg}");
    // Discrete labels decode as classes.
    let stdout = ok(&cebra([
        "decode",
        "--model",
        &p(&dir.join("a.safetensors")),
        "--data",
        &neural,
        "--labels",
        &p(&classes_path),
        "-o",
        &p(&dir.join("classes-predicted.npy")),
    ]));
    parse_r2(&stdout);
    let predicted: Array1<i64> = ndarray_npy::read_npy(dir.join("classes-predicted.npy")).unwrap();
    assert_eq!(predicted.len(), 60);
    assert!(predicted.iter().all(|c| (0..=4).contains(c)));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_input_gets_a_clear_error_and_a_nonzero_exit() {
    let dir = scratch("errors");
    small_recording(&dir);
    let neural = p(&dir.join("neural.npy"));
    let position = p(&dir.join("position.npy"));
    let out = p(&dir.join("out.safetensors"));
    let base = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = vec!["fit".into(), neural.clone(), "--labels".into(), position.clone()];
        v.extend(FIT_FLAGS.iter().map(|s| s.to_string()));
        v.extend(extra.iter().map(|s| s.to_string()));
        v.extend(["-q".into(), "-o".into(), out.clone()]);
        v
    };
    // Missing files.
    let missing = p(&dir.join("nothing.npy"));
    fails(&["fit", &missing, "-o", &out], &["nothing.npy", "no such file"]);
    let mut args = base(&[]);
    args[3] = missing.clone();
    fails(&args, &["nothing.npy", "no such file"]);
    // Wrong shapes: 1-D data, 3-D labels.
    let one_d = dir.join("one-d.npy");
    ndarray_npy::write_npy(&one_d, &Array1::<f32>::zeros(300)).unwrap();
    fails(&["fit", &p(&one_d), "-o", &out], &["2-D (time, neurons)", "[300]"]);
    let three_d = dir.join("three-d.npy");
    ndarray_npy::write_npy(&three_d, &ndarray::Array3::<f32>::zeros((300, 1, 2))).unwrap();
    let mut args = base(&[]);
    args[3] = p(&three_d);
    fails(&args, &["1-D or 2-D", "[300, 1, 2]"]);
    // NaN in the data.
    let mut data = read2(&dir.join("neural.npy"));
    data[[17, 3]] = f32::NAN;
    let nan = dir.join("nan.npy");
    ndarray_npy::write_npy(&nan, &data).unwrap();
    fails(&["fit", &p(&nan), "-o", &out], &["finite", "(17, 3)", "NaN"]);
    // Labels of another length.
    let short = dir.join("short.npy");
    ndarray_npy::write_npy(&short, &Array2::<f32>::zeros((299, 1))).unwrap();
    let mut args = base(&[]);
    args[3] = p(&short);
    fails(&args, &["299 rows", "300 time steps", "must match"]);
    // Unknown or bad options name the option.
    fails(&base(&["--options", "learning_rte=0.1"]), &["learning_rte"]);
    fails(&base(&["--distance", "manhattan"]), &["distance", "manhattan"]);
    fails(&base(&["--options", "batch_size=8"]), &["batch_size", "--batch-size", "--options"]);
    fails(&base(&["--temperature", "-1"]), &["temperature"]);
    fails(&base(&["--min-temperature", "0"]), &["min_temperature", "--min-temperature", "positive"]);
    fails(&["fit", &neural, "--model-architecture", "offset10-modle", "-o", &out], &["offset10-modle"]);
    fails(&base(&["--device", "tpu"]), &["device", "tpu"]);
    fails(&base(&["--bogus-flag", "1"]), &["--bogus-flag"]);
    // Wrong output types.
    let mut args = base(&[]);
    let last = args.len() - 1;
    args[last] = p(&dir.join("model.pt"));
    fails(&args, &["model.pt", ".safetensors"]);
    // An .npz without a name for one of several arrays; a name it does not have.
    let npz = dir.join("two.npz");
    let mut writer = ndarray_npy::NpzWriter::new(std::fs::File::create(&npz).unwrap());
    writer.add_array("a", &Array2::<f32>::zeros((300, 4))).unwrap();
    writer.add_array("b", &Array2::<f32>::zeros((300, 4))).unwrap();
    writer.finish().unwrap();
    fails(&["fit", &p(&npz), "-o", &out], &["2 arrays", "a, b", "FILE.npz:NAME"]);
    fails(&["fit", &format!("{}:c", p(&npz)), "-o", &out], &["no array 'c'", "a, b"]);
    // Not an array file.
    let text = dir.join("notes.npy");
    std::fs::write(&text, "not numpy").unwrap();
    fails(&["fit", &p(&text), "-o", &out], &["notes.npy"]);
    let mut args = base(&[]);
    let last = args.len() - 1;
    args[last] = p(&dir.join("no-such-dir/model.safetensors"));
    fails(&args, &["no-such-dir", "does not exist"]);
    fails(&base(&["--loss-csv", &p(&dir.join("no-such-dir/loss.csv"))]), &["no-such-dir", "does not exist"]);
    assert!(!Path::new(&out).exists(), "a failed fit wrote its output");

    // plot and decode.
    fails(&["plot", &neural, "--dims", "0,99", "-o", &p(&dir.join("x.png"))], &["dimension 99", "16"]);
    fails(&["plot", &neural, "--color", &p(&short), "-o", &p(&dir.join("x.png"))], &["299 rows", "300"]);
    fails(&["plot", &neural, "-o", &p(&dir.join("x.jpg"))], &[".png"]);
    fails(&["plot", "--loss", &missing, "-o", &p(&dir.join("x.png"))], &["nothing.npy"]);
    let plain_model = dir.join("plain.safetensors");
    let model = cebra::init("offset10-model", &cebra::ModelArgs::new(16, 8, 3)).unwrap();
    cebra::weights::save(model.as_ref(), &plain_model).unwrap();
    fails(&["plot", "--loss", &p(&plain_model), "-o", &p(&dir.join("x.png"))], &["not a saved solver"]);
    fails(&["plot", "-o", &p(&dir.join("x.png"))], &["<EMBEDDING>"]);
    let decode = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["decode", "--model", &p(&plain_model), "--data", &neural, "--labels", &position].map(String::from).to_vec();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    ok(&cebra(decode(&[])));
    fails(&decode(&["--split", "1.5"]), &["--split", "1.5"]);
    fails(&decode(&["--metric", "manhattan"]), &["metric", "manhattan"]);
    fails(&decode(&["--k", "0"]), &["n_neighbors"]);
    let mut args = decode(&[]);
    args[6] = p(&short);
    fails(&args, &["299 rows", "300 time steps"]);
    let other = dir.join("other-neurons.npy");
    ndarray_npy::write_npy(&other, &Array2::<f32>::zeros((300, 5))).unwrap();
    let mut args = decode(&[]);
    args[4] = p(&other);
    fails(&args, &["5", "16"]);
    fails(&["decode", "--train-embedding", &neural], &["--train-labels"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ctrl_c_stops_the_fit_and_saves_what_it_learned() {
    use std::io::{BufRead, BufReader};
    let dir = scratch("interrupt");
    small_recording(&dir);
    let model = dir.join("model.safetensors");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cebra"))
        .args(["fit", &p(&dir.join("neural.npy")), "--model-architecture", "offset10-model", "--batch-size", "32"])
        .args(["--max-iterations", "1000000", "--output-dimension", "3", "--seed", "1", "-o", &p(&model)])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.starts_with("step 1/") {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "cebra fit ended before its first step");
    }
    // SAFETY: the child's pid, a running process we own; SIGINT asks it to stop.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) }, 0);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}: {rest}");
    assert!(rest.contains("interrupted: stopped after step"), "{rest}");
    let solver = cebra::train::Solver::load(&model).unwrap();
    let steps = solver.history().unwrap().len();
    assert!((1..1_000_000).contains(&steps), "{steps} steps");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `cebra decode` against the reference `cebra.KNNDecoder` (tools/reference/make_decode_fixtures.py):
/// R² and predictions for k = 3 and 5, cosine and euclidean, regression and classification, read
/// from a numpy-written `.npz`.
#[test]
fn decode_matches_the_reference_knn_decoder() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/decode");
    let npz = p(&fixtures.join("decode.npz"));
    let expected: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fixtures.join("decode.json")).unwrap()).unwrap();
    let dir = scratch("decode-reference");
    let cases = expected["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 8);
    for case in cases {
        let (k, metric, target) = (case["k"].as_u64().unwrap(), case["metric"].as_str().unwrap(), case["target"].as_str().unwrap());
        let predictions = dir.join(format!("{k}-{metric}-{target}.npy"));
        let stdout = ok(&cebra([
            "decode",
            "--train-embedding",
            &format!("{npz}:train_embedding"),
            "--train-labels",
            &format!("{npz}:train_{target}"),
            "--test-embedding",
            &format!("{npz}:test_embedding"),
            "--test-labels",
            &format!("{npz}:test_{target}"),
            "--k",
            &k.to_string(),
            "--metric",
            metric,
            "-o",
            &p(&predictions),
        ]));
        let r2 = parse_r2(&stdout);
        let reference_r2 = case["r2"].as_f64().unwrap();
        assert!((r2 - reference_r2).abs() <= 1e-6, "k {k} {metric} {target}: R2 {r2}, reference {reference_r2}");
        let reference: Vec<f64> = case["predictions"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        let ours: Vec<f64> = if target == "classes" {
            ndarray_npy::read_npy::<_, Array1<i64>>(&predictions).unwrap().iter().map(|&c| c as f64).collect()
        } else {
            read2(&predictions).iter().map(|&v| v as f64).collect()
        };
        assert_eq!(ours.len(), reference.len(), "k {k} {metric} {target}");
        for (i, (a, b)) in ours.iter().zip(&reference).enumerate() {
            assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "k {k} {metric} {target}: prediction {i} is {a}, reference {b}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
