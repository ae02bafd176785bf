//! A model compiled for column-at-a-time work: each convolution (a Linear is a convolution of
//! kernel 1) becomes a stage whose weight is re-laid as `(kernel * in_channels) x out_channels`, so
//! that one output time step is one small matrix-vector product over a contiguous window of
//! time-major rows. The same plan runs a block of time steps (whole recordings) or one step at a
//! time from ring buffers (streaming).
pub use super::block::BlockScratch;
use super::kernels::{self, padded_channels, Isa};
use crate::layers::{Conv1d, Layer, Linear};
use crate::model::{Model, Network};
use tch::{Kind, Tensor};

/// An elementwise (per time step) operation after a stage's product.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Pointwise {
    Gelu,
    Tanh,
    Clamp(f32, f32),
    /// `x / ||x||_2` over the channels of one time step (no epsilon, as the reference).
    Norm,
}

/// One convolution (or Linear) with what follows it up to the next one.
#[derive(Debug)]
pub(crate) struct Stage {
    pub kernel: usize,
    /// Floats per input row (the previous stage's padded width, or the number of neurons).
    pub in_stride: usize,
    /// Real input channels.
    pub in_channels: usize,
    /// Real output channels.
    pub out_channels: usize,
    /// Floats per output row: `out_channels` rounded up to whole vectors.
    pub out_stride: usize,
    /// `(kernel * in_stride) x out_stride`, zero for padded rows and columns.
    pub weight: Vec<f32>,
    /// The weight as panels for the whole-chunk kernels (`block::pack_panels`).
    pub panels: Vec<f32>,
    pub bias: Vec<f32>,
    /// Elementwise operations inside a skip block (before the identity is added).
    pub inner: Vec<Pointwise>,
    /// `Some(c)`: a skip connection adding input row `t + c` (its first `min(in, out)` channels).
    pub skip: Option<usize>,
    /// Elementwise operations after the skip addition.
    pub outer: Vec<Pointwise>,
}

impl Stage {
    pub fn window(&self) -> usize {
        self.kernel * self.in_stride
    }
}

/// A compiled model; see the module documentation.
#[derive(Debug)]
pub struct Plan {
    pub(crate) stages: Vec<Stage>,
    pub(crate) isa: Isa,
    pub(crate) num_input: usize,
    pub(crate) num_output: usize,
    /// Input steps per output step: the model's receptive field.
    pub(crate) receptive_field: usize,
}

fn tensor_data(t: &Tensor) -> Result<Vec<f32>, String> {
    let t = t.f_detach().and_then(|t| t.f_to_kind(Kind::Float)).and_then(|t| t.f_contiguous()).map_err(|e| e.to_string())?;
    let n = t.numel();
    let mut v = vec![0f32; n];
    t.f_copy_data(&mut v, n).map_err(|e| e.to_string())?;
    Ok(v)
}

/// The pieces of a product layer a stage needs.
struct Product {
    kernel: usize,
    in_channels: usize,
    out_channels: usize,
    /// `(out, in, kernel)` row-major.
    weight: Vec<f32>,
    bias: Vec<f32>,
}

fn conv_product(c: &Conv1d) -> Result<Product, String> {
    if c.stride != 1 {
        return Err(format!("a strided convolution (stride {}) resamples in time", c.stride));
    }
    Ok(Product {
        kernel: c.kernel as usize,
        in_channels: c.in_channels as usize,
        out_channels: c.out_channels as usize,
        weight: tensor_data(&c.weight)?,
        bias: tensor_data(&c.bias)?,
    })
}

fn linear_product(l: &Linear) -> Result<Product, String> {
    Ok(Product {
        kernel: 1,
        in_channels: l.in_features as usize,
        out_channels: l.out_features as usize,
        weight: tensor_data(&l.weight)?,
        bias: tensor_data(&l.bias)?,
    })
}

