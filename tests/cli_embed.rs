//! `cebra embed` reports bad input files with a message that names the problem.
use std::collections::HashMap;
use std::process::Command;

#[test]
fn embed_rejects_one_dimensional_data_by_its_shape() {
    let dir = std::env::temp_dir().join(format!("cebra-cli-embed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("data.safetensors");
    let weights = dir.join("weights.safetensors");
    let data = tch::Tensor::from_slice(&[0.5f32; 20]); // (20,): no neuron axis
    cebra::weights::write_file(&input, &[("data".to_string(), data)], HashMap::new()).unwrap();
    let model = cebra::init("offset10-model", &cebra::ModelArgs::new(1, 4, 2)).unwrap();
    cebra::weights::save(model.as_ref(), &weights).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cebra"))
        .args(["embed", "--weights"])
        .arg(&weights)
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(dir.join("out.safetensors"))
        .output()
        .expect("cebra runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "1-D data was accepted");
    assert!(stderr.contains("2-D (time, neurons)") && stderr.contains("[20]"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}
