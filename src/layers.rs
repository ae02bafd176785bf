//! The layers of the reference models, as data plus a forward function.
//!
//! Each layer owns its parameter tensors. Weight sharing (the `v2`/`resnet` families) is expressed
//! as several layers holding shallow clones of one tensor: they share storage, so an update through
//! any of them (loading, an optimizer step) is seen by all.
use crate::error::{shape_mismatch, Result};
use tch::Tensor;

/// `nn.Conv1d(in, out, kernel, stride)` with bias, no padding.
///
/// ```
/// use cebra::layers::{Conv1d, Layer};
/// use tch::{Device, Kind, Tensor};
/// let conv = Layer::Conv1d(Conv1d {
///     weight: Tensor::ones([2, 3, 4], (Kind::Float, Device::Cpu)),
///     bias: Tensor::zeros([2], (Kind::Float, Device::Cpu)),
///     in_channels: 3, out_channels: 2, kernel: 4, stride: 2,
/// });
/// let y = conv.forward(&Tensor::ones([1, 3, 10], (Kind::Float, Device::Cpu)), false).unwrap();
/// assert_eq!(y.size(), [1, 2, 4]); // (10 - 4) / 2 + 1 steps
/// assert_eq!(f64::try_from(y.max()).unwrap(), 12.0); // 3 channels x 4 taps
/// ```
#[derive(Debug)]
pub struct Conv1d {
    /// The `(out, in, kernel)` weight.
    pub weight: Tensor,
    /// The `(out,)` bias.
    pub bias: Tensor,
    /// Input channels.
    pub in_channels: i64,
    /// Output channels.
    pub out_channels: i64,
    /// Kernel length.
    pub kernel: i64,
    /// Stride.
    pub stride: i64,
}

/// `nn.Linear(in, out)` with bias.
///
/// ```
/// use cebra::layers::{Layer, Linear};
/// use tch::{Device, Kind, Tensor};
/// let linear = Layer::Linear(Linear {
///     weight: Tensor::eye(3, (Kind::Float, Device::Cpu)),
///     bias: Tensor::ones([3], (Kind::Float, Device::Cpu)),
///     in_features: 3, out_features: 3,
/// });
/// let x = Tensor::from_slice(&[1.0f32, 2.0, 3.0]).view([1, 3]);
/// let y = linear.forward(&x, false).unwrap();
/// assert_eq!(Vec::<f32>::try_from(y.view([-1])).unwrap(), [2.0, 3.0, 4.0]);
/// ```
#[derive(Debug)]
pub struct Linear {
    /// The `(out, in)` weight.
    pub weight: Tensor,
    /// The `(out,)` bias.
    pub bias: Tensor,
    /// Input features.
    pub in_features: i64,
    /// Output features.
    pub out_features: i64,
}

/// One entry of a model's `net` (an `nn.Sequential` in the reference).
///
/// ```
/// use cebra::layers::{Layer, Linear};
/// use tch::{Device, Kind, Tensor};
/// // One Linear(2, 2) used twice (weight sharing: both entries hold the same tensors), then _Norm.
/// let shared = Linear {
///     weight: Tensor::eye(2, (Kind::Float, Device::Cpu)) * 2.0,
///     bias: Tensor::zeros([2], (Kind::Float, Device::Cpu)),
///     in_features: 2, out_features: 2,
/// };
/// let net = [Layer::Linear(shared.shallow_clone()), Layer::Gelu, Layer::Linear(shared), Layer::Norm];
/// let mut x = Tensor::from_slice(&[3.0f32, 4.0]).view([1, 2]);
/// for layer in &net {
///     x = layer.forward(&x, false).unwrap();
/// }
/// let v = Vec::<f32>::try_from(x.view([-1])).unwrap();
/// assert!((v[0] - 0.6).abs() < 1e-4 && (v[1] - 0.8).abs() < 1e-4);
/// ```
#[derive(Debug)]
pub enum Layer {
    /// `nn.Conv1d`.
    Conv1d(Conv1d),
    /// `nn.Linear` (on the last axis).
    Linear(Linear),
    /// `nn.GELU()` with the exact erf form.
    Gelu,
    /// `nn.Tanh()`.
    Tanh,
    /// `nn.Hardtanh(min, max)`: clamp to `[min, max]`.
    Hardtanh {
        /// Lower bound.
        min: f64,
        /// Upper bound.
        max: f64,
    },
    /// `nn.Flatten()`: `(B, C, T) -> (B, C*T)`; 2-D input passes unchanged.
    Flatten,
    /// `_Norm`: `x / ||x||_2` over dim 1, no epsilon (a zero vector gives NaN, as the reference).
    Norm,
    /// `Squeeze`: removes dim 2 when the input has more than 2 dims and dim 2 has size 1.
    Squeeze,
    /// `nn.Dropout1d(p)`: whole-channel dropout in training, identity otherwise.
    Dropout1d {
        /// Drop probability.
        p: f64,
    },
    /// `_Skip(*inner, crop)`: `x[..., crop.0 : len - crop.1] + inner(x)`; the inner layers see the
    /// whole input, only the identity branch is cropped on the last axis.
    Skip {
        /// The wrapped layers (`module.<j>` in the state dict).
        inner: Vec<Layer>,
        /// Samples dropped from the identity at the start and end of the last axis.
        crop: (i64, i64),
    },
    /// `_SkipLinear(linear)`: `pad_or_crop(x, out) + linear(x)`.
    SkipLinear(Linear),
    /// `_MeanAndConv`: `cat([conv(x), x[..., ::stride][..., :T_conv]], dim=1)` (no averaging).
    MeanAndConv(Conv1d),
}

