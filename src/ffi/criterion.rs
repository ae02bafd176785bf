//! Criterion handles and the free similarity/InfoNCE functions.
use super::*;
use crate::criterions::{self, Criterion};
use std::sync::{Mutex, MutexGuard};
use tch::Tensor;

/// An opaque criterion handle. Calls on one handle are serialised.
pub struct CebraCriterion {
    inner: Mutex<Criterion>,
}

impl CebraCriterion {
    fn lock(&self) -> MutexGuard<'_, Criterion> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Builds a criterion by name: `fixed-cosine-infonce`, `fixed-euclidean-infonce`,
/// `learnable-cosine-infonce`, `learnable-euclidean-infonce`, `nce`, and the aliases `infonce`,
/// `infomse`. Options: `temperature` (default 1), `min_temperature` (learnable only), `negative_weight`
/// and `reduce=mean|sum` (nce only).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_criterion_init(name: *const c_char, options: *const c_char, out: *mut *mut CebraCriterion) -> CebraStatus {
    boundary(|| {
        let name = c_str(name, "name")?;
        non_null_mut(out, "out")?;
        let criterion = Criterion::new(name, &super::model::parse_options(options)?)?;
        write_out(out, Box::into_raw(Box::new(CebraCriterion { inner: Mutex::new(criterion) })), "out")
    })
}

/// Criterion names matching `pattern`, like `cebra_get_options`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_criterion_get_options(
    pattern: *const c_char,
    limit: usize,
    buf: *mut c_char,
    buf_len: usize,
    needed: *mut usize,
) -> CebraStatus {
    boundary(|| {
        let pattern = optional_c_str(pattern, "pattern")?;
        let limit = listing_limit(limit);
        write_name_list(&criterions::get_options(pattern, limit), buf, buf_len, needed)
    })
}

/// Releases a criterion handle; NULL is a no-op.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_criterion_free(criterion: *mut CebraCriterion) {
    if !criterion.is_null() {
        infallible(|| drop(unsafe { Box::from_raw(criterion) }));
    }
}

/// `ref`, `pos` `(n, d)` and `neg` `(m, d)` as tensors, after checking sizes and pointers.
fn triple(ref_: *const f32, pos: *const f32, n: i64, neg: *const f32, m: i64, d: i64) -> FfiResult<(Tensor, Tensor, Tensor)> {
    positive(n, "n")?;
    positive(m, "m")?;
    positive(d, "d")?;
    Ok((input_tensor(ref_, &[n, d], "ref")?, input_tensor(pos, &[n, d], "pos")?, input_tensor(neg, &[m, d], "neg")?))
}

/// The criterion's three outputs: one value each for the InfoNCE family (loss, corrected align and
/// uniform terms), `n` values each for `nce` (per-sample). `out_len` is the capacity of each buffer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_criterion_forward(
    criterion: *mut CebraCriterion,
    ref_: *const f32,
    pos: *const f32,
    n: i64,
    neg: *const f32,
    m: i64,
    d: i64,
    loss: *mut f32,
    align: *mut f32,
    uniform: *mut f32,
    out_len: usize,
) -> CebraStatus {
    boundary(|| {
        let criterion = non_null(criterion, "criterion")?.lock();
        let (r, p, ng) = triple(ref_, pos, n, neg, m, d)?;
        non_null_mut(loss, "loss")?;
        non_null_mut(align, "align")?;
        non_null_mut(uniform, "uniform")?;
        let count = if criterion.is_per_sample() { n as usize } else { 1 };
        check_capacity(out_len, count, "out_len")?;
        let out = tch::no_grad(|| criterion.forward(&r, &p, &ng))?;
        write_tensor(&out.loss, loss, "loss")?;
        write_tensor(&out.align, align, "align")?;
        write_tensor(&out.uniform, uniform, "uniform")
    })
}

