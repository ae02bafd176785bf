//! Real-time streaming: push one time step, get the embedding of the step `lookahead` in the past.
//!
//! Built-in convolutional and feed-forward models are compiled into a [`Plan`] whose stages keep
//! ring buffers of their last input columns: an unpadded convolution slides, so only the newest
//! column of each layer is new at each step. The work per push is then one small matrix-vector
//! product per layer, on SIMD kernels picked at run time, with every buffer allocated when the
//! stream is built (no heap allocation in [`Stream::push`]). Other models (callbacks, training
//! mode) run through libtorch on a window of the last samples.
mod block;
pub mod kernels;
mod plan;

pub use kernels::Isa;
pub use plan::{BlockScratch, Plan};

use crate::error::{shape_mismatch, Error, Result};
use crate::model::Model;
use plan::apply;
use std::sync::{Arc, Mutex};

/// A model shared between handles (a stream keeps its model alive).
pub type SharedModel = Arc<Mutex<Box<dyn Model>>>;

/// Per-stage ring buffer of the last `kernel` input rows, each written twice (at `head` and
/// `head + kernel`) so that the window is always one contiguous slice.
#[derive(Debug)]
struct Ring {
    data: Vec<f32>,
    head: usize,
    filled: usize,
}

#[derive(Debug)]
struct Compiled {
    plan: Plan,
    rings: Vec<Ring>,
    col_a: Vec<f32>,
    col_b: Vec<f32>,
}

struct Fallback {
    model: SharedModel,
    /// The last `receptive_field` samples, oldest first once full, as a ring of rows.
    window: Vec<f32>,
    ordered: Vec<f32>,
    head: usize,
    filled: usize,
}

enum Engine {
    Compiled(Box<Compiled>),
    Libtorch(Box<Fallback>),
}

/// A streaming encoder over one model; see the module documentation.
///
/// ```
/// use cebra::stream::Stream;
/// use std::sync::{Arc, Mutex};
/// let model = cebra::init("offset10-model", &cebra::ModelArgs::new(4, 8, 3)).unwrap();
/// let mut stream = Stream::new(Arc::new(Mutex::new(model))).unwrap();
/// assert!(stream.is_compiled());
/// assert_eq!(stream.lookahead(), 4); // offset (5, 5): right - 1
/// let mut embedding = [0f32; 3];
/// let ready: Vec<bool> = (0..12).map(|t| stream.push(&[t as f32; 4], &mut embedding).unwrap()).collect();
/// assert_eq!(ready.iter().filter(|r| **r).count(), 3); // from push 9 (= L - 1) on
/// ```
pub struct Stream {
    engine: Engine,
    /// Keeps the model alive for as long as the stream exists.
    _model: SharedModel,
    num_input: usize,
    num_output: usize,
    lookahead: i64,
    receptive_field: usize,
}

fn lock(model: &SharedModel) -> std::sync::MutexGuard<'_, Box<dyn Model>> {
    model.lock().unwrap_or_else(|e| e.into_inner())
}

impl Stream {
    /// A stream over `model`, compiled when the model allows it (weights are captured now: load new
    /// weights into the model and make a new stream to use them), through libtorch otherwise.
    /// Resampling models cannot stream: [`Error::Unsupported`].
    pub fn new(model: SharedModel) -> Result<Stream> {
        Self::build(model, Some(Isa::detect()))
    }

    /// A stream that always runs the model through libtorch (the reference path for tests).
    pub fn new_libtorch(model: SharedModel) -> Result<Stream> {
        Self::build(model, None)
    }

    /// A stream compiled for a given instruction set (tests and benchmarks compare them); falls
    /// back to libtorch where [`Stream::new`] would, or when this CPU lacks `isa`.
    pub fn with_isa(model: SharedModel, isa: Isa) -> Result<Stream> {
        Self::build(model, Some(isa))
    }

    fn build(model: SharedModel, isa: Option<Isa>) -> Result<Stream> {
        let guard = lock(&model);
        let m: &dyn Model = guard.as_ref();
        if m.resample_factor() != 1 {
            return Err(Error::Unsupported(format!(
                "model '{}' resamples in time (factor {}): it cannot stream one step at a time",
                m.architecture().name,
                m.resample_factor()
            )));
        }
        let offset = m.offset();
        let (num_input, num_output) = (m.num_input() as usize, m.num_output() as usize);
        let receptive_field = offset.len() as usize;
        let plan = isa.and_then(|isa| Plan::compile_for(m, isa).ok());
        let engine = match plan {
            Some(plan) => {
                let rings = plan
                    .stages
                    .iter()
                    .map(|s| Ring { data: vec![0.0; 2 * s.window()], head: 0, filled: 0 })
                    .collect();
                let width = plan.max_stride().max(num_input);
                Engine::Compiled(Box::new(Compiled { plan, rings, col_a: vec![0.0; width], col_b: vec![0.0; width] }))
            }
            None => Engine::Libtorch(Box::new(Fallback {
                model: model.clone(),
                window: vec![0.0; receptive_field * num_input],
                ordered: vec![0.0; receptive_field * num_input],
                head: 0,
                filled: 0,
            })),
        };
        drop(guard);
        Ok(Stream { engine, _model: model, num_input, num_output, lookahead: offset.right - 1, receptive_field })
    }