/// Output length of a strided, unpadded convolution, or `None` when the input is too short.
///
/// ```
/// use cebra::layers::conv_output_len;
/// assert_eq!(conv_output_len(10, 2, 1), Some(9));
/// assert_eq!(conv_output_len(9, 4, 2), Some(3));
/// assert_eq!(conv_output_len(3, 4, 2), None);
/// ```
pub fn conv_output_len(time: i64, kernel: i64, stride: i64) -> Option<i64> {
    (time >= kernel).then(|| (time - kernel) / stride + 1)
}

impl Conv1d {
    /// The same layer over the same parameter storage (see [`Tensor::shallow_clone`]).
    pub fn shallow_clone(&self) -> Self {
        Conv1d { weight: self.weight.shallow_clone(), bias: self.bias.shallow_clone(), ..*self }
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.f_conv1d(
            &self.weight,
            Some(&self.bias),
            [self.stride].as_slice(),
            [0i64].as_slice(),
            [1i64].as_slice(),
            1,
        )?)
    }
}

impl Linear {
    /// The same layer over the same parameter storage (see [`Tensor::shallow_clone`]).
    pub fn shallow_clone(&self) -> Self {
        Linear { weight: self.weight.shallow_clone(), bias: self.bias.shallow_clone(), ..*self }
    }

    /// `x·Wᵀ + b` on the last axis.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.f_linear(&self.weight, Some(&self.bias))?)
    }
}

