//! The contrastive losses of the reference `cebra.models.criterions`: similarities, the stabilised
//! InfoNCE core, the fixed/learnable-temperature InfoNCE family and NCE. Everything runs through
//! libtorch autograd, so gradients with respect to the inputs and the learnable temperature are exact.
//! The InfoNCE family runs by default on the fused kernel ([`crate::fused`]), which never holds the
//! `n × m` similarity matrix; option `implementation=libtorch` selects the libtorch path (the oracle).
use crate::error::{invalid, shape_mismatch, Error, Result};
use crate::options::Options;
use crate::registry::{glob_match, python_slice};
use tch::{Kind, Tensor};

/// Names accepted by [`Criterion::new`], in listing order (`infonce` and `infomse` are aliases).
pub const CRITERION_NAMES: [&str; 7] = [
    "fixed-cosine-infonce",
    "fixed-euclidean-infonce",
    "learnable-cosine-infonce",
    "learnable-euclidean-infonce",
    "nce",
    "infonce",
    "infomse",
];

/// Criterion names matching a glob `pattern`, at most `limit` (Python slice semantics), like
/// [`crate::get_options`].
///
/// ```
/// assert_eq!(cebra::criterions::get_options(Some("*euclidean*"), None).len(), 2);
/// ```
pub fn get_options(pattern: Option<&str>, limit: Option<isize>) -> Vec<String> {
    let names = CRITERION_NAMES
        .iter()
        .filter(|n| pattern.is_none_or(|p| glob_match(p, n)))
        .map(|n| n.to_string())
        .collect();
    python_slice(names, limit)
}

fn check_pair(ref_: &Tensor, pos: &Tensor, neg: &Tensor) -> Result<()> {
    for (name, t) in [("ref", ref_), ("pos", pos), ("neg", neg)] {
        if t.dim() != 2 {
            return Err(shape_mismatch!("'{name}' must be a 2-D (rows, d) tensor, got shape {:?}", t.size()));
        }
        let size = t.size();
        if size[0] < 1 || size[1] < 1 {
            return Err(invalid!("'{name}' needs at least one row and one column, got shape {size:?}"));
        }
        if t.kind() != Kind::Float && t.kind() != Kind::Double {
            return Err(invalid!("'{name}' must be float32 or float64, got {:?}", t.kind()));
        }
    }
    let (r, p, n) = (ref_.size(), pos.size(), neg.size());
    if r != p {
        return Err(shape_mismatch!("'ref' {r:?} and 'pos' {p:?} must have the same shape (n, d)"));
    }
    if n[1] != r[1] {
        return Err(shape_mismatch!("'neg' has {} columns, 'ref' has {}: both need d columns", n[1], r[1]));
    }
    Ok(())
}

/// `(pos_sim (n,), neg_sim (n, m))`: plain dot products `ref_i·pos_i` and `ref_i·neg_j`.
pub fn dot_similarity(ref_: &Tensor, pos: &Tensor, neg: &Tensor) -> Result<(Tensor, Tensor)> {
    check_pair(ref_, pos, neg)?;
    Ok((
        Tensor::f_einsum("ni,ni->n", &[ref_, pos], None::<&[i64]>)?,
        Tensor::f_einsum("ni,mi->nm", &[ref_, neg], None::<&[i64]>)?,
    ))
}

/// Negative SQUARED Euclidean distances, through the expansion `-(|a|² + |b|² - 2 a·b)` exactly as the
/// reference computes them (its docstring's `-|x-y|` is not what the code does).
pub fn euclidean_similarity(ref_: &Tensor, pos: &Tensor, neg: &Tensor) -> Result<(Tensor, Tensor)> {
    let (pos_dot, neg_dot) = dot_similarity(ref_, pos, neg)?;
    let square_sum = |t: &Tensor| -> Result<Tensor> { Ok(Tensor::f_einsum("ni->n", &[t.f_pow_tensor_scalar(2)?], None::<&[i64]>)?) };
    let (ref_sq, pos_sq, neg_sq) = (square_sum(ref_)?, square_sum(pos)?, square_sum(neg)?);
    let pos_sim = ref_sq.f_add(&pos_sq)?.f_sub(&pos_dot.f_mul_scalar(2)?)?.f_neg()?;
    let neg_sim = ref_sq
        .f_unsqueeze(1)?
        .f_add(&neg_sq.f_unsqueeze(0)?)?
        .f_sub(&neg_dot.f_mul_scalar(2)?)?
        .f_neg()?;
    Ok((pos_sim, neg_sim))
}

