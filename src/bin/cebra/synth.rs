//! A synthetic hippocampus recording with a known latent: a rat runs back and forth on a 1.6 m linear
//! track (40 Hz samples); place cells with Gaussian tuning curves over the track, each firing in one
//! running direction or both, emit Poisson spike counts. Deterministic from the seed.
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Poisson};

/// Track length in metres.
pub const TRACK_LENGTH: f64 = 1.6;
/// Seconds per sample.
const DT: f64 = 0.025;

/// Settings of the generator.
#[derive(Debug, Clone, Copy)]
pub struct SynthOptions {
    pub neurons: usize,
    pub timesteps: usize,
    pub seed: u64,
}

/// The generated recording and its latent.
pub struct Synthetic {
    /// `(timesteps, neurons)` spike counts per sample, row-major.
    pub spikes: Vec<f32>,
    /// Position on the track (m), one per sample.
    pub position: Vec<f32>,
    /// `(timesteps, 3)`: position, running right (0/1), running left (0/1) — the layout of the
    /// reference's rat hippocampus labels.
    pub behaviour: Vec<f32>,
    pub neurons: usize,
    pub timesteps: usize,
}

/// One place cell: field centre (m), width (m), peak rate (Hz), and the running directions it fires in.
struct PlaceCell {
    centre: f64,
    width: f64,
    peak: f64,
    right: bool,
    left: bool,
}

pub fn generate(o: SynthOptions) -> Synthetic {
    let mut rng = ChaCha8Rng::seed_from_u64(o.seed);
    let cells: Vec<PlaceCell> = (0..o.neurons)
        .map(|i| {
            // Centres cover the track evenly (jittered), so position is decodable everywhere.
            let centre = (i as f64 + rng.random::<f64>()) / o.neurons as f64 * TRACK_LENGTH;
            let (right, left) = match rng.random_range(0..3) {
                0 => (true, false),
                1 => (false, true),
                _ => (true, true),
            };
            PlaceCell { centre, width: rng.random_range(0.06..0.16), peak: rng.random_range(8.0..30.0), right, left }
        })
        .collect();

    // Running speed: a mean-reverting random walk around 0.45 m/s, never below 0.05 m/s.
    let speed_noise = Normal::new(0.0, 0.04).expect("valid normal");
    let (mut x, mut speed, mut direction) = (0.0f64, 0.45f64, 1.0f64);
    let mut spikes = Vec::with_capacity(o.timesteps * o.neurons);
    let mut position = Vec::with_capacity(o.timesteps);
    let mut behaviour = Vec::with_capacity(o.timesteps * 3);
    for _ in 0..o.timesteps {
        speed = (speed + 0.05 * (0.45 - speed) + speed_noise.sample(&mut rng)).max(0.05);
        x += direction * speed * DT;
        if x >= TRACK_LENGTH {
            x = 2.0 * TRACK_LENGTH - x;
            direction = -1.0;
        } else if x <= 0.0 {
            x = -x;
            direction = 1.0;
        }
        let right = direction > 0.0;
        position.push(x as f32);
        behaviour.extend_from_slice(&[x as f32, right as u8 as f32, !right as u8 as f32]);
        for c in &cells {
            let tuned = if right { c.right } else { c.left };
            let field = if tuned { c.peak * (-0.5 * ((x - c.centre) / c.width).powi(2)).exp() } else { 0.0 };
            let rate = (0.3 + field) * DT; // 0.3 Hz background
            spikes.push(Poisson::new(rate).expect("positive rate").sample(&mut rng) as f32);
        }
    }
    Synthetic { spikes, position, behaviour, neurons: o.neurons, timesteps: o.timesteps }
}