impl Layer {
    /// Applies the layer. `train` enables dropout.
    ///
    /// ```
    /// use cebra::layers::{Conv1d, Layer};
    /// use tch::{Device, Kind, Tensor};
    /// // _Skip(Conv1d(1, 1, 3), crop=(1, 1)) around an all-zero convolution is the cropped identity.
    /// let conv = Conv1d {
    ///     weight: Tensor::zeros([1, 1, 3], (Kind::Float, Device::Cpu)),
    ///     bias: Tensor::zeros([1], (Kind::Float, Device::Cpu)),
    ///     in_channels: 1, out_channels: 1, kernel: 3, stride: 1,
    /// };
    /// let skip = Layer::Skip { inner: vec![Layer::Conv1d(conv)], crop: (1, 1) };
    /// let x = Tensor::arange(5, (Kind::Float, Device::Cpu)).view([1, 1, 5]);
    /// let y = skip.forward(&x, false).unwrap();
    /// assert_eq!(Vec::<f32>::try_from(y.view([-1])).unwrap(), [1.0, 2.0, 3.0]);
    /// ```
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        Ok(match self {
            Layer::Conv1d(c) => c.forward(x)?,
            Layer::Linear(l) => l.forward(x)?,
            Layer::Gelu => x.f_gelu("none")?,
            Layer::Tanh => x.f_tanh()?,
            Layer::Hardtanh { min, max } => x.f_clamp(*min, *max)?,
            Layer::Flatten => {
                if x.dim() > 2 {
                    x.f_flatten(1, -1)?
                } else {
                    x.shallow_clone()
                }
            }
            Layer::Norm => {
                let norm = x.f_norm_scalaropt_dim(2, [1i64].as_slice(), true)?;
                x.f_div(&norm)?
            }
            Layer::Squeeze => {
                if x.dim() > 2 && x.size()[2] == 1 {
                    x.f_squeeze_dim(2)?
                } else {
                    x.shallow_clone()
                }
            }
            Layer::Dropout1d { p } => {
                if train && *p > 0.0 {
                    x.f_feature_dropout(*p, true)?
                } else {
                    x.shallow_clone()
                }
            }
            Layer::Skip { inner, crop } => {
                let mut y = x.shallow_clone();
                for layer in inner {
                    y = layer.forward(&y, train)?;
                }
                let last = x.dim() as i64 - 1;
                let len = x.size()[last as usize];
                let kept = len - crop.0 - crop.1;
                let identity = x.f_narrow(last, crop.0, kept.max(0))?;
                identity.f_add(&y)?
            }
            Layer::SkipLinear(l) => {
                let y = l.forward(x)?;
                let pad = l.out_features - l.in_features;
                let identity = if pad >= 0 {
                    x.f_constant_pad_nd([0, pad].as_slice())?
                } else {
                    x.f_narrow(x.dim() as i64 - 1, 0, l.out_features)?
                };
                identity.f_add(&y)?
            }
            Layer::MeanAndConv(c) => {
                let conv = c.forward(x)?;
                let conv_len = conv.size()[2];
                let sub = x.f_slice(2, 0, None, c.stride)?.f_narrow(2, 0, conv_len)?;
                Tensor::f_cat(&[conv, sub], 1)?
            }
        })
    }

    /// The output time length for an input time length (`None` for a 2-D, time-less tensor), or an
    /// error that says why the input does not fit. Mirrors `forward` without computing anything.
    ///
    /// ```
    /// use cebra::layers::{Conv1d, Layer};
    /// use tch::{Device, Kind, Tensor};
    /// let (weight, bias) = (Tensor::zeros([4, 4, 3], (Kind::Float, Device::Cpu)), Tensor::zeros([4], (Kind::Float, Device::Cpu)));
    /// let conv = Layer::Conv1d(Conv1d { weight, bias, in_channels: 4, out_channels: 4, kernel: 3, stride: 1 });
    /// assert_eq!(conv.output_time(Some(10)).unwrap(), Some(8));
    /// assert!(conv.output_time(Some(2)).is_err()); // shorter than the kernel
    /// assert_eq!(Layer::Squeeze.output_time(Some(1)).unwrap(), None); // time axis removed
    /// assert!(Layer::Flatten.output_time(Some(5)).is_err()); // flattening needs one time step
    /// ```
    pub fn output_time(&self, time: Option<i64>) -> Result<Option<i64>> {
        let conv_len = |c: &Conv1d, t: Option<i64>| -> Result<Option<i64>> {
            let t = t.ok_or_else(|| {
                shape_mismatch!("a Conv1d layer needs a (batch, channels, time) input")
            })?;
            conv_output_len(t, c.kernel, c.stride).map(Some).ok_or_else(|| {
                shape_mismatch!(
                    "time length {t} is shorter than the kernel ({}) of a Conv1d layer",
                    c.kernel
                )
            })
        };
        match self {
            Layer::Conv1d(c) | Layer::MeanAndConv(c) => conv_len(c, time),
            Layer::Flatten => match time {
                None | Some(1) => Ok(None),
                Some(t) => Err(shape_mismatch!(
                    "this model flattens its input and takes exactly 1 time step at that point, got {t}"
                )),
            },
            Layer::Squeeze => Ok(match time {
                Some(1) => None,
                other => other,
            }),
            Layer::Skip { inner, crop } => {
                let mut t = time;
                for layer in inner {
                    t = layer.output_time(t)?;
                }
                match (time, t) {
                    (Some(a), Some(b)) if a - crop.0 - crop.1 != b => Err(shape_mismatch!(
                        "skip connection: cropped identity length {} differs from {b}",
                        a - crop.0 - crop.1
                    )),
                    _ => Ok(t),
                }
            }
            _ => Ok(time),
        }
    }

    /// The number of input channels (or features) the layer expects, where it constrains them.
    ///
    /// ```
    /// use cebra::layers::{Layer, Linear};
    /// use tch::{Device, Kind, Tensor};
    /// let (weight, bias) = (Tensor::zeros([3, 7], (Kind::Float, Device::Cpu)), Tensor::zeros([3], (Kind::Float, Device::Cpu)));
    /// let linear = Linear { weight, bias, in_features: 7, out_features: 3 };
    /// assert_eq!(Layer::SkipLinear(linear).input_channels(), Some(7));
    /// assert_eq!(Layer::Gelu.input_channels(), None);
    /// ```
    pub fn input_channels(&self) -> Option<i64> {
        match self {
            Layer::Conv1d(c) | Layer::MeanAndConv(c) => Some(c.in_channels),
            Layer::Linear(l) | Layer::SkipLinear(l) => Some(l.in_features),
            Layer::Skip { inner, .. } => inner.iter().find_map(Layer::input_channels),
            _ => None,
        }
    }
}