/// The numerically stabilised InfoNCE core: returns `(loss, align_corrected, uniform_corrected)`.
///
/// With `c_i = max_j neg_sim_ij` (no gradient): `align = mean(-(pos_i - c_i))`,
/// `uniform = mean(logsumexp_j(neg_ij - c_i))`, `loss = align + uniform`, and the corrected terms
/// `align - mean(c)`, `uniform + mean(c)`. The positive pair is not in the denominator.
pub fn infonce(pos_sim: &Tensor, neg_sim: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
    if pos_sim.dim() != 1 || neg_sim.dim() != 2 || neg_sim.size()[0] != pos_sim.size()[0] {
        return Err(shape_mismatch!(
            "infonce needs pos_sim (n,) and neg_sim (n, m), got {:?} and {:?}",
            pos_sim.size(),
            neg_sim.size()
        ));
    }
    if pos_sim.size()[0] < 1 || neg_sim.size()[1] < 1 {
        return Err(invalid!("infonce needs n >= 1 and m >= 1, got {:?}", neg_sim.size()));
    }
    let c = tch::no_grad(|| neg_sim.f_amax([1i64].as_slice(), true))?.f_detach()?;
    let pos = pos_sim.f_sub(&c.f_squeeze_dim(1)?)?;
    let neg = neg_sim.f_sub(&c)?;
    let align = pos.f_neg()?.f_mean(None)?;
    let uniform = neg.f_logsumexp([1i64].as_slice(), false)?.f_mean(None)?;
    let c_mean = c.f_mean(None)?;
    let align_corrected = align.f_sub(&c_mean)?;
    let uniform_corrected = uniform.f_add(&c_mean)?;
    Ok((align.f_add(&uniform)?, align_corrected, uniform_corrected))
}

/// `(n,)` similarities of the positive pairs alone, as in [`dot_similarity`]/[`euclidean_similarity`].
fn positive_similarity(distance: Distance, ref_: &Tensor, pos: &Tensor) -> Result<Tensor> {
    let dot = Tensor::f_einsum("ni,ni->n", &[ref_, pos], None::<&[i64]>)?;
    Ok(match distance {
        Distance::Cosine => dot,
        Distance::Euclidean => {
            let square_sum = |t: &Tensor| -> Result<Tensor> { Ok(Tensor::f_einsum("ni->n", &[t.f_pow_tensor_scalar(2)?], None::<&[i64]>)?) };
            square_sum(ref_)?.f_add(&square_sum(pos)?)?.f_sub(&dot.f_mul_scalar(2)?)?.f_neg()?
        }
    })
}

/// libtorch's `at::internal::GRAIN_SIZE`: an element-wise or reduction op over fewer elements runs on
/// the calling thread.
const LIBTORCH_GRAIN_SIZE: i64 = 32768;

/// `per_row` (a per-row function of row-aligned 2-D tensors, one value per row) over chunks of rows
/// small enough that libtorch runs every op on the calling thread, as float32 values. A parallel
/// region would leave libtorch's OpenMP workers spinning for milliseconds afterwards, on the cores the
/// fused kernel's threads need next. Each row is reduced on its own, so the chunking changes no bit.
fn per_row_on_this_thread(tensors: &[&Tensor], per_row: impl Fn(&[Tensor]) -> Result<Tensor>) -> Result<Vec<f32>> {
    let [rows, d] = tensors[0].size()[..] else { return Err(invalid!("expected a 2-D tensor")) };
    let chunk = ((LIBTORCH_GRAIN_SIZE - 1) / d.max(1)).max(1);
    let mut values = Vec::with_capacity(rows as usize);
    let mut start = 0;
    while start < rows {
        let len = chunk.min(rows - start);
        let parts = tensors.iter().map(|t| t.f_narrow(0, start, len)).collect::<std::result::Result<Vec<_>, _>>()?;
        values.extend(Vec::<f32>::try_from(&per_row(&parts)?)?);
        start += len;
    }
    Ok(values)
}

/// Which code computes the InfoNCE family (option `implementation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Implementation {
    /// The fused kernel of [`crate::fused`] (the default). Inputs it does not cover (not float32, not on
    /// the CPU, or containing non-finite values) and non-finite results go to the libtorch path.
    Fused,
    /// Similarity matrix and autograd in libtorch, as the reference.
    Libtorch,
}

/// Which similarity an InfoNCE criterion uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distance {
    /// Dot product (cosine for normalised embeddings).
    Cosine,
    /// Negative squared Euclidean distance.
    Euclidean,
}

/// How NCE reduces its negative terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduce {
    /// Mean over negatives.
    Mean,
    /// Sum over negatives.
    Sum,
}

/// Which loss a criterion computes, with its parameters.
#[derive(Debug)]
enum Family {
    FixedInfoNce { distance: Distance, temperature: f64 },
    LearnableInfoNce { distance: Distance, log_inverse_temperature: Tensor, max_inverse_temperature: f64, min_temperature: Option<f64> },
    Nce { temperature: f64, negative_weight: f64, reduce: Reduce },
}