/// The scalar training minimises (InfoNCE family: the loss; nce: minus the mean per-sample output) and
/// its gradients; any gradient pointer may be NULL to skip it. `grad_log_inverse_temperature` is
/// written only for learnable criterions.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_criterion_backward(
    criterion: *mut CebraCriterion,
    ref_: *const f32,
    pos: *const f32,
    n: i64,
    neg: *const f32,
    m: i64,
    d: i64,
    loss: *mut f32,
    grad_ref: *mut f32,
    grad_pos: *mut f32,
    grad_neg: *mut f32,
    grad_log_inverse_temperature: *mut f64,
) -> CebraStatus {
    boundary(|| {
        let criterion = non_null(criterion, "criterion")?.lock();
        let (r, p, ng) = triple(ref_, pos, n, neg, m, d)?;
        non_null_mut(loss, "loss")?;
        let grads = criterion.backward(&r, &p, &ng)?;
        for (tensor, out, name) in [
            (&grads.grad_ref, grad_ref, "grad_ref"),
            (&grads.grad_pos, grad_pos, "grad_pos"),
            (&grads.grad_neg, grad_neg, "grad_neg"),
        ] {
            if !out.is_null() {
                write_tensor(tensor, out, name)?;
            }
        }
        if let (Some(g), false) = (grads.grad_log_inverse_temperature, grad_log_inverse_temperature.is_null()) {
            unsafe { *grad_log_inverse_temperature = g };
        }
        write_out(loss, grads.loss as f32, "loss")
    })
}

/// The current temperature (`1 / clamp(exp(log_inverse_temperature))` for learnable criterions).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_criterion_get_temperature(criterion: *const CebraCriterion, out: *mut f64) -> CebraStatus {
    boundary(|| {
        let value = non_null(criterion, "criterion")?.lock().temperature();
        write_out(out, value, "out")
    })
}

fn similarity(
    f: fn(&Tensor, &Tensor, &Tensor) -> crate::Result<(Tensor, Tensor)>,
    ref_: *const f32,
    pos: *const f32,
    n: i64,
    neg: *const f32,
    m: i64,
    d: i64,
    pos_dist: *mut f32,
    neg_dist: *mut f32,
) -> CebraStatus {
    boundary(|| {
        let (r, p, ng) = triple(ref_, pos, n, neg, m, d)?;
        non_null_mut(pos_dist, "pos_dist")?;
        non_null_mut(neg_dist, "neg_dist")?;
        let (ps, ns) = tch::no_grad(|| f(&r, &p, &ng))?;
        write_tensor(&ps, pos_dist, "pos_dist")?;
        write_tensor(&ns, neg_dist, "neg_dist")
    })
}

/// `pos_dist[i] = ref_i·pos_i` (`n` values), `neg_dist[i*m + j] = ref_i·neg_j` (`n*m` values).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_dot_similarity(
    ref_: *const f32,
    pos: *const f32,
    n: i64,
    neg: *const f32,
    m: i64,
    d: i64,
    pos_dist: *mut f32,
    neg_dist: *mut f32,
) -> CebraStatus {
    similarity(criterions::dot_similarity, ref_, pos, n, neg, m, d, pos_dist, neg_dist)
}

/// Negative squared Euclidean distances, shaped as in `cebra_dot_similarity`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_euclidean_similarity(
    ref_: *const f32,
    pos: *const f32,
    n: i64,
    neg: *const f32,
    m: i64,
    d: i64,
    pos_dist: *mut f32,
    neg_dist: *mut f32,
) -> CebraStatus {
    similarity(criterions::euclidean_similarity, ref_, pos, n, neg, m, d, pos_dist, neg_dist)
}

/// The stabilised InfoNCE of `pos_dist` `(n,)` and `neg_dist` `(n, m)`: one value each for the loss and
/// the corrected align and uniform terms.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_infonce(
    pos_dist: *const f32,
    neg_dist: *const f32,
    n: i64,
    m: i64,
    loss: *mut f32,
    align: *mut f32,
    uniform: *mut f32,
) -> CebraStatus {
    boundary(|| {
        positive(n, "n")?;
        positive(m, "m")?;
        let p = input_tensor(pos_dist, &[n], "pos_dist")?;
        let ng = input_tensor(neg_dist, &[n, m], "neg_dist")?;
        non_null_mut(loss, "loss")?;
        non_null_mut(align, "align")?;
        non_null_mut(uniform, "uniform")?;
        let (l, a, u) = tch::no_grad(|| criterions::infonce(&p, &ng))?;
        write_tensor(&l, loss, "loss")?;
        write_tensor(&a, align, "align")?;
        write_tensor(&u, uniform, "uniform")
    })
}
