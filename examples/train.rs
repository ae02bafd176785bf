// The program of README.md's "Training from Rust" (checked verbatim by `make readme-check`).
use cebra::train::{KnnDecoder, Labels, Metric, Progress, Solver, SolverOptions, Targets};
use cebra::transform::{Layout, Recording};

fn main() -> cebra::Result<()> {
    let (t, n) = (10_000, 120);
    let neural: Vec<f32> = vec![0.0; t * n]; // your (time, neurons) recording, row-major
    let position: Vec<f32> = vec![0.0; t]; // one continuous label per time step
    let recording = Recording::new(&neural, t, n, Layout::RowMajor)?;
    let mut solver = Solver::new(
        SolverOptions::new()
            .model_architecture("offset10-model")
            .batch_size(512)
            .learning_rate(3e-3)
            .output_dimension(3)
            .max_iterations(1000)
            .seed(0),
    )?;
    let history = solver.fit(&recording, &Labels::continuous(position.clone(), 1), |step| {
        if step.step % 100 == 0 {
            println!("{} {:.4} {:.3}", step.step, step.loss, step.temperature);
        }
        Progress::Continue // Progress::Stop ends the fit early, keeping what was learned
    })?;
    println!("final loss {:.4}", history.loss.last().unwrap());
    let embedding = solver.transform(&recording)?; // (t, 3), padded as the reference's transform
    let y: Vec<f64> = position.iter().map(|&p| p as f64).collect();
    let decoder = KnnDecoder::fit(&embedding, 3, Targets::Continuous(y.clone(), 1), 3, Metric::Cosine)?;
    println!("R² {:.3}", decoder.score(&embedding, &Targets::Continuous(y, 1))?);
    solver.save("model.safetensors")?; // also a model file for cebra_model_load_file
    Ok(())
}