/// The three outputs of a criterion, as the reference returns them: scalars for the InfoNCE family,
/// per-sample `(n,)` vectors for NCE.
#[derive(Debug)]
pub struct CriterionOutput {
    /// InfoNCE: the loss; NCE: `align + negative_weight * uniform` (log-likelihoods).
    pub loss: Tensor,
    /// InfoNCE: the corrected alignment term; NCE: `logsigmoid(pos_sim)`.
    pub align: Tensor,
    /// InfoNCE: the corrected uniformity term; NCE: the reduced `logsigmoid(-neg_sim)`.
    pub uniform: Tensor,
}

/// Gradients of the training objective (see [`Criterion::objective`]).
#[derive(Debug)]
pub struct Gradients {
    /// The objective's value.
    pub loss: f64,
    /// d objective / d ref, `(n, d)`.
    pub grad_ref: Tensor,
    /// d objective / d pos, `(n, d)`.
    pub grad_pos: Tensor,
    /// d objective / d neg, `(m, d)`.
    pub grad_neg: Tensor,
    /// d objective / d log_inverse_temperature, for learnable criterions.
    pub grad_log_inverse_temperature: Option<f64>,
}

/// The fused kernel's results as tensors.
struct FusedGradients {
    /// `(loss, align, uniform)`, 0-d float32.
    losses: (Tensor, Tensor, Tensor),
    grad_ref: Tensor,
    grad_pos: Tensor,
    grad_neg: Tensor,
    grad_log_inverse_temperature: Option<f64>,
}

/// A contrastive loss built by name, with the reference's options and defaults.
#[derive(Debug)]
pub struct Criterion {
    name: String,
    options: Options,
    kind: Family,
    implementation: Implementation,
}

/// The float32 host copies the fused kernel reads.
struct FusedData {
    /// Contiguous float32 CPU tensors (the caller's storage where it already was contiguous: the
    /// kernel reads it in place).
    ref_: Tensor,
    pos: Tensor,
    neg: Tensor,
    n: usize,
    m: usize,
    d: usize,
    similarity: crate::fused::Similarity,
    scaling: crate::fused::Scaling,
    /// `∂s/∂log_inverse_temperature` for learnable criterions: `exp(l)`, or 0 where clamped.
    temperature_chain: Option<f32>,
    /// `|ref_i|²`, `|neg_j|²` (Euclidean) and `P_i`, computed by libtorch exactly as the reference does:
    /// O((n+m)·d), and it keeps the fused similarities bitwise equal to the reference's.
    reference_sq: Vec<f32>,
    negative_sq: Vec<f32>,
    positive_similarity: Vec<f32>,
}

impl FusedData {
    fn inputs(&self) -> crate::fused::Inputs<'_> {
        crate::fused::Inputs {
            // SAFETY: `fused_data` made these contiguous float32 CPU tensors, held by `self`; nothing here
            // writes them while the kernel reads (a concurrent write by the caller would race with any
            // libtorch operation reading them just as well).
            reference: unsafe { host_values(&self.ref_) },
            positive: unsafe { host_values(&self.pos) },
            negative: unsafe { host_values(&self.neg) },
            n: self.n,
            m: self.m,
            d: self.d,
            similarity: self.similarity,
            scaling: self.scaling,
            precomputed: Some(crate::fused::Precomputed {
                reference_sq: &self.reference_sq,
                negative_sq: &self.negative_sq,
                positive_similarity: &self.positive_similarity,
            }),
        }
    }
}

/// A float32 CPU tensor of `shape`, zeros written on this thread: `Tensor::zeros` (and
/// `Tensor::from_slice`, which starts from it) fills large tensors with libtorch's threads, which then
/// spin for milliseconds on the cores the next fused call needs.
fn zeros(shape: &[i64]) -> Result<Tensor> {
    let tensor = Tensor::f_empty(shape, (Kind::Float, tch::Device::Cpu))?;
    if tensor.numel() > 0 {
        // SAFETY: a new contiguous float32 CPU tensor of `numel` elements, referenced nowhere else.
        unsafe { std::ptr::write_bytes(tensor.data_ptr().cast::<f32>(), 0, tensor.numel()) };
    }
    Ok(tensor)
}

/// A float32 CPU tensor of `shape` holding `values`, copied on this thread (see [`zeros`]).
fn host_tensor(values: &[f32], shape: &[i64]) -> Result<Tensor> {
    let mut tensor = zeros(shape)?;
    if tensor.numel() != values.len() {
        return Err(shape_mismatch!("{} values for a tensor of shape {shape:?}", values.len()));
    }
    // SAFETY: a new contiguous float32 CPU tensor, zeroed, that nothing else references.
    unsafe { host_values_mut(&mut tensor) }.copy_from_slice(values);
    Ok(tensor)
}

