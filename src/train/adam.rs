//! Adam, as `torch.optim.Adam` computes it on the CPU (the single-tensor path, no weight decay, no
//! AMSGrad): the same operations in the same order, so the same float32 updates.
use crate::error::Result;
use tch::Tensor;

/// Adam's hyperparameters (the reference's defaults: `betas=(0.9, 0.999)`, `eps=1e-8`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    /// Step size.
    pub learning_rate: f64,
    /// `beta1`.
    pub beta1: f64,
    /// `beta2`.
    pub beta2: f64,
    /// `eps`.
    pub eps: f64,
}

impl AdamConfig {
    /// The reference's defaults with `learning_rate`.
    pub fn new(learning_rate: f64) -> Self {
        AdamConfig { learning_rate, beta1: 0.9, beta2: 0.999, eps: 1e-8 }
    }
}

#[derive(Debug)]
struct ParamState {
    param: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    step: u64,
}

/// Adam over a fixed list of parameter tensors (updated in place).
///
/// ```
/// use cebra::train::{Adam, AdamConfig};
/// use tch::{Kind, Tensor};
/// let w = Tensor::from_slice(&[1.0f32, -2.0]).set_requires_grad(true);
/// let mut adam = Adam::new(vec![w.shallow_clone()], AdamConfig::new(0.1)).unwrap();
/// (&w * &w).sum(Kind::Float).backward();
/// adam.step().unwrap();
/// // The first step moves every coordinate by the learning rate against its gradient's sign.
/// let v: Vec<f32> = Vec::try_from(&w.detach()).unwrap();
/// assert!((v[0] - 0.9).abs() < 1e-6 && (v[1] + 1.9).abs() < 1e-6);
/// ```
#[derive(Debug)]
pub struct Adam {
    config: AdamConfig,
    state: Vec<ParamState>,
}

impl Adam {
    /// Adam over `params` (their order is the reference's: model parameters, then the criterion's).
    pub fn new(params: Vec<Tensor>, config: AdamConfig) -> Result<Self> {
        let state = params
            .into_iter()
            .map(|param| -> Result<ParamState> {
                let exp_avg = param.f_zeros_like()?;
                let exp_avg_sq = param.f_zeros_like()?;
                Ok(ParamState { param, exp_avg, exp_avg_sq, step: 0 })
            })
            .collect::<Result<_>>()?;
        Ok(Adam { config, state })
    }

    /// Clears the gradients (`zero_grad(set_to_none=True)`: Adam skips a parameter without one).
    pub fn zero_grad(&mut self) -> Result<()> {
        for s in &mut self.state {
            let mut grad = s.param.grad();
            if grad.defined() {
                let _ = grad.f_detach_()?;
                let _ = grad.f_zero_()?;
            }
        }
        Ok(())
    }

    /// One update from the accumulated gradients; parameters without a gradient are left alone.
    pub fn step(&mut self) -> Result<()> {
        let AdamConfig { learning_rate, beta1, beta2, eps } = self.config;
        tch::no_grad(|| -> Result<()> {
            for s in &mut self.state {
                let grad = s.param.grad();
                if !grad.defined() {
                    continue;
                }
                s.step += 1;
                let _ = s.exp_avg.f_lerp_(&grad, 1.0 - beta1)?;
                let _ = s.exp_avg_sq.f_mul_scalar_(beta2)?;
                // addcmul: exp_avg_sq + value * grad * grad, evaluated left to right as ATen does.
                let _ = s.exp_avg_sq.f_add_(&grad.f_mul_scalar(1.0 - beta2)?.f_mul(&grad)?)?;
                let bias_correction1 = 1.0 - beta1.powf(s.step as f64);
                let bias_correction2 = 1.0 - beta2.powf(s.step as f64);
                let step_size = learning_rate / bias_correction1;
                let denom = s.exp_avg_sq.f_sqrt()?.f_div_scalar(bias_correction2.sqrt())?.f_add_scalar(eps)?;
                // addcdiv: param + value * exp_avg / denom, with value = -step_size.
                let update = s.exp_avg.f_mul_scalar(-step_size)?.f_div(&denom)?;
                let _ = s.param.f_add_(&update)?;
            }
            Ok(())
        })
    }

    /// Steps taken (of the first parameter).
    pub fn steps(&self) -> u64 {
        self.state.first().map_or(0, |s| s.step)
    }
}
