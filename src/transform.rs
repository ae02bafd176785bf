//! Whole-recording transform, as the reference's `CEBRA.transform`: edge-replicating padding
//! (`left` rows before, `right - 1` after; none when the receptive field is shorter than 2) or none,
//! row- or column-major `(time, neurons)` input and output, and optional chunking that bounds memory
//! by the chunk and gives the same rows as one pass (also for a short last chunk).
//!
//! Built-in convolutional and feed-forward models run on the compiled [`Plan`] of
//! [`crate::stream`], in parallel over chunks of time (on one thread when libtorch is set to one,
//! as with `cebra_set_num_threads(1)`); other models (callbacks, resampling models,
//! training mode) run through libtorch, chunk by chunk.
use crate::error::{invalid, shape_mismatch, Error, Result};
use crate::model::Model;
use crate::stream::{BlockScratch, Plan};
use rayon::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};
use tch::Tensor;

/// How a `(time, channels)` matrix is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Row by row (NumPy, C): element `(t, c)` at `t * channels + c`.
    RowMajor,
    /// Column by column (MATLAB, Julia): element `(t, c)` at `c * time + t`.
    ColMajor,
}

impl Layout {
    fn index(self, t: usize, c: usize, time: usize, channels: usize) -> usize {
        match self {
            Layout::RowMajor => t * channels + c,
            Layout::ColMajor => c * time + t,
        }
    }
}

/// A borrowed `(time, channels)` recording.
#[derive(Debug, Clone, Copy)]
pub struct Recording<'a> {
    data: &'a [f32],
    timesteps: usize,
    channels: usize,
    layout: Layout,
}

impl<'a> Recording<'a> {
    /// Checks that `data` holds `timesteps * channels` values.
    pub fn new(data: &'a [f32], timesteps: usize, channels: usize, layout: Layout) -> Result<Self> {
        if timesteps < 1 || channels < 1 {
            return Err(invalid!("a recording needs at least 1 time step and 1 channel, got ({timesteps}, {channels})"));
        }
        let needed = timesteps.checked_mul(channels).ok_or_else(|| invalid!("recording size overflows"))?;
        if data.len() != needed {
            return Err(shape_mismatch!(
                "a ({timesteps}, {channels}) recording has {needed} values, got {}",
                data.len()
            ));
        }
        Ok(Recording { data, timesteps, channels, layout })
    }

    /// Time steps.
    pub fn timesteps(&self) -> usize {
        self.timesteps
    }

    /// Channels (neurons).
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// The recording as a `(time, channels)` row-major vector.
    pub fn to_row_major(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.timesteps * self.channels];
        self.gather_rows(0..self.timesteps, &mut out);
        out
    }

    /// Copies rows `rows` (indices into the recording) into `dst`, time-major.
    fn gather_rows(&self, rows: impl Iterator<Item = usize>, dst: &mut [f32]) {
        let n = self.channels;
        for (i, t) in rows.enumerate() {
            let out = &mut dst[i * n..(i + 1) * n];
            match self.layout {
                Layout::RowMajor => out.copy_from_slice(&self.data[t * n..(t + 1) * n]),
                Layout::ColMajor => {
                    for (c, v) in out.iter_mut().enumerate() {
                        *v = self.data[c * self.timesteps + t];
                    }
                }
            }
        }
    }
}

/// Transform settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransformOptions {
    /// Edge-replicating padding (the reference default): one output row per input step.
    pub pad: bool,
    /// `0`: one pass; otherwise chunks of this many time steps.
    pub batch_size: usize,
    /// Run the model through libtorch even where a compiled plan exists (the reference path).
    pub force_libtorch: bool,
}

impl Default for TransformOptions {
    fn default() -> Self {
        TransformOptions { pad: true, batch_size: 0, force_libtorch: false }
    }
}

/// Where the output rows of a transform come from.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    /// Input steps per output step.
    field: usize,
    /// Input steps between consecutive output steps (the resampling factor).
    step: usize,
    /// Rows of padding before the recording.
    pad_left: usize,
    out_rows: usize,
    convolutional: bool,
}

fn geometry(model: &dyn Model, timesteps: usize, pad: bool) -> Result<Geometry> {
    let offset = model.offset();
    let field = offset.len() as usize;
    let name = &model.architecture().name;
    if !model.is_convolutional() && field > 1 {
        return Err(Error::Unsupported(format!(
            "model '{name}' is not convolutional and sees {field} steps at once: it has no whole-recording \
             transform (nor has the reference's)"
        )));
    }
    if timesteps < field {
        return Err(shape_mismatch!(
            "model '{name}' needs a recording of at least {field} time steps (its receptive field), got {timesteps}"
        ));
    }
    let pad = pad && field >= 2;
    let padded = if pad { timesteps + field - 1 } else { timesteps };
    let out_rows = if model.is_convolutional() { model.output_time(padded as i64)? as usize } else { timesteps };
    Ok(Geometry {
        field,
        step: model.resample_factor().max(1) as usize,
        pad_left: if pad { offset.left as usize } else { 0 },
        out_rows,
        convolutional: model.is_convolutional(),
    })
}

