//! Every artifact runs without `LD_LIBRARY_PATH`: build.rs puts libtorch's directory on the run path
//! of the cdylib, the test binaries and the CLI. Checked with `readelf -d` and by starting programs
//! with an empty environment.
use std::path::{Path, PathBuf};
use std::process::Command;

/// The cdylib built with this test: cargo writes it next to the test binary, in
/// `target/<profile>/deps`, and copies it to `target/<profile>` when the library is a build goal.
fn cdylib() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("target/<profile>/deps");
    let candidates = [deps.join("libcebra.so"), deps.parent().unwrap_or(deps).join("libcebra.so")];
    candidates.iter().find(|p| p.is_file()).unwrap_or(&candidates[0]).clone()
}

/// The RUNPATH/RPATH entries of an ELF file, from `readelf -d`.
fn run_path(file: &Path) -> Vec<PathBuf> {
    let out = Command::new("readelf")
        .arg("-d")
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run readelf (binutils) on {}: {e}", file.display()));
    assert!(out.status.success(), "readelf -d {} failed: {}", file.display(), String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter(|l| l.contains("(RUNPATH)") || l.contains("(RPATH)"))
        .filter_map(|l| Some(l[l.find('[')? + 1..l.rfind(']')?].to_string()))
        .flat_map(|paths| paths.split(':').map(PathBuf::from).collect::<Vec<_>>())
        .collect()
}

fn assert_finds_libtorch(file: &Path) {
    assert!(file.exists(), "{} was not built", file.display());
    let dirs = run_path(file);
    assert!(
        dirs.iter().any(|d| d.join("libtorch_cpu.so").is_file()),
        "the run path of {} ({dirs:?}) has no directory with libtorch_cpu.so",
        file.display()
    );
}

#[test]
fn cdylib_run_path_reaches_libtorch() {
    assert_finds_libtorch(&cdylib());
}

#[test]
fn test_binary_and_cli_run_paths_reach_libtorch() {
    assert_finds_libtorch(&std::env::current_exe().unwrap());
    assert_finds_libtorch(Path::new(env!("CARGO_BIN_EXE_cebra")));
}

#[test]
fn cli_starts_with_an_empty_environment() {
    let out = Command::new(env!("CARGO_BIN_EXE_cebra"))
        .args(["list", "--limit", "3"])
        .env_clear()
        .output()
        .expect("cebra CLI starts");
    assert!(out.status.success(), "cebra list failed: {}", String::from_utf8_lossy(&out.stderr));
    let names: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
    assert_eq!(names, ["offset10-model", "offset10-model-mse", "offset5-model"]);
}

/// Run by `test_binary_starts_with_an_empty_environment` in a child process; uses libtorch.
#[test]
fn child_uses_libtorch() {
    let t = tch::Tensor::from_slice(&[1.0f32, 2.0, 3.0]).sum(tch::Kind::Float);
    assert_eq!(t.double_value(&[]), 6.0);
}

#[test]
fn test_binary_starts_with_an_empty_environment() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_uses_libtorch", "--test-threads", "1"])
        .env_clear()
        .output()
        .expect("test binary starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "the test binary did not run under an empty environment:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn cdylib_soname_carries_the_abi_version() {
    let out = Command::new("readelf").arg("-d").arg(cdylib()).output().expect("readelf runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let expected = format!("[libcebra.so.{}]", cebra::ffi::CEBRA_ABI_VERSION);
    assert!(text.lines().any(|l| l.contains("(SONAME)") && l.contains(&expected)), "no SONAME {expected} in:\n{text}");
}