/// The values of a contiguous float32 CPU tensor, read in place.
///
/// # Safety
/// `tensor` must be a contiguous float32 CPU tensor whose storage nobody writes while the slice lives.
unsafe fn host_values(tensor: &Tensor) -> &[f32] {
    let len = tensor.numel();
    if len == 0 {
        return &[];
    }
    // SAFETY: by the caller's contract, `len` initialised, aligned floats that stay unchanged.
    unsafe { std::slice::from_raw_parts(tensor.data_ptr().cast::<f32>(), len) }
}

/// The values of a contiguous float32 CPU tensor, to write in place.
///
/// # Safety
/// `tensor` must be a contiguous float32 CPU tensor with initialised values whose storage nobody else
/// reads or writes while the slice lives.
unsafe fn host_values_mut(tensor: &mut Tensor) -> &mut [f32] {
    let len = tensor.numel();
    if len == 0 {
        return &mut [];
    }
    // SAFETY: by the caller's contract, `len` initialised, aligned floats that only this slice uses.
    unsafe { std::slice::from_raw_parts_mut(tensor.data_ptr().cast::<f32>(), len) }
}

fn finite(losses: &crate::fused::Losses) -> bool {
    losses.loss.is_finite() && losses.align.is_finite() && losses.uniform.is_finite()
}

fn parse_implementation(options: &Options) -> Result<Implementation> {
    match options.str_or("implementation", "fused") {
        "fused" => Ok(Implementation::Fused),
        "libtorch" => Ok(Implementation::Libtorch),
        other => Err(invalid!("option 'implementation' must be 'fused' or 'libtorch', got '{other}'")),
    }
}

fn positive(options: &Options, key: &str, default: f64) -> Result<f64> {
    let v = options.f64_or(key, default)?;
    if v <= 0.0 {
        return Err(invalid!("option '{key}' must be positive, got {v}"));
    }
    Ok(v)
}

impl Criterion {
    /// Builds a criterion: `fixed-cosine-infonce` (alias `infonce`), `fixed-euclidean-infonce` (alias
    /// `infomse`), `learnable-cosine-infonce`, `learnable-euclidean-infonce` (options `temperature`,
    /// default 1, and `min_temperature`, default none), `nce` (`temperature`, `negative_weight`
    /// default 1, `reduce=mean|sum`). The InfoNCE criterions also take `implementation=fused|libtorch`
    /// (default `fused`; see [`Implementation`]); NCE is libtorch only.
    ///
    /// ```
    /// use cebra::criterions::Criterion;
    /// let c = Criterion::new("learnable-cosine-infonce", &cebra::Options::parse("temperature=0.1;min_temperature=0.2").unwrap()).unwrap();
    /// assert!((c.temperature() - 0.2).abs() < 1e-6);
    /// assert!(Criterion::new("nce", &cebra::Options::parse("min_temperature=1").unwrap()).is_err());
    /// ```
    pub fn new(name: &str, options: &Options) -> Result<Self> {
        let owner = format!("criterion '{name}'");
        let distance = |n: &str| if n.contains("euclidean") || n == "infomse" { Distance::Euclidean } else { Distance::Cosine };
        let kind = match name {
            "fixed-cosine-infonce" | "fixed-euclidean-infonce" | "infonce" | "infomse" => {
                options.check_keys(&["temperature", "implementation"], &owner)?;
                Family::FixedInfoNce { distance: distance(name), temperature: positive(options, "temperature", 1.0)? }
            }
            "learnable-cosine-infonce" | "learnable-euclidean-infonce" => {
                options.check_keys(&["temperature", "min_temperature", "implementation"], &owner)?;
                let temperature = positive(options, "temperature", 1.0)?;
                let min_temperature = options.f64_opt("min_temperature")?;
                if let Some(m) = min_temperature
                    && m <= 0.0
                {
                    return Err(invalid!("option 'min_temperature' must be positive, got {m}"));
                }
                // log(1/τ) in double precision, stored as a 0-d float32 parameter, as the reference.
                let value = (1.0 / temperature).ln();
                let log_inverse_temperature =
                    Tensor::f_from_slice(&[value as f32])?.f_reshape([0i64; 0].as_slice())?.set_requires_grad(true);
                Family::LearnableInfoNce {
                    distance: distance(name),
                    log_inverse_temperature,
                    max_inverse_temperature: min_temperature.map_or(f64::INFINITY, |m| 1.0 / m),
                    min_temperature,
                }
            }
            "nce" => {
                options.check_keys(&["temperature", "negative_weight", "reduce", "implementation"], &owner)?;
                if options.str_or("implementation", "libtorch") != "libtorch" {
                    return Err(invalid!("criterion 'nce' has only the 'libtorch' implementation"));
                }
                let reduce = match options.str_or("reduce", "mean") {
                    "mean" => Reduce::Mean,
                    "sum" => Reduce::Sum,
                    other => return Err(invalid!("option 'reduce' must be 'mean' or 'sum', got '{other}'")),
                };
                Family::Nce {
                    temperature: positive(options, "temperature", 1.0)?,
                    negative_weight: options.f64_or("negative_weight", 1.0)?,
                    reduce,
                }
            }
            other => {
                return Err(Error::UnknownName(format!(
                    "criterion '{other}' is not known (options: {})",
                    CRITERION_NAMES.join(", ")
                )))
            }
        };
        let implementation = parse_implementation(options)?;
        Ok(Criterion { name: name.to_string(), options: options.clone(), kind, implementation })
    }