fn check_channels(model: &dyn Model, recording: &Recording) -> Result<()> {
    let n = model.num_input() as usize;
    if recording.channels != n {
        return Err(shape_mismatch!(
            "model '{}' takes {n} neurons, the recording has {}",
            model.architecture().name,
            recording.channels
        ));
    }
    Ok(())
}

/// Output rows of [`transform_into`] for a recording of `timesteps` steps.
///
/// ```
/// let model = cebra::init("offset10-model", &cebra::ModelArgs::new(4, 8, 3)).unwrap();
/// assert_eq!(cebra::transform::output_timesteps(model.as_ref(), 100, true).unwrap(), 100);
/// assert_eq!(cebra::transform::output_timesteps(model.as_ref(), 100, false).unwrap(), 91);
/// ```
pub fn output_timesteps(model: &dyn Model, timesteps: usize, pad: bool) -> Result<usize> {
    Ok(geometry(model, timesteps, pad)?.out_rows)
}

/// Chunk length (in output rows) of the compiled path when the caller does not bound it.
const TILE_ROWS: usize = 512;

thread_local! {
    /// Activations and gathered input of the compiled path, kept per thread between chunks and calls.
    static SCRATCH: std::cell::RefCell<(BlockScratch, Vec<f32>)> = std::cell::RefCell::new(Default::default());
}

/// Embeds `recording` into `out` (`(out_rows, num_output)` in the recording's layout) and returns
/// the number of output rows. `progress` is called with the number of rows done so far.
///
/// ```
/// use cebra::transform::{transform_into, Layout, Recording, TransformOptions};
/// let model = cebra::init("offset5-model", &cebra::ModelArgs::new(3, 8, 2)).unwrap();
/// let data: Vec<f32> = (0..60).map(|i| (i as f32 * 0.3).sin()).collect(); // 20 steps x 3 neurons
/// let rec = Recording::new(&data, 20, 3, Layout::RowMajor).unwrap();
/// let mut out = vec![0f32; 20 * 2];
/// let rows = transform_into(model.as_ref(), &rec, TransformOptions::default(), &mut out, &|_| {}).unwrap();
/// assert_eq!(rows, 20);
/// ```
pub fn transform_into(
    model: &dyn Model,
    recording: &Recording,
    options: TransformOptions,
    out: &mut [f32],
    progress: &(dyn Fn(usize) + Sync),
) -> Result<usize> {
    check_channels(model, recording)?;
    let geo = geometry(model, recording.timesteps, options.pad)?;
    let o = model.num_output() as usize;
    let needed = geo.out_rows * o;
    if out.len() < needed {
        return Err(Error::BufferTooSmall(format!("'out' holds {} values, {needed} are needed", out.len())));
    }
    let out = &mut out[..needed];
    let plan = if options.force_libtorch { Err(String::new()) } else { Plan::compile(model) };
    match plan {
        Ok(plan) => transform_compiled(&plan, recording, geo, options.batch_size, out, recording.layout, progress),
        Err(_) => transform_libtorch(model, recording, geo, options.batch_size, out, progress),
    }?;
    Ok(geo.out_rows)
}

/// [`transform_into`] into a new vector.
pub fn transform(model: &dyn Model, recording: &Recording, options: TransformOptions) -> Result<Vec<f32>> {
    check_channels(model, recording)?;
    let rows = output_timesteps(model, recording.timesteps, options.pad)?;
    let mut out = vec![0f32; rows * model.num_output() as usize];
    transform_into(model, recording, options, &mut out, &|_| {})?;
    Ok(out)
}

/// The recording row behind padded input row `p`.
fn source_row(p: usize, geo: &Geometry, timesteps: usize) -> usize {
    p.saturating_sub(geo.pad_left).min(timesteps - 1)
}

