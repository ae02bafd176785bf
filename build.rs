// Build script: puts libtorch on the run path of every artifact and regenerates include/cebra.h.
use std::env;
use std::path::PathBuf;

fn libtorch_dir() -> Option<PathBuf> {
    if let Ok(dir) = env::var("LIBTORCH") {
        return Some(PathBuf::from(dir));
    }
    let home = env::var("HOME").ok()?;
    let dir = PathBuf::from(home).join(".cache/cebra/libtorch-2.13.0-cpu");
    dir.exists().then_some(dir)
}

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    // An rpath on every binary (cdylib, tests, examples, CLI) so none needs LD_LIBRARY_PATH.
    if let Some(dir) = libtorch_dir() {
        let lib = dir.join("lib");
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
        // Keep libtorch_cpu in DT_NEEDED even though only libtorch.so's symbols are referenced.
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
    }

    // A SONAME, so programs record the library's name rather than the path they were linked with.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libcebra.so");

    let crate_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is readable");
    match cbindgen::Builder::new()
        // Only the C layer: the core's public items are not part of the C API.
        .with_src(crate_dir.join("src/ffi/mod.rs"))
        .with_config(config)
        .generate()
    {
        Ok(bindings) => {
            bindings.write_to_file(crate_dir.join("include/cebra.h"));
        }
        Err(err) => panic!("cbindgen could not generate include/cebra.h: {err}"),
    }
}
