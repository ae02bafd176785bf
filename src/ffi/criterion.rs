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

/// The handle behind a caller's criterion pointer.
///
/// # Safety
/// `criterion` is NULL or a live handle from `cebra_criterion_init` (not yet freed).
unsafe fn criterion_ref<'a>(criterion: *const CebraCriterion) -> FfiResult<&'a CebraCriterion> {
    // SAFETY: forwarded contract; the handle is only read (its mutex serialises use).
    unsafe { non_null(criterion, "criterion") }
}

/// Builds a criterion by name: `fixed-cosine-infonce`, `fixed-euclidean-infonce`,
/// `learnable-cosine-infonce`, `learnable-euclidean-infonce`, `nce`, and the aliases `infonce`,
/// `infomse`. Options: `temperature` (default 1), `min_temperature` (learnable only), `negative_weight`
/// and `reduce=mean|sum` (nce only), and `implementation=fused|libtorch` (InfoNCE family; default
/// `fused`: a tiled kernel that never holds the `n × m` similarity matrix; `libtorch` computes the
/// matrix through libtorch autograd, as the reference does).
///
/// # Safety
/// `name` is NULL or NUL-terminated; `options` is NULL or NUL-terminated; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_criterion_init(name: *const c_char, options: *const c_char, out: *mut *mut CebraCriterion) -> CebraStatus {
    boundary(|| {
        // SAFETY: `name` and `options` are NULL or NUL-terminated (contract above).
        let (name, options) = unsafe { (c_str(name, "name")?, super::model::parse_options(options)?) };
        require(out, "out")?;
        let criterion = Criterion::new(name, &options)?;
        let handle = Box::into_raw(Box::new(CebraCriterion { inner: Mutex::new(criterion) }));
        // SAFETY: `out` is non-NULL and writable (contract above).
        unsafe { write_out(out, handle, "out") }
    })
}

/// Criterion names matching `pattern`, like `cebra_get_options`.
///
/// # Safety
/// `pattern` is NULL or NUL-terminated; `buf` is NULL or holds `buf_len` writable bytes; `needed` is
/// NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_criterion_get_options(
    pattern: *const c_char,
    limit: usize,
    buf: *mut c_char,
    buf_len: usize,
    needed: *mut usize,
) -> CebraStatus {
    boundary(|| {
        // SAFETY: `pattern` is NULL or NUL-terminated (contract above).
        let pattern = unsafe { optional_c_str(pattern, "pattern") }?;
        let names = criterions::get_options(pattern, listing_limit(limit));
        // SAFETY: `buf`/`needed` as in the contract above.
        unsafe { write_name_list(&names, buf, buf_len, needed) }
    })
}

/// Releases a criterion handle; NULL is a no-op.
///
/// # Safety
/// `criterion` is NULL or a live handle, not used again after this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_criterion_free(criterion: *mut CebraCriterion) {
    if !criterion.is_null() {
        // SAFETY: a live handle made by Box::into_raw, freed once (contract above).
        infallible(|| drop(unsafe { Box::from_raw(criterion) }));
    }
}

/// `reference`, `pos` `(n, d)` and `neg` `(m, d)` as tensors, after checking sizes and pointers.
///
/// # Safety
/// Each pointer is NULL or holds its `(rows, d)` floats.
unsafe fn triple(reference: *const f32, pos: *const f32, n: i64, neg: *const f32, m: i64, d: i64) -> FfiResult<(Tensor, Tensor, Tensor)> {
    positive(n, "n")?;
    positive(m, "m")?;
    positive(d, "d")?;
    // SAFETY: forwarded contract.
    unsafe {
        Ok((
            input_tensor(reference, &[n, d], "reference")?,
            input_tensor(pos, &[n, d], "pos")?,
            input_tensor(neg, &[m, d], "neg")?,
        ))
    }
}