    /// The name it was built with.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The options it was built with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The implementation computing it: [`Implementation::Fused`] unless `implementation=libtorch` or NCE.
    pub fn implementation(&self) -> Implementation {
        if self.is_per_sample() { Implementation::Libtorch } else { self.implementation }
    }

    /// Whether the criterion has a learnable temperature.
    pub fn is_learnable(&self) -> bool {
        matches!(self.kind, Family::LearnableInfoNce { .. })
    }

    /// Whether the outputs are per-sample vectors (NCE) rather than scalars.
    pub fn is_per_sample(&self) -> bool {
        matches!(self.kind, Family::Nce { .. })
    }

    fn inverse_temperature(log_inverse_temperature: &Tensor, max: f64) -> Result<Tensor> {
        let s = log_inverse_temperature.f_exp()?;
        Ok(if max.is_finite() { s.f_clamp_max(max)? } else { s })
    }

    /// The current temperature: fixed, or `1 / clamp(exp(log_inverse_temperature))`.
    pub fn temperature(&self) -> f64 {
        match &self.kind {
            Family::FixedInfoNce { temperature, .. } | Family::Nce { temperature, .. } => *temperature,
            Family::LearnableInfoNce { log_inverse_temperature, max_inverse_temperature, .. } => tch::no_grad(|| {
                Self::inverse_temperature(log_inverse_temperature, *max_inverse_temperature)
                    .and_then(|s| Ok(f64::try_from(&s)?))
                    .map(|s| 1.0 / s)
                    .unwrap_or(f64::NAN)
            }),
        }
    }

    /// The minimum temperature of a learnable criterion.
    pub fn min_temperature(&self) -> Option<f64> {
        match &self.kind {
            Family::LearnableInfoNce { min_temperature, .. } => *min_temperature,
            _ => None,
        }
    }

    /// The fused kernel's inputs, or `None` where the libtorch path applies (implementation, kind,
    /// dtype, device, non-finite values).
    fn fused_data(&self, ref_: &Tensor, pos: &Tensor, neg: &Tensor) -> Result<Option<FusedData>> {
        use crate::fused::Similarity;
        if self.implementation() != Implementation::Fused {
            return Ok(None);
        }
        check_pair(ref_, pos, neg)?;
        if [ref_, pos, neg].iter().any(|t| t.kind() != Kind::Float || t.device() != tch::Device::Cpu) {
            return Ok(None);
        }
        use crate::fused::Scaling;
        let (similarity, scaling, temperature_chain) = match &self.kind {
            // The reference divides by the Python float τ, which libtorch rounds to float32.
            Family::FixedInfoNce { distance, temperature } => (*distance, Scaling::DivideByTemperature(*temperature as f32), None),
            Family::LearnableInfoNce { distance, log_inverse_temperature, max_inverse_temperature, .. } => {
                let exp = tch::no_grad(|| log_inverse_temperature.f_exp().and_then(|t| f32::try_from(&t)))?;
                // clamp_max passes the gradient where exp(l) <= max, as in libtorch.
                if f64::from(exp) <= *max_inverse_temperature {
                    (*distance, Scaling::MultiplyByInverseTemperature(exp), Some(exp))
                } else {
                    (*distance, Scaling::MultiplyByInverseTemperature(*max_inverse_temperature as f32), Some(0.0))
                }
            }
            Family::Nce { .. } => return Ok(None),
        };
        let host = |t: &Tensor| -> Result<Tensor> { Ok(t.f_detach()?.f_contiguous()?) };
        let (r, p, q) = (host(ref_)?, host(pos)?, host(neg)?);
        // SAFETY: contiguous float32 CPU tensors (checked above, made contiguous just now), only read.
        if ![&r, &p, &q].iter().all(|t| unsafe { host_values(t) }.iter().all(|x| x.is_finite())) {
            return Ok(None);
        }
        let (n, m, d) = (ref_.size()[0] as usize, neg.size()[0] as usize, ref_.size()[1] as usize);
        let (positive_similarity, reference_sq, negative_sq) = tch::no_grad(|| -> Result<_> {
            let square_sum = |t: &[Tensor]| Ok(Tensor::f_einsum("ni->n", &[t[0].f_pow_tensor_scalar(2)?], None::<&[i64]>)?);
            let positive = per_row_on_this_thread(&[ref_, pos], |t| positive_similarity(similarity, &t[0], &t[1]))?;
            Ok(match similarity {
                Distance::Cosine => (positive, Vec::new(), Vec::new()),
                Distance::Euclidean => (positive, per_row_on_this_thread(&[ref_], square_sum)?, per_row_on_this_thread(&[neg], square_sum)?),
            })
        })?;
        let similarity = match similarity {
            Distance::Cosine => Similarity::Dot,
            Distance::Euclidean => Similarity::Euclidean,
        };
        Ok(Some(FusedData {
            ref_: r,
            pos: p,
            neg: q,
            n,
            m,
            d,
            similarity,
            scaling,
            temperature_chain,
            reference_sq,
            negative_sq,
            positive_similarity,
        }))
    }