fn pointwise(layer: &Layer) -> Option<Pointwise> {
    match layer {
        Layer::Gelu => Some(Pointwise::Gelu),
        Layer::Tanh => Some(Pointwise::Tanh),
        Layer::Hardtanh { min, max } => Some(Pointwise::Clamp(*min as f32, *max as f32)),
        Layer::Norm => Some(Pointwise::Norm),
        _ => None,
    }
}

impl Plan {
    /// Compiles a built-in model, or says why it cannot be (the caller then uses libtorch).
    pub fn compile(model: &dyn Model) -> Result<Plan, String> {
        Self::compile_for(model, Isa::detect())
    }

    /// [`Plan::compile`] for a given instruction set (tests compare the two).
    pub fn compile_for(model: &dyn Model, isa: Isa) -> Result<Plan, String> {
        if !Isa::available().contains(&isa) {
            return Err(format!("this CPU cannot run {isa:?} code"));
        }
        let network: &Network = model.as_network().ok_or("the model is not a built-in network")?;
        if model.resample_factor() != 1 {
            return Err("the model resamples in time".into());
        }
        let training = model.is_training();
        let mut stages: Vec<Stage> = Vec::new();
        let num_input = model.num_input() as usize;
        let add_stage = |stages: &mut Vec<Stage>, p: Product, inner: Vec<Pointwise>, skip: Option<usize>| -> Result<(), String> {
            let (in_stride, prev_channels) = match stages.last() {
                Some(s) => (s.out_stride, s.out_channels),
                None => (num_input, num_input),
            };
            if p.in_channels != prev_channels {
                return Err(format!("a layer takes {} channels where {prev_channels} arrive", p.in_channels));
            }
            if p.weight.len() != p.out_channels * p.in_channels * p.kernel || p.bias.len() != p.out_channels {
                return Err("a layer's parameters do not have the layer's shape".into());
            }
            let cp = padded_channels(p.out_channels);
            let mut weight = vec![0f32; p.kernel * in_stride * cp];
            for o in 0..p.out_channels {
                for c in 0..p.in_channels {
                    for j in 0..p.kernel {
                        weight[(j * in_stride + c) * cp + o] = p.weight[(o * p.in_channels + c) * p.kernel + j];
                    }
                }
            }
            let panels = super::block::pack_panels(&p.weight, p.out_channels, p.in_channels, p.kernel);
            let mut bias = vec![0f32; cp];
            bias[..p.out_channels].copy_from_slice(&p.bias);
            stages.push(Stage {
                kernel: p.kernel,
                in_stride,
                in_channels: p.in_channels,
                out_channels: p.out_channels,
                out_stride: cp,
                weight,
                panels,
                bias,
                inner,
                skip,
                outer: Vec::new(),
            });
            Ok(())
        };
        for layer in network.net().iter().chain(network.after_net()) {
            match layer {
                Layer::Conv1d(c) => add_stage(&mut stages, conv_product(c)?, Vec::new(), None)?,
                Layer::Linear(l) => add_stage(&mut stages, linear_product(l)?, Vec::new(), None)?,
                Layer::SkipLinear(l) => add_stage(&mut stages, linear_product(l)?, Vec::new(), Some(0))?,
                Layer::Skip { inner, crop } => {
                    let mut product = None;
                    let mut ops = Vec::new();
                    for l in inner {
                        match (l, &product) {
                            (Layer::Dropout1d { .. }, _) if !training => {}
                            (Layer::Conv1d(c), None) => product = Some(conv_product(c)?),
                            (Layer::Linear(l), None) => product = Some(linear_product(l)?),
                            (other, Some(_)) if pointwise(other).is_some() => ops.push(pointwise(other).expect("checked")),
                            (other, _) => return Err(format!("unsupported layer inside a skip block: {other:?}")),
                        }
                    }
                    let p = product.ok_or("a skip block without a product layer")?;
                    if crop.0 < 0 || crop.1 < 0 || (crop.0 + crop.1) as usize + 1 != p.kernel || p.in_channels != p.out_channels {
                        return Err(format!("a skip block whose crop {crop:?} does not match its kernel {}", p.kernel));
                    }
                    add_stage(&mut stages, p, ops, Some(crop.0 as usize))?;
                }
                Layer::Dropout1d { .. } if !training => {}
                Layer::Dropout1d { .. } => return Err("dropout is on (training mode)".into()),
                // No-ops on one time step: a Flatten is only valid where one step is left (the
                // feed-forward models, whose receptive field is 1), which is checked below.
                Layer::Flatten | Layer::Squeeze => {}
                Layer::MeanAndConv(_) => return Err("the model resamples in time".into()),
                other => {
                    let op = pointwise(other).ok_or_else(|| format!("unsupported layer {other:?}"))?;
                    let stage = stages.last_mut().ok_or("an elementwise layer before the first product layer")?;
                    stage.outer.push(op);
                }
            }
        }
        let last = stages.last().ok_or("a model without product layers")?;
        if last.out_channels != model.num_output() as usize {
            return Err("the last layer's width differs from num_output".into());
        }
        let receptive_field = stages.iter().map(|s| s.kernel - 1).sum::<usize>() + 1;
        if receptive_field as i64 != model.offset().len() {
            return Err(format!(
                "the layers see {receptive_field} steps, the model's offset says {}",
                model.offset().len()
            ));
        }
        let has_flatten = network.net().iter().any(|l| matches!(l, Layer::Flatten));
        if has_flatten && receptive_field != 1 {
            return Err("a Flatten over several time steps".into());
        }
        Ok(Plan { stages, isa, num_input, num_output: model.num_output() as usize, receptive_field })
    }

