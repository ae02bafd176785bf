// Puts libtorch on the run path of the fuzz binaries (the main crate's rpath only covers its own
// artifacts), so they run without LD_LIBRARY_PATH.
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let dir = std::env::var("LIBTORCH").map(PathBuf::from).ok().or_else(|| {
        let home = std::env::var("HOME").ok()?;
        Some(PathBuf::from(home).join(".cache/cebra/libtorch-2.13.0-cpu"))
    });
    if let Some(dir) = dir {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.join("lib").display());
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
    }
}