    /// Whether the stream runs on the compiled plan (else on libtorch).
    pub fn is_compiled(&self) -> bool {
        matches!(self.engine, Engine::Compiled(_))
    }

    /// Steps between the newest sample and the step whose embedding a push returns (`right - 1`).
    pub fn lookahead(&self) -> i64 {
        self.lookahead
    }

    /// Input channels per sample.
    pub fn num_input(&self) -> usize {
        self.num_input
    }

    /// Embedding size.
    pub fn num_output(&self) -> usize {
        self.num_output
    }

    /// Forgets every pushed sample.
    pub fn reset(&mut self) {
        match &mut self.engine {
            Engine::Compiled(c) => c.rings.iter_mut().for_each(|r| {
                r.head = 0;
                r.filled = 0;
            }),
            Engine::Libtorch(f) => {
                f.head = 0;
                f.filled = 0;
            }
        }
    }

    /// Feeds one sample (`num_input` values). Returns `true` and writes `num_output` values into
    /// `embedding` once a whole receptive field has been pushed (from the `L`-th push on); before
    /// that returns `false` and writes nothing. On the compiled path this never allocates.
    pub fn push(&mut self, sample: &[f32], embedding: &mut [f32]) -> Result<bool> {
        if sample.len() != self.num_input {
            return Err(shape_mismatch!("the model takes {} values per sample, got {}", self.num_input, sample.len()));
        }
        if embedding.len() < self.num_output {
            return Err(Error::BufferTooSmall(format!(
                "'embedding' holds {} values, {} are needed",
                embedding.len(),
                self.num_output
            )));
        }
        match &mut self.engine {
            Engine::Compiled(c) => Ok(c.push(sample, &mut embedding[..self.num_output])),
            Engine::Libtorch(f) => f.push(sample, &mut embedding[..self.num_output], self.receptive_field, self.num_input),
        }
    }
}

impl Compiled {
    fn push(&mut self, sample: &[f32], embedding: &mut [f32]) -> bool {
        let Compiled { plan, rings, col_a, col_b } = self;
        col_a[..sample.len()].copy_from_slice(sample);
        let isa = plan.isa;
        for (stage, ring) in plan.stages.iter().zip(rings.iter_mut()) {
            let stride = stage.in_stride;
            let (k, window_len) = (stage.kernel, stage.window());
            let row = &col_a[..stride];
            ring.data[ring.head * stride..(ring.head + 1) * stride].copy_from_slice(row);
            ring.data[(ring.head + k) * stride..(ring.head + k + 1) * stride].copy_from_slice(row);
            let start = (ring.head + 1) * stride;
            ring.head = (ring.head + 1) % k;
            ring.filled = (ring.filled + 1).min(k);
            if ring.filled < k {
                return false;
            }
            let window = &ring.data[start..start + window_len];
            let cp = stage.out_stride;
            let out = &mut col_b[..cp];
            kernels::conv_row_latency(isa, &stage.weight, &stage.bias, window_len, cp, window, out);
            apply(isa, &stage.inner, out, cp, stage.out_channels);
            if let Some(c0) = stage.skip {
                let n = stage.in_channels.min(stage.out_channels);
                for (d, s) in out[..n].iter_mut().zip(&window[c0 * stride..c0 * stride + n]) {
                    *d += s;
                }
            }
            apply(isa, &stage.outer, out, cp, stage.out_channels);
            std::mem::swap(col_a, col_b);
        }
        embedding.copy_from_slice(&col_a[..embedding.len()]);
        true
    }
}

impl Fallback {
    fn push(&mut self, sample: &[f32], embedding: &mut [f32], field: usize, n: usize) -> Result<bool> {
        self.window[self.head * n..(self.head + 1) * n].copy_from_slice(sample);
        self.head = (self.head + 1) % field;
        self.filled = (self.filled + 1).min(field);
        if self.filled < field {
            return Ok(false);
        }
        // Oldest first, as (channels, time) for the model.
        for t in 0..field {
            let row = &self.window[((self.head + t) % field) * n..][..n];
            for (c, v) in row.iter().enumerate() {
                self.ordered[c * field + t] = *v;
            }
        }
        let x = tch::Tensor::f_from_slice(&self.ordered)?.f_reshape([1, n as i64, field as i64])?;
        let guard = lock(&self.model);
        let y = guard.forward(&x)?;
        drop(guard);
        if y.numel() != embedding.len() {
            return Err(shape_mismatch!("the model gave {:?} for one window, expected {} values", y.size(), embedding.len()));
        }
        let y = y.f_to_kind(tch::Kind::Float)?.f_contiguous()?;
        y.f_copy_data(embedding, embedding.len())?;
        Ok(true)
    }
}