/// The criterion's three outputs: one value each for the InfoNCE family (loss, corrected align and
/// uniform terms), `n` values each for `nce` (per-sample). `out_len` is the capacity of each buffer.
///
/// # Safety
/// `criterion` is NULL or a live handle; `reference` and `pos` are NULL or hold `n * d` floats, `neg`
/// NULL or `m * d`; `loss`, `align`, `uniform` are NULL or hold `out_len` writable floats each.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_criterion_forward(
    criterion: *mut CebraCriterion,
    reference: *const f32,
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
        // SAFETY: `criterion` is NULL or a live handle (contract above).
        let criterion = unsafe { criterion_ref(criterion) }?.lock();
        // SAFETY: the inputs hold their (rows, d) floats (contract above).
        let (r, p, ng) = unsafe { triple(reference, pos, n, neg, m, d) }?;
        require(loss, "loss")?;
        require(align, "align")?;
        require(uniform, "uniform")?;
        let count = if criterion.is_per_sample() { n as usize } else { 1 };
        check_capacity(out_len, count, "out_len")?;
        let out = tch::no_grad(|| criterion.forward(&r, &p, &ng))?;
        // SAFETY: each buffer holds `out_len >= count` floats (contract above).
        unsafe {
            write_tensor(&out.loss, loss, out_len, "loss")?;
            write_tensor(&out.align, align, out_len, "align")?;
            write_tensor(&out.uniform, uniform, out_len, "uniform")
        }
    })
}

/// The scalar training minimises (InfoNCE family: the loss; nce: minus the mean per-sample output) and
/// its gradients; any gradient pointer may be NULL to skip it (its capacity is then ignored). A
/// capacity smaller than its gradient (`n*d`, `n*d`, `m*d`) is BUFFER_TOO_SMALL and nothing is written.
/// `grad_log_inverse_temperature` is written only for learnable criterions.
///
/// # Safety
/// `criterion` is NULL or a live handle; the inputs as for `cebra_criterion_forward`; `loss` NULL or
/// writable; each gradient buffer NULL or holding its stated capacity of writable floats;
/// `grad_log_inverse_temperature` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_criterion_backward(
    criterion: *mut CebraCriterion,
    reference: *const f32,
    pos: *const f32,
    n: i64,
    neg: *const f32,
    m: i64,
    d: i64,
    loss: *mut f32,
    grad_ref: *mut f32,
    grad_ref_len: usize,
    grad_pos: *mut f32,
    grad_pos_len: usize,
    grad_neg: *mut f32,
    grad_neg_len: usize,
    grad_log_inverse_temperature: *mut f64,
) -> CebraStatus {
    boundary(|| {
        // SAFETY: `criterion` is NULL or a live handle (contract above).
        let criterion = unsafe { criterion_ref(criterion) }?.lock();
        // SAFETY: the inputs hold their (rows, d) floats (contract above).
        let (r, p, ng) = unsafe { triple(reference, pos, n, neg, m, d) }?;
        require(loss, "loss")?;
        let outputs = [
            (grad_ref, grad_ref_len, element_count(&[n, d], "grad_ref")?, "grad_ref"),
            (grad_pos, grad_pos_len, element_count(&[n, d], "grad_pos")?, "grad_pos"),
            (grad_neg, grad_neg_len, element_count(&[m, d], "grad_neg")?, "grad_neg"),
        ];
        for (ptr, capacity, needed, name) in outputs {
            if !ptr.is_null() {
                check_capacity(capacity, needed, name)?;
            }
        }
        let grads = criterion.backward(&r, &p, &ng)?;
        for ((ptr, capacity, _, name), tensor) in outputs.into_iter().zip([&grads.grad_ref, &grads.grad_pos, &grads.grad_neg]) {
            if !ptr.is_null() {
                // SAFETY: non-NULL gradient buffers hold `capacity` floats (contract above).
                unsafe { write_tensor(tensor, ptr, capacity, name) }?;
            }
        }
        if let (Some(g), false) = (grads.grad_log_inverse_temperature, grad_log_inverse_temperature.is_null()) {
            // SAFETY: checked non-NULL, writable (contract above).
            unsafe { write_out(grad_log_inverse_temperature, g, "grad_log_inverse_temperature") }?;
        }
        // SAFETY: checked non-NULL, writable (contract above).
        unsafe { write_out(loss, grads.loss as f32, "loss") }
    })
}

/// The current temperature (`1 / clamp(exp(log_inverse_temperature))` for learnable criterions).
///
/// # Safety
/// `criterion` is NULL or a live handle; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_criterion_get_temperature(criterion: *const CebraCriterion, out: *mut f64) -> CebraStatus {
    boundary(|| {
        // SAFETY: `criterion` is NULL or a live handle; `out` NULL or writable (contract above).
        unsafe {
            let value = criterion_ref(criterion)?.lock().temperature();
            write_out(out, value, "out")
        }
    })
}

