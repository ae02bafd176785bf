//! PyTorch-exact seeded initialisation of layer parameters, and the allocation budget that bounds
//! models described by a file.
//!
//! Parameters are drawn from libtorch's global generator in creation order (weight, then bias), so
//! `manual_seed` gives PyTorch's very numbers for the same layers built in the same order.
use crate::error::{Error, Result};
use crate::layers::{Conv1d, Linear};
use std::cell::Cell;
use tch::{Device, Kind, Tensor};

thread_local! {
    /// Elements that models built on this thread may still allocate; `None` = no limit.
    static PARAM_BUDGET: Cell<Option<i64>> = const { Cell::new(None) };
}

/// Runs `build` with at most `elements` parameter elements allowed for the models it creates, so that a
/// description read from a file (its metadata) cannot make us allocate more than the file could fill.
pub(crate) fn with_param_budget<T>(elements: i64, build: impl FnOnce() -> Result<T>) -> Result<T> {
    /// Restores the enclosing budget also when `build` unwinds (the C boundary catches panics and the
    /// thread goes on).
    struct Restore(Option<i64>);
    impl Drop for Restore {
        fn drop(&mut self) {
            PARAM_BUDGET.with(|b| b.set(self.0));
        }
    }
    let _restore = Restore(PARAM_BUDGET.with(|b| b.replace(Some(elements))));
    build()
}

fn take_from_budget(shape: &[i64]) -> Result<()> {
    let numel = shape.iter().try_fold(1i64, |acc, &d| acc.checked_mul(d)).unwrap_or(i64::MAX);
    PARAM_BUDGET.with(|b| match b.get() {
        Some(left) if numel > left => Err(Error::Format(format!(
            "the described model needs more parameters than the file holds (a tensor of shape {shape:?})"
        ))),
        Some(left) => {
            b.set(Some(left - numel));
            Ok(())
        }
        None => Ok(()),
    })
}

/// A trainable tensor drawn from `U(-bound, bound)`.
fn uniform(shape: &[i64], bound: f64) -> Result<Tensor> {
    take_from_budget(shape)?;
    let mut t = Tensor::f_empty(shape, (Kind::Float, Device::Cpu))?;
    // PyTorch skips the draw for zero-element weights; uniform_ on them draws nothing either.
    let t = tch::no_grad(|| t.f_uniform_(-bound, bound))?;
    Ok(t.set_requires_grad(true))
}

/// `kaiming_uniform_(a=sqrt(5))` for the weight and `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` for the bias:
/// both reduce to the same bound.
fn weight_and_bias(weight_shape: &[i64], out: i64, fan_in: i64) -> Result<(Tensor, Tensor)> {
    let bound = if fan_in > 0 { 1.0 / (fan_in as f64).sqrt() } else { 0.0 };
    let weight = uniform(weight_shape, bound)?;
    let bias = uniform(&[out], bound)?;
    Ok((weight, bias))
}

/// `nn.Conv1d(inp, out, kernel, stride)` with PyTorch's default initialisation.
pub(crate) fn conv1d(inp: i64, out: i64, kernel: i64, stride: i64) -> Result<Conv1d> {
    let (weight, bias) = weight_and_bias(&[out, inp, kernel], out, inp * kernel)?;
    Ok(Conv1d { weight, bias, in_channels: inp, out_channels: out, kernel, stride })
}

/// `nn.Linear(inp, out)` with PyTorch's default initialisation.
pub(crate) fn linear(inp: i64, out: i64) -> Result<Linear> {
    let (weight, bias) = weight_and_bias(&[out, inp], out, inp)?;
    Ok(Linear { weight, bias, in_features: inp, out_features: out })
}