    fn log_inverse_temperature(&self) -> Option<&Tensor> {
        match &self.kind {
            Family::LearnableInfoNce { log_inverse_temperature, .. } => Some(log_inverse_temperature),
            _ => None,
        }
    }

    /// The fused forward. Where autograd would record a graph (grad mode on and an input or the
    /// temperature requiring grad), the outputs carry the fused gradients: each is
    /// `value + (surrogate - surrogate.detach())` with a surrogate whose first derivative is the
    /// fused one (`Σ x·∂loss/∂x` for the loss; the O(n·d) positive term in libtorch for align; their
    /// difference for uniform). Second derivatives through it are not the reference's.
    fn fused_forward(&self, ref_: &Tensor, pos: &Tensor, neg: &Tensor) -> Result<Option<CriterionOutput>> {
        let Some(data) = self.fused_data(ref_, pos, neg)? else { return Ok(None) };
        let mut records_graph = false;
        for t in [ref_, pos, neg].into_iter().chain(self.log_inverse_temperature()) {
            // An alias requires grad exactly when grad mode is on and `t` requires grad.
            records_graph |= t.f_alias()?.requires_grad();
        }
        if !records_graph {
            let (losses, rows) = crate::fused::forward_rows(&data.inputs())?;
            if !finite(&losses) {
                return Ok(None);
            }
            let (loss, align, uniform) = self.reduce_rows(&data, &rows)?;
            return Ok(Some(CriterionOutput { loss, align, uniform }));
        }
        let Some(grads) = self.fused_backward(&data)? else { return Ok(None) };
        let mut surrogate = ref_
            .f_mul(&grads.grad_ref)?
            .f_sum(None)?
            .f_add(&pos.f_mul(&grads.grad_pos)?.f_sum(None)?)?
            .f_add(&neg.f_mul(&grads.grad_neg)?.f_sum(None)?)?;
        let positive = match &self.kind {
            Family::FixedInfoNce { distance, temperature } => positive_similarity(*distance, ref_, pos)?.f_div_scalar(*temperature)?,
            Family::LearnableInfoNce { distance, log_inverse_temperature, max_inverse_temperature, .. } => {
                let g = grads.grad_log_inverse_temperature.unwrap_or(0.0);
                surrogate = surrogate.f_add(&log_inverse_temperature.f_mul_scalar(g)?)?;
                let s = Self::inverse_temperature(log_inverse_temperature, *max_inverse_temperature)?;
                positive_similarity(*distance, ref_, pos)?.f_mul(&s)?
            }
            Family::Nce { .. } => unreachable!("fused_data returns None for NCE"),
        };
        let align_graph = positive.f_mean(None)?.f_neg()?;
        let delta = |t: &Tensor| -> Result<Tensor> { Ok(t.f_sub(&t.f_detach()?)?) };
        let (loss_delta, align_delta) = (delta(&surrogate)?, delta(&align_graph)?);
        let (loss, align, uniform) = grads.losses;
        Ok(Some(CriterionOutput {
            loss: loss_delta.f_add(&loss)?,
            align: align_delta.f_add(&align)?,
            uniform: loss_delta.f_sub(&align_delta)?.f_add(&uniform)?,
        }))
    }

    /// `(loss, align, uniform)` from the kernel's per-row `c_i` and log-sum-exp with the reference's
    /// O(n) libtorch reductions: the corrected align term cancels `mean(c)`, so only the same float32
    /// reductions reproduce its last digits.
    fn reduce_rows(&self, data: &FusedData, rows: &crate::fused::RowTerms) -> Result<(Tensor, Tensor, Tensor)> {
        tch::no_grad(|| {
            let c = host_tensor(&rows.max, &[rows.max.len() as i64])?;
            let log_sum_exp = host_tensor(&rows.log_sum_exp, &[rows.log_sum_exp.len() as i64])?;
            let positive = host_tensor(&data.positive_similarity, &[data.positive_similarity.len() as i64])?;
            let positive = match &self.kind {
                Family::FixedInfoNce { temperature, .. } => positive.f_div_scalar(*temperature)?,
                Family::LearnableInfoNce { log_inverse_temperature, max_inverse_temperature, .. } => {
                    positive.f_mul(&Self::inverse_temperature(log_inverse_temperature, *max_inverse_temperature)?)?
                }
                Family::Nce { .. } => unreachable!("fused_data returns None for NCE"),
            };
            let align = positive.f_sub(&c)?.f_neg()?.f_mean(None)?;
            let uniform = log_sum_exp.f_mean(None)?;
            let c_mean = c.f_mean(None)?;
            Ok((align.f_add(&uniform)?, align.f_sub(&c_mean)?, uniform.f_add(&c_mean)?))
        })
    }