type SimilarityFn = fn(&Tensor, &Tensor, &Tensor) -> crate::Result<(Tensor, Tensor)>;

/// The shared body of the two similarity functions.
///
/// # Safety
/// As for `cebra_dot_similarity`.
#[allow(clippy::too_many_arguments)] // the C signature, forwarded
unsafe fn similarity(
    f: SimilarityFn,
    reference: *const f32,
    pos: *const f32,
    n: i64,
    neg: *const f32,
    m: i64,
    d: i64,
    pos_dist: *mut f32,
    pos_dist_len: usize,
    neg_dist: *mut f32,
    neg_dist_len: usize,
) -> CebraStatus {
    boundary(|| {
        // SAFETY: the inputs hold their (rows, d) floats (forwarded contract).
        let (r, p, ng) = unsafe { triple(reference, pos, n, neg, m, d) }?;
        require(pos_dist, "pos_dist")?;
        require(neg_dist, "neg_dist")?;
        check_capacity(pos_dist_len, element_count(&[n], "pos_dist")?, "pos_dist")?;
        check_capacity(neg_dist_len, element_count(&[n, m], "neg_dist")?, "neg_dist")?;
        let (ps, ns) = tch::no_grad(|| f(&r, &p, &ng))?;
        // SAFETY: the buffers hold their stated capacities, both checked (forwarded contract).
        unsafe {
            write_tensor(&ps, pos_dist, pos_dist_len, "pos_dist")?;
            write_tensor(&ns, neg_dist, neg_dist_len, "neg_dist")
        }
    })
}

/// `pos_dist[i] = reference_i·pos_i` (`n` values), `neg_dist[i*m + j] = reference_i·neg_j` (`n*m`
/// values). A capacity below `n` or `n*m` is BUFFER_TOO_SMALL and nothing is written.
///
/// # Safety
/// `reference` and `pos` are NULL or hold `n * d` floats, `neg` NULL or `m * d`; `pos_dist` and
/// `neg_dist` are NULL or hold `pos_dist_len` / `neg_dist_len` writable floats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_dot_similarity(
    reference: *const f32,
    pos: *const f32,
    n: i64,
    neg: *const f32,
    m: i64,
    d: i64,
    pos_dist: *mut f32,
    pos_dist_len: usize,
    neg_dist: *mut f32,
    neg_dist_len: usize,
) -> CebraStatus {
    // SAFETY: forwarded contract.
    unsafe {
        similarity(criterions::dot_similarity, reference, pos, n, neg, m, d, pos_dist, pos_dist_len, neg_dist, neg_dist_len)
    }
}

/// Negative squared Euclidean distances, shaped as in `cebra_dot_similarity`.
///
/// # Safety
/// As for `cebra_dot_similarity`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cebra_euclidean_similarity(
    reference: *const f32,
    pos: *const f32,
    n: i64,
    neg: *const f32,
    m: i64,
    d: i64,
    pos_dist: *mut f32,
    pos_dist_len: usize,
    neg_dist: *mut f32,
    neg_dist_len: usize,
) -> CebraStatus {
    // SAFETY: forwarded contract.
    unsafe {
        similarity(criterions::euclidean_similarity, reference, pos, n, neg, m, d, pos_dist, pos_dist_len, neg_dist, neg_dist_len)
    }
}

/// The stabilised InfoNCE of `pos_dist` `(n,)` and `neg_dist` `(n, m)`: one value each for the loss and
/// the corrected align and uniform terms.
///
/// # Safety
/// `pos_dist` is NULL or holds `n` floats, `neg_dist` NULL or `n * m`; `loss`, `align`, `uniform` are
/// NULL or writable.
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
        // SAFETY: the inputs hold n and n*m floats (contract above).
        let (p, ng) = unsafe { (input_tensor(pos_dist, &[n], "pos_dist")?, input_tensor(neg_dist, &[n, m], "neg_dist")?) };
        require(loss, "loss")?;
        require(align, "align")?;
        require(uniform, "uniform")?;
        let (l, a, u) = tch::no_grad(|| criterions::infonce(&p, &ng))?;
        // SAFETY: each output is non-NULL and holds one float (contract above).
        unsafe {
            write_tensor(&l, loss, 1, "loss")?;
            write_tensor(&a, align, 1, "align")?;
            write_tensor(&u, uniform, 1, "uniform")
        }
    })
}