    /// The instruction set the plan runs on.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Largest padded width of any stage's output.
    pub(crate) fn max_stride(&self) -> usize {
        self.stages.iter().map(|s| s.out_stride).max().unwrap_or(0)
    }

    /// Runs the plan over `rows` time-major input rows (`num_input` floats each) and writes the
    /// `rows - receptive_field + 1` output rows (`num_output` floats each) to `out`, on the
    /// whole-chunk kernels of [`super::block`].
    pub fn run_block(&self, input: &[f32], rows: usize, out: &mut [f32], scratch: &mut BlockScratch) {
        self.run_block_before(input, rows, out, scratch, &[]);
    }

    /// [`Plan::run_block`] that also pulls `upcoming` (what the caller reads next, such as the next
    /// chunk of a recording in memory) into the cache while it computes.
    pub fn run_block_before(&self, input: &[f32], rows: usize, out: &mut [f32], scratch: &mut BlockScratch, upcoming: &[f32]) {
        assert!(rows >= self.receptive_field && input.len() >= rows * self.num_input, "input too short");
        assert!(out.len() >= (rows + 1 - self.receptive_field) * self.num_output, "output too short");
        super::block::run_block(self, input, rows, out, scratch, upcoming);
    }
}

/// Applies elementwise operations to `rows` of `stride` floats, `channels` of them real.
pub(crate) fn apply(isa: Isa, ops: &[Pointwise], buf: &mut [f32], stride: usize, channels: usize) {
    for op in ops {
        match *op {
            // Padded channels hold zeros and GELU(0) = 0, so the whole buffer can be done at once.
            Pointwise::Gelu => kernels::gelu_inplace(isa, buf),
            Pointwise::Tanh => buf.chunks_mut(stride).for_each(|r| r[..channels].iter_mut().for_each(|v| *v = v.tanh())),
            Pointwise::Clamp(lo, hi) => buf
                .chunks_mut(stride)
                .for_each(|r| r[..channels].iter_mut().for_each(|v| *v = clamp_like_torch(*v, lo, hi))),
            Pointwise::Norm => buf.chunks_mut(stride).for_each(|r| {
                let row = &mut r[..channels];
                let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
                row.iter_mut().for_each(|v| *v /= norm);
            }),
        }
    }
}

/// `torch.clamp`: NaN stays NaN.
pub(super) fn clamp_like_torch(v: f32, lo: f32, hi: f32) -> f32 {
    if v.is_nan() { v } else { v.max(lo).min(hi) }
}