    /// The fused forward+backward as [`Gradients`] (plus the three losses), `None` if not finite.
    fn fused_backward(&self, data: &FusedData) -> Result<Option<FusedGradients>> {
        let (n, m, d) = (data.n as i64, data.m as i64, data.d as i64);
        let (mut grad_ref, mut grad_pos, mut grad_neg) = (zeros(&[n, d])?, zeros(&[n, d])?, zeros(&[m, d])?);
        // SAFETY: three new float32 CPU tensors owned here, each borrowed once, while nothing else
        // holds them.
        let out = unsafe {
            crate::fused::GradientsOut { reference: host_values_mut(&mut grad_ref), positive: host_values_mut(&mut grad_pos), negative: host_values_mut(&mut grad_neg) }
        };
        let g = crate::fused::forward_backward_into(&data.inputs(), out)?;
        if !finite(&g.losses) {
            return Ok(None);
        }
        let losses = self.reduce_rows(data, &g.rows)?;
        let grad_log_inverse_temperature = data.temperature_chain.zip(g.inverse_temperature).map(|(chain, g)| g * f64::from(chain));
        Ok(Some(FusedGradients { losses, grad_ref, grad_pos, grad_neg, grad_log_inverse_temperature }))
    }

    /// The reference's `criterion(ref, pos, neg)`, recording the autograd graph.
    ///
    /// On the fused implementation the graph is a surrogate carrying the fused gradients (see the
    /// module notes); their values match the libtorch path's.
    pub fn forward(&self, ref_: &Tensor, pos: &Tensor, neg: &Tensor) -> Result<CriterionOutput> {
        if let Some(out) = self.fused_forward(ref_, pos, neg)? {
            return Ok(out);
        }
        let similarity = |d: Distance| match d {
            Distance::Cosine => dot_similarity(ref_, pos, neg),
            Distance::Euclidean => euclidean_similarity(ref_, pos, neg),
        };
        let (loss, align, uniform) = match &self.kind {
            Family::FixedInfoNce { distance, temperature } => {
                let (p, n) = similarity(*distance)?;
                infonce(&p.f_div_scalar(*temperature)?, &n.f_div_scalar(*temperature)?)?
            }
            Family::LearnableInfoNce { distance, log_inverse_temperature, max_inverse_temperature, .. } => {
                let s = Self::inverse_temperature(log_inverse_temperature, *max_inverse_temperature)?;
                let (p, n) = similarity(*distance)?;
                infonce(&p.f_mul(&s)?, &n.f_mul(&s)?)?
            }
            Family::Nce { temperature, negative_weight, reduce } => {
                let (p, n) = dot_similarity(ref_, pos, neg)?;
                let (p, n) = (p.f_div_scalar(*temperature)?, n.f_div_scalar(*temperature)?);
                let align = p.f_log_sigmoid()?;
                let terms = n.f_neg()?.f_log_sigmoid()?;
                let uniform = match reduce {
                    Reduce::Mean => terms.f_mean_dim([1i64].as_slice(), false, None)?,
                    Reduce::Sum => terms.f_sum_dim_intlist([1i64].as_slice(), false, None)?,
                };
                (align.f_add(&uniform.f_mul_scalar(*negative_weight)?)?, align, uniform)
            }
        };
        Ok(CriterionOutput { loss, align, uniform })
    }

    /// The scalar that training minimises: the loss for the InfoNCE family; for NCE, minus the mean of
    /// the per-sample output (the reference's NCE returns log-likelihood terms).
    pub fn objective(&self, output: &CriterionOutput) -> Result<Tensor> {
        Ok(if self.is_per_sample() { output.loss.f_mean(None)?.f_neg()? } else { output.loss.shallow_clone() })
    }