fn transform_compiled(
    plan: &Plan,
    rec: &Recording,
    geo: Geometry,
    batch_size: usize,
    out: &mut [f32],
    layout: Layout,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<()> {
    let o = plan.num_output;
    let n = plan.num_input;
    let tile = if batch_size > 0 { batch_size.min(TILE_ROWS) } else { TILE_ROWS };
    let done = AtomicU64::new(0);
    // Column-major output is assembled time-major first, then transposed once.
    let mut staged = Vec::new();
    let target: &mut [f32] = match layout {
        Layout::RowMajor => out,
        Layout::ColMajor => {
            staged = vec![0f32; geo.out_rows * o];
            &mut staged
        }
    };
    let run_chunk = |(i, chunk): (usize, &mut [f32])| {
        // Per-thread buffers that outlive the call: no allocation (nor page faults) per chunk.
        SCRATCH.with(|cell| {
            let (scratch, input) = &mut *cell.borrow_mut();
            let a = i * tile;
            let rows_out = chunk.len() / o;
            let rows_in = rows_out + geo.field - 1;
            let first = a; // padded input row of the chunk's first window (step 1)
            let direct = rec.layout == Layout::RowMajor
                && first >= geo.pad_left
                && first + rows_in - geo.pad_left <= rec.timesteps;
            // The next chunk's rows, what this thread most likely reads next: the plan pulls them
            // into the cache while it computes (reading a recording from memory is latency-bound).
            let upcoming: &[f32] = match rec.layout {
                Layout::RowMajor => {
                    let from = (first + tile).saturating_sub(geo.pad_left).min(rec.timesteps);
                    let to = (from + tile + geo.field - 1).min(rec.timesteps);
                    &rec.data[from * n..to * n]
                }
                Layout::ColMajor => &[],
            };
            if direct {
                let s = (first - geo.pad_left) * n;
                plan.run_block_before(&rec.data[s..s + rows_in * n], rows_in, chunk, scratch, upcoming);
            } else {
                input.resize(rows_in * n, 0.0);
                rec.gather_rows((first..first + rows_in).map(|p| source_row(p, &geo, rec.timesteps)), input);
                plan.run_block_before(input, rows_in, chunk, scratch, upcoming);
            }
        });
        // Outside the borrow: the callback may do anything, even transform again.
        let rows_out = (chunk.len() / o) as u64;
        progress((done.fetch_add(rows_out, Ordering::Relaxed) + rows_out) as usize);
    };
    // One libtorch thread asked for (cebra_set_num_threads(1)): one thread here too.
    if tch::get_num_threads() <= 1 {
        target.chunks_mut(tile * o).enumerate().for_each(run_chunk);
    } else {
        target.par_chunks_mut(tile * o).enumerate().for_each(run_chunk);
    }
    if layout == Layout::ColMajor {
        for t in 0..geo.out_rows {
            for c in 0..o {
                out[c * geo.out_rows + t] = staged[t * o + c];
            }
        }
    }
    Ok(())
}

fn transform_libtorch(
    model: &dyn Model,
    rec: &Recording,
    geo: Geometry,
    batch_size: usize,
    out: &mut [f32],
    progress: &(dyn Fn(usize) + Sync),
) -> Result<()> {
    let (n, o) = (rec.channels, model.num_output() as usize);
    // Output rows per chunk: `batch_size` input steps cover about batch_size / step output rows.
    let tile = if batch_size > 0 { (batch_size / geo.step).max(1) } else { geo.out_rows };
    let mut input = Vec::new();
    let mut values = Vec::new();
    let mut a = 0;
    while a < geo.out_rows {
        let b = (a + tile).min(geo.out_rows);
        let first = a * geo.step;
        let rows_in = (b - 1) * geo.step + geo.field - first;
        input.resize(rows_in * n, 0.0);
        rec.gather_rows((first..first + rows_in).map(|p| source_row(p, &geo, rec.timesteps)), &mut input);
        let x = Tensor::f_from_slice(&input)?.f_reshape([rows_in as i64, n as i64])?;
        let y = if geo.convolutional {
            let x = x.f_transpose(0, 1)?.f_unsqueeze(0)?.f_contiguous()?;
            // (1, O, rows) or, for a single row, (1, O): as (O, rows), then time-major.
            model.forward(&x)?.f_reshape([o as i64, -1])?.f_transpose(0, 1)?
        } else {
            model.forward(&x)?
        };
        let y = y.f_to_kind(tch::Kind::Float)?.f_contiguous()?;
        if y.size() != [(b - a) as i64, o as i64] {
            return Err(shape_mismatch!(
                "model '{}' gave {:?} for a chunk of {rows_in} steps, expected ({}, {o})",
                model.architecture().name,
                y.size(),
                b - a
            ));
        }
        values.resize((b - a) * o, 0.0);
        y.f_copy_data(&mut values, (b - a) * o)?;
        for (r, row) in values.chunks(o).enumerate() {
            for (c, v) in row.iter().enumerate() {
                out[rec.layout.index(a + r, c, geo.out_rows, o)] = *v;
            }
        }
        progress(b);
        a = b;
    }
    Ok(())
}