    /// Forward, then the gradients of [`Criterion::objective`] with respect to the inputs and the
    /// learnable temperature. Pure: no `.grad` is accumulated anywhere.
    pub fn backward(&self, ref_: &Tensor, pos: &Tensor, neg: &Tensor) -> Result<Gradients> {
        if let Some(data) = self.fused_data(ref_, pos, neg)?
            && let Some(g) = self.fused_backward(&data)?
        {
            return Ok(Gradients {
                loss: f64::try_from(&g.losses.0)?,
                grad_ref: g.grad_ref,
                grad_pos: g.grad_pos,
                grad_neg: g.grad_neg,
                grad_log_inverse_temperature: g.grad_log_inverse_temperature,
            });
        }
        let leaf = |t: &Tensor| -> Result<Tensor> { Ok(t.f_detach()?.set_requires_grad(true)) };
        let (r, p, n) = (leaf(ref_)?, leaf(pos)?, leaf(neg)?);
        let output = self.forward(&r, &p, &n)?;
        let objective = self.objective(&output)?;
        let mut inputs = vec![r.shallow_clone(), p.shallow_clone(), n.shallow_clone()];
        if let Family::LearnableInfoNce { log_inverse_temperature, .. } = &self.kind {
            inputs.push(log_inverse_temperature.shallow_clone());
        }
        let grads = Tensor::f_run_backward(&[&objective], &inputs, false, false)?;
        let grad_log_inverse_temperature = match grads.get(3) {
            Some(g) => Some(f64::try_from(g)?),
            None => None,
        };
        Ok(Gradients {
            loss: f64::try_from(&objective)?,
            grad_ref: grads[0].shallow_clone(),
            grad_pos: grads[1].shallow_clone(),
            grad_neg: grads[2].shallow_clone(),
            grad_log_inverse_temperature,
        })
    }

    /// One training step's autograd: computes [`Criterion::objective`] on `ref`, `pos`, `neg` (which
    /// may be outputs of a model) and accumulates its gradients into `.grad` of every leaf they
    /// depend on and of the learnable temperature, like `objective.backward()`. Returns the objective.
    /// On the fused implementation the gradients come from the fused kernel.
    pub fn objective_backward(&self, ref_: &Tensor, pos: &Tensor, neg: &Tensor) -> Result<f64> {
        let objective = tch::with_grad(|| -> Result<Tensor> { self.objective(&self.forward(ref_, pos, neg)?) })?;
        if objective.requires_grad() {
            objective.f_backward()?;
        }
        Ok(f64::try_from(&objective)?)
    }

    /// Trainable parameters (the learnable log inverse temperature, if any).
    pub fn parameters(&self) -> Vec<Tensor> {
        match &self.kind {
            Family::LearnableInfoNce { log_inverse_temperature, .. } => vec![log_inverse_temperature.shallow_clone()],
            _ => Vec::new(),
        }
    }

    /// The reference state dict: `log_inverse_temperature` (0-d) for learnable criterions, else empty.
    pub fn state_dict(&self) -> Vec<(String, Tensor)> {
        self.parameters().into_iter().map(|t| ("log_inverse_temperature".to_string(), t)).collect()
    }

    /// Loads a state dict (strict, as for models).
    pub fn load_state_dict(&mut self, tensors: &[(String, Tensor)]) -> Result<()> {
        let expected: Vec<(String, Vec<i64>)> = self.state_dict().into_iter().map(|(k, t)| (k, t.size())).collect();
        crate::model::check_state_dict(&expected, tensors)?;
        if let Family::LearnableInfoNce { log_inverse_temperature, .. } = &mut self.kind {
            let value = tensors[0].1.f_to_kind(Kind::Float)?;
            tch::no_grad(|| log_inverse_temperature.f_copy_(&value))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `host_tensor` holds the values in the shape asked for, refuses a count that does not fit the
    /// shape, and makes empty tensors.
    #[test]
    fn host_tensor_copies_into_the_shape() {
        let values: Vec<f32> = (0..6).map(|i| i as f32 * 0.5 - 1.0).collect();
        let t = host_tensor(&values, &[2, 3]).unwrap();
        assert_eq!(t.size(), [2, 3]);
        assert!(t.equal(&Tensor::from_slice(&values).view([2, 3])));
        let err = host_tensor(&values, &[4, 2]).unwrap_err().to_string();
        assert!(err.contains("6 values for a tensor of shape [4, 2]"), "{err}");
        assert_eq!(host_tensor(&[], &[0, 3]).unwrap().size(), [0, 3]);
    }

    /// Row chunks give the same values as one call over all rows, also where the rows do not divide
    /// into chunks (32767 / 5 rows per chunk).
    #[test]
    fn per_row_chunks_agree_with_one_call() {
        let (a, b) = (Tensor::randn([20_000, 5], (Kind::Float, tch::Device::Cpu)), Tensor::randn([20_000, 5], (Kind::Float, tch::Device::Cpu)));
        let dot = |t: &[Tensor]| Ok(Tensor::f_einsum("ni,ni->n", &[&t[0], &t[1]], None::<&[i64]>)?);
        let chunked = per_row_on_this_thread(&[&a, &b], dot).unwrap();
        let whole = Vec::<f32>::try_from(&dot(&[a.shallow_clone(), b.shallow_clone()]).unwrap()).unwrap();
        assert_eq!(chunked.len(), 20_000);
        assert!(chunked.iter().zip(&whole).all(|(x, y)| x.to_bits() == y.to_bits()));
    }
}
