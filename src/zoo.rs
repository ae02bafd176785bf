//! The reference model catalogue: short builder functions that read like the reference's layer lists,
//! and the table that registers all 147 names in the reference's order.
use crate::error::{invalid, Result};
use crate::init;
use crate::layers::{Layer, Linear};
use crate::model::{Architecture, Model, ModelArgs, Network};
use crate::offset::Offset;
use crate::registry::{ModelFactory, Registry};
use std::sync::Arc;
use tch::Tensor;

/// Builds a model's `net`, numbering entries as `nn.Sequential` does so that parameter paths are the
/// reference state-dict keys (`net.<i>.weight`, `net.<i>.module.<j>.weight`, `net.<i>.layer.weight`).
pub(crate) struct NetBuilder {
    net: Vec<Layer>,
    /// Unique parameters in creation order (what an optimizer updates).
    params: Vec<Tensor>,
    /// `(state-dict key, tensor)` in the reference order; a shared tensor appears under each key.
    state: Vec<(String, Tensor)>,
}

/// The entries of a `_Skip` block, numbered `module.<j>`.
pub(crate) enum Inner {
    Conv1d(i64, i64, i64),
    Linear(i64, i64),
    Gelu,
    Dropout1d(f64),
}

impl NetBuilder {
    fn new() -> Self {
        NetBuilder { net: Vec::new(), params: Vec::new(), state: Vec::new() }
    }

    fn index(&self) -> usize {
        self.net.len()
    }

    /// Records freshly created parameters (creation order).
    fn created(&mut self, weight: &Tensor, bias: &Tensor) {
        self.params.push(weight.shallow_clone());
        self.params.push(bias.shallow_clone());
    }

    fn new_conv1d(&mut self, inp: i64, out: i64, kernel: i64, stride: i64) -> Result<crate::layers::Conv1d> {
        let conv = init::conv1d(inp, out, kernel, stride)?;
        self.created(&conv.weight, &conv.bias);
        Ok(conv)
    }

    fn new_linear(&mut self, inp: i64, out: i64) -> Result<Linear> {
        let linear = init::linear(inp, out)?;
        self.created(&linear.weight, &linear.bias);
        Ok(linear)
    }

    fn add_keys(&mut self, prefix: &str, weight: &Tensor, bias: &Tensor) {
        self.state.push((format!("{prefix}.weight"), weight.shallow_clone()));
        self.state.push((format!("{prefix}.bias"), bias.shallow_clone()));
    }

    fn conv1d_stride(&mut self, inp: i64, out: i64, kernel: i64, stride: i64) -> Result<&mut Self> {
        let conv = self.new_conv1d(inp, out, kernel, stride)?;
        self.add_keys(&format!("net.{}", self.index()), &conv.weight, &conv.bias);
        self.net.push(Layer::Conv1d(conv));
        Ok(self)
    }

    fn conv1d(&mut self, inp: i64, out: i64, kernel: i64) -> Result<&mut Self> {
        self.conv1d_stride(inp, out, kernel, 1)
    }

    fn linear(&mut self, inp: i64, out: i64) -> Result<&mut Self> {
        let linear = self.new_linear(inp, out)?;
        self.push_linear(linear);
        Ok(self)
    }

    /// Puts a Linear at the next index; a shallow clone of one module placed at several indices is
    /// weight sharing.
    fn push_linear(&mut self, linear: Linear) -> &mut Self {
        self.add_keys(&format!("net.{}", self.index()), &linear.weight, &linear.bias);
        self.net.push(Layer::Linear(linear));
        self
    }

    fn skip_linear(&mut self, inp: i64, out: i64) -> Result<&mut Self> {
        let linear = self.new_linear(inp, out)?;
        Ok(self.push_skip_linear(linear))
    }

    fn push_skip_linear(&mut self, linear: Linear) -> &mut Self {
        self.add_keys(&format!("net.{}.module", self.index()), &linear.weight, &linear.bias);
        self.net.push(Layer::SkipLinear(linear));
        self
    }

    fn mean_and_conv(&mut self, inp: i64, out: i64, kernel: i64, stride: i64) -> Result<&mut Self> {
        let conv = self.new_conv1d(inp, out, kernel, stride)?;
        self.add_keys(&format!("net.{}.layer", self.index()), &conv.weight, &conv.bias);
        self.net.push(Layer::MeanAndConv(conv));
        Ok(self)
    }

    /// `_Skip(*inner, crop=crop)`.
    fn skip(&mut self, inner: &[Inner], crop: (i64, i64)) -> Result<&mut Self> {
        let index = self.index();
        let mut layers = Vec::new();
        for (j, entry) in inner.iter().enumerate() {
            let prefix = format!("net.{index}.module.{j}");
            layers.push(match *entry {
                Inner::Conv1d(inp, out, k) => {
                    let conv = self.new_conv1d(inp, out, k, 1)?;
                    self.add_keys(&prefix, &conv.weight, &conv.bias);
                    Layer::Conv1d(conv)
                }
                Inner::Linear(inp, out) => {
                    let linear = self.new_linear(inp, out)?;
                    self.add_keys(&prefix, &linear.weight, &linear.bias);
                    Layer::Linear(linear)
                }
                Inner::Gelu => Layer::Gelu,
                Inner::Dropout1d(p) => Layer::Dropout1d { p },
            });
        }
        self.net.push(Layer::Skip { inner: layers, crop });
        Ok(self)
    }

    /// The reference's `_make_layers(U, n)`: n × `_Skip(Conv1d(U, U, 3), GELU)` with crop (1, 1).
    fn conv_skips(&mut self, units: i64, count: usize) -> Result<&mut Self> {
        for _ in 0..count {
            self.skip(&[Inner::Conv1d(units, units, 3), Inner::Gelu], (1, 1))?;
        }
        Ok(self)
    }

    fn push(&mut self, layer: Layer) -> &mut Self {
        self.net.push(layer);
        self
    }
    fn gelu(&mut self) -> &mut Self {
        self.push(Layer::Gelu)
    }
    fn flatten(&mut self) -> &mut Self {
        self.push(Layer::Flatten)
    }
    fn tanh(&mut self) -> &mut Self {
        self.push(Layer::Tanh)
    }
    fn dropout1d(&mut self, p: f64) -> &mut Self {
        self.push(Layer::Dropout1d { p })
    }

    /// `_OffsetModel`'s tail: `[_Norm] if normalize`, then `Squeeze`.
    fn finish(mut self, spec: Finish) -> Network {
        if spec.normalize {
            self.net.push(Layer::Norm);
        }
        self.net.push(Layer::Squeeze);
        Network {
            architecture: spec.architecture,
            offset: spec.offset,
            num_input: spec.num_input,
            num_output: spec.num_output,
            resample_factor: spec.resample_factor,
            convolutional: spec.convolutional,
            net: self.net,
            after_net: spec.after_net,
            params: self.params,
            state: self.state,
            classifier: None,
            is_classifier: spec.classifier,
            training: false,
        }
    }
}

struct Finish {
    architecture: Architecture,
    offset: Offset,
    num_input: i64,
    num_output: i64,
    resample_factor: i64,
    convolutional: bool,
    normalize: bool,
    after_net: Vec<Layer>,
    classifier: bool,
}

/// How a catalogue entry validates `num_units` (the reference's two messages).
#[derive(Clone, Copy)]
enum UnitsCheck {
    AtLeast1,
    AtLeast2,
    None,
}

/// Largest accepted `num_neurons`, `num_units` or `num_output`.
const MAX_DIMENSION: i64 = 1 << 31;

/// Largest accepted `n_intermediate_layers` (the reference registers 1 to 10).
const MAX_INTERMEDIATE_LAYERS: i64 = 1000;

/// Common constructor prologue: option keys, the reference's dimension checks, and the contract's
/// `num_* >= 1` rule.
fn check_args(name: &str, args: &ModelArgs, allowed: &[&str], units: UnitsCheck) -> Result<()> {
    args.options.check_keys(allowed, &format!("model '{name}'"))?;
    let u = args.num_units;
    match units {
        UnitsCheck::AtLeast1 if u < 1 => {
            return Err(invalid!("Hidden dimension needs to be at least 1, but got {u}."))
        }
        UnitsCheck::AtLeast2 if u < 2 => {
            return Err(invalid!("Number of hidden units needs to be at least 2, but got {u}."))
        }
        _ => {}
    }
    if args.num_neurons < 1 {
        return Err(invalid!("Input dimension needs to be at least 1, but got {}.", args.num_neurons));
    }
    if args.num_output < 1 {
        return Err(invalid!("Output dimension needs to be at least 1, but got {}.", args.num_output));
    }
    // Layer sizes are products of these (30·O, N·k, …): keep them far from 64-bit overflow.
    for (value, what) in [(args.num_neurons, "num_neurons"), (u, "num_units"), (args.num_output, "num_output")] {
        if value > MAX_DIMENSION {
            return Err(invalid!("{what} = {value} is too large (at most {MAX_DIMENSION})"));
        }
    }
    if u < 1 {
        return Err(invalid!("num_units must be at least 1, got {u}"));
    }
    Ok(())
}

fn finish_spec(name: &str, args: &ModelArgs, offset: (i64, i64), normalize: bool) -> Finish {
    Finish {
        architecture: Architecture { name: name.to_string(), args: args.clone() },
        offset: Offset { left: offset.0, right: offset.1 },
        num_input: args.num_neurons,
        num_output: args.num_output,
        resample_factor: 1,
        convolutional: false,
        normalize,
        after_net: Vec::new(),
        classifier: false,
    }
}

// ---------------------------------------------------------------------------------------------
// Architectures. Each reads like the reference's layer list.

/// `Conv1d(N,U,2), GELU, [Dropout1d], S × skip, Conv1d(U,O,k_last)`: offset5/10/15/20/36/40/50 and
/// `supervised10-model`'s net.
#[derive(Clone, Copy)]
struct DeepConv {
    offset: (i64, i64),
    skips: usize,
    last_kernel: i64,
    tanh: bool,
    dropout: Dropout,
    units_check: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Dropout {
    None,
    AfterFirstConv,
    AlsoInSkips,
}

fn deep_conv(name: &str, args: &ModelArgs, spec: DeepConv, normalize_default: bool) -> Result<Box<dyn Model>> {
    let mut allowed = vec!["normalize"];
    if spec.dropout != Dropout::None {
        allowed.push("dropout");
    }
    let units = if spec.units_check { UnitsCheck::AtLeast1 } else { UnitsCheck::None };
    check_args(name, args, &allowed, units)?;
    let normalize = args.options.bool_or("normalize", normalize_default)?;
    let p = args.options.f64_or("dropout", 0.1)?;
    if !(0.0..=1.0).contains(&p) {
        return Err(invalid!("option 'dropout' must be in [0, 1], got {p}"));
    }
    let (n, u, o) = (args.num_neurons, args.num_units, args.num_output);
    let mut b = NetBuilder::new();
    b.conv1d(n, u, 2)?;
    if spec.dropout != Dropout::None {
        b.dropout1d(p);
    }
    b.gelu();
    if spec.dropout == Dropout::AlsoInSkips {
        for _ in 0..spec.skips {
            b.skip(&[Inner::Dropout1d(p), Inner::Conv1d(u, u, 3), Inner::Gelu], (1, 1))?;
        }
    } else {
        b.conv_skips(u, spec.skips)?;
    }
    b.conv1d(u, o, spec.last_kernel)?;
    if spec.tanh {
        b.tanh();
    }
    let mut fin = finish_spec(name, args, spec.offset, normalize);
    fin.convolutional = true;
    Ok(Box::new(b.finish(fin)))
}

/// `supervised10-model`: the offset10 stack without norm, not marked convolutional, with a head.
fn supervised10(name: &str, args: &ModelArgs) -> Result<Box<dyn Model>> {
    check_args(name, args, &[], UnitsCheck::None)?;
    let (n, u, o) = (args.num_neurons, args.num_units, args.num_output);
    let mut b = NetBuilder::new();
    b.conv1d(n, u, 2)?.gelu().conv_skips(u, 3)?.conv1d(u, o, 3)?;
    let mut fin = finish_spec(name, args, (5, 5), false);
    fin.classifier = true;
    Ok(Box::new(b.finish(fin)))
}

/// `Flatten, Linear(N,U), GELU, Linear(U,U), GELU, Linear(U,U//2), GELU, Linear(U//2,O)`:
/// `offset1-model` and `supervised1-model`.
fn mlp_offset1(name: &str, args: &ModelArgs, classifier: bool) -> Result<Box<dyn Model>> {
    let (allowed, check): (&[&str], _) =
        if classifier { (&[], UnitsCheck::None) } else { (&["normalize"], UnitsCheck::AtLeast2) };
    check_args(name, args, allowed, check)?;
    let normalize = !classifier && args.options.bool_or("normalize", true)?;
    let (n, u, o) = (args.num_neurons, args.num_units, args.num_output);
    let mut b = NetBuilder::new();
    b.flatten().linear(n, u)?.gelu().linear(u, u)?.gelu().linear(u, u / 2)?.gelu().linear(u / 2, o)?;
    let mut fin = finish_spec(name, args, (0, 1), normalize);
    fin.classifier = classifier;
    Ok(Box::new(b.finish(fin)))
}

/// `offset1-model-v2` … `-v5`.
fn mlp_variant(name: &str, args: &ModelArgs, version: u8) -> Result<Box<dyn Model>> {
    check_args(name, args, &["normalize"], UnitsCheck::AtLeast2)?;
    let normalize = args.options.bool_or("normalize", true)?;
    let (n, u, o) = (args.num_neurons, args.num_units, args.num_output);
    let mut b = NetBuilder::new();
    b.flatten().linear(n, u)?.gelu();
    match version {
        2 => {
            b.linear(u, u)?.gelu().linear(u, u)?.gelu();
        }
        3 | 5 => {
            for _ in 0..(if version == 3 { 2 } else { 4 }) {
                b.skip(&[Inner::Linear(u, u)], (0, 0))?.gelu();
            }
        }
        4 => {
            for _ in 0..4 {
                b.skip(&[Inner::Linear(u, u), Inner::Gelu], (0, 0))?;
            }
        }
        _ => unreachable!("offset1-model-v{version} is not a reference model"),
    }
    b.linear(u, o)?;
    Ok(Box::new(b.finish(finish_spec(name, args, (0, 1), normalize))))
}

/// `offset1-model-mse` (and `-tanh`, and the clip family): hidden widths 30·O, 30·O, 10·O; `num_units`
/// is ignored.
fn mlp_mse(name: &str, args: &ModelArgs, tanh: bool, clip: Option<(f64, f64)>) -> Result<Box<dyn Model>> {
    let allowed: &[&str] =
        if clip.is_some() { &["normalize", "clip_min", "clip_max"] } else { &["normalize"] };
    check_args(name, args, allowed, UnitsCheck::None)?;
    let normalize = args.options.bool_or("normalize", false)?;
    let (n, o) = (args.num_neurons, args.num_output);
    let mut b = NetBuilder::new();
    b.flatten().linear(n, 30 * o)?.gelu().linear(30 * o, 30 * o)?.gelu();
    b.linear(30 * o, 10 * o)?.gelu().linear(10 * o, o)?;
    if tanh {
        b.tanh();
    }
    let mut fin = finish_spec(name, args, (0, 1), normalize);
    if let Some((min, max)) = clip {
        let min = -args.options.f64_or("clip_min", min)?;
        let max = args.options.f64_or("clip_max", max)?;
        if max <= min {
            return Err(invalid!("clip range is empty: max_val ({max}) must be greater than min_val ({min})"));
        }
        fin.after_net.push(Layer::Hardtanh { min, max });
    }
    Ok(Box::new(b.finish(fin)))
}

/// The `v2` and `resnet` families: `n` intermediate layers that are one shared module.
fn mlp_shared(name: &str, args: &ModelArgs, resnet: bool) -> Result<Box<dyn Model>> {
    check_args(name, args, &["normalize", "n_intermediate_layers", "tanh"], UnitsCheck::AtLeast2)?;
    let normalize = args.options.bool_or("normalize", false)?;
    let layers = args.options.i64_or("n_intermediate_layers", 1)?;
    if !(1..=MAX_INTERMEDIATE_LAYERS).contains(&layers) {
        return Err(invalid!(
            "option 'n_intermediate_layers' must be between 1 and {MAX_INTERMEDIATE_LAYERS}, got {layers}"
        ));
    }
    let tanh = match args.options.str_or("tanh", "") {
        "-tanh" | "true" | "True" | "1" => true,
        "" | "false" | "False" | "0" => false,
        other => return Err(invalid!("option 'tanh' must be '-tanh' or '', got '{other}'")),
    };
    let (n, u, o) = (args.num_neurons, args.num_units, args.num_output);
    let mut b = NetBuilder::new();
    // The reference builds the shared `intermediate_layers` list before the `layers` list, so the
    // shared Linear(U, U) draws its initial values first (parameters stay in creation order).
    let shared = b.new_linear(u, u)?;
    b.flatten();
    if resnet {
        b.skip_linear(n, u)?.gelu();
        for _ in 0..layers {
            b.push_skip_linear(shared.shallow_clone()).gelu();
        }
        b.skip_linear(u, u / 2)?.gelu().linear(u / 2, o)?;
    } else {
        b.linear(n, u)?.gelu();
        for _ in 0..layers {
            b.push_linear(shared.shallow_clone()).gelu();
        }
        b.linear(u, u / 2)?.gelu().linear(u / 2, o)?;
    }
    if tanh {
        b.tanh();
    }
    Ok(Box::new(b.finish(finish_spec(name, args, (0, 1), normalize))))
}

/// `offset40-model-4x-subsample` (3 skips, last kernel 3) and `offset20-model-4x-subsample` (1, 2).
fn resample_conv(name: &str, args: &ModelArgs, offset: (i64, i64), skips: usize, last_kernel: i64) -> Result<Box<dyn Model>> {
    check_args(name, args, &["normalize"], UnitsCheck::None)?;
    let normalize = args.options.bool_or("normalize", true)?;
    let (n, u, o) = (args.num_neurons, args.num_units, args.num_output);
    let mut b = NetBuilder::new();
    b.mean_and_conv(n, u, 4, 2)?.conv1d_stride(n + u, u, 3, 2)?.gelu();
    b.conv_skips(u, skips)?.conv1d(u, o, last_kernel)?;
    let mut fin = finish_spec(name, args, offset, normalize);
    fin.convolutional = true;
    fin.resample_factor = 4;
    Ok(Box::new(b.finish(fin)))
}

/// `offset4-model-2x-subsample`: one strided step, then an MLP on the flattened result.
fn resample_mlp(name: &str, args: &ModelArgs) -> Result<Box<dyn Model>> {
    check_args(name, args, &["normalize"], UnitsCheck::None)?;
    let normalize = args.options.bool_or("normalize", true)?;
    let (n, u, o) = (args.num_neurons, args.num_units, args.num_output);
    let mut b = NetBuilder::new();
    b.mean_and_conv(n, u, 4, 2)?.flatten();
    b.linear(n + u, u)?.gelu().linear(u, u)?.gelu().linear(u, u / 2)?.gelu().linear(u / 2, o)?;
    let mut fin = finish_spec(name, args, (2, 2), normalize);
    fin.resample_factor = 2;
    Ok(Box::new(b.finish(fin)))
}

// ---------------------------------------------------------------------------------------------
// The registration table.

fn deep(offset: (i64, i64), skips: usize, last_kernel: i64) -> DeepConv {
    DeepConv { offset, skips, last_kernel, tanh: false, dropout: Dropout::None, units_check: true }
}

fn factory(f: impl Fn(&str, &ModelArgs) -> Result<Box<dyn Model>> + Send + Sync + 'static) -> ModelFactory {
    Arc::new(f)
}

/// Registers the reference models, in the reference's order, into `registry`.
pub(crate) fn register_reference_models(registry: &Registry) -> Result<()> {
    let conv = |spec: DeepConv, normalize: bool| factory(move |n, a| deep_conv(n, a, spec, normalize));
    let offset10 = conv(deep((5, 5), 3, 3), true);
    let resample40 = factory(|n, a| resample_conv(n, a, (20, 20), 3, 3));
    let resample20 = factory(|n, a| resample_conv(n, a, (10, 10), 1, 2));
    let resample4 = factory(resample_mlp);
    let offset5 = DeepConv { units_check: false, ..deep((2, 3), 1, 2) };
    let offset36 = deep((18, 18), 16, 3);

    let plain: Vec<(&str, ModelFactory, bool)> = vec![
        ("offset10-model", offset10, false),
        ("offset10-model-mse", conv(deep((5, 5), 3, 3), false), false),
        ("offset5-model", conv(offset5, true), false),
        ("offset1-model-mse", factory(|n, a| mlp_mse(n, a, false, None)), false),
        ("offset1-model", factory(|n, a| mlp_offset1(n, a, false)), false),
        ("offset1-model-v2", factory(|n, a| mlp_variant(n, a, 2)), false),
        ("offset1-model-v3", factory(|n, a| mlp_variant(n, a, 3)), false),
        ("offset1-model-v4", factory(|n, a| mlp_variant(n, a, 4)), false),
        ("offset1-model-v5", factory(|n, a| mlp_variant(n, a, 5)), false),
        ("offset40-model-4x-subsample", resample40.clone(), false),
        ("resample-model", resample40, true),
        ("offset20-model-4x-subsample", resample20.clone(), false),
        ("resample5-model", resample20, true),
        ("offset4-model-2x-subsample", resample4.clone(), false),
        ("resample1-model", resample4, true),
        ("supervised10-model", factory(supervised10), false),
        ("supervised1-model", factory(|n, a| mlp_offset1(n, a, true)), false),
        ("offset36-model", conv(offset36, true), false),
        ("offset36-model-dropout", conv(DeepConv { dropout: Dropout::AfterFirstConv, ..offset36 }, true), false),
        ("offset36-model-more-dropout", conv(DeepConv { dropout: Dropout::AlsoInSkips, ..offset36 }, true), false),
        ("offset40-model", conv(deep((20, 20), 18, 3), true), false),
        ("offset50-model", conv(deep((25, 25), 23, 3), true), false),
        ("offset15-model", conv(deep((7, 8), 6, 2), true), false),
        ("offset20-model", conv(deep((10, 10), 8, 3), true), false),
        ("offset10-model-mse-tanh", conv(DeepConv { tanh: true, ..deep((5, 5), 3, 3) }, false), false),
        ("offset1-model-mse-tanh", factory(|n, a| mlp_mse(n, a, true, None)), false),
    ];
    for (name, f, deprecated) in plain {
        registry.register(name, f, crate::registry::RegisterFlags { deprecated, ..Default::default() })?;
    }

    let clip_values: Vec<String> =
        [1000, 100, 50, 25, 20, 15, 10, 5, 1].iter().map(|v| v.to_string()).collect();
    registry.parametrize(
        "offset1-model-mse-clip-{clip_min}-{clip_max}",
        &[("clip_min", clip_values.clone()), ("clip_max", clip_values)],
        factory(|n, a| mlp_mse(n, a, false, Some((-1.0, 1.0)))),
    )?;
    let layer_counts: Vec<String> = (1..=10).map(|v| v.to_string()).collect();
    let tanh = vec!["-tanh".to_string(), String::new()];
    registry.parametrize(
        "offset1-model-mse-v2-{n_intermediate_layers}layers{tanh}",
        &[("n_intermediate_layers", layer_counts.clone()), ("tanh", tanh.clone())],
        factory(|n, a| mlp_shared(n, a, false)),
    )?;
    registry.parametrize(
        "offset1-model-mse-resnet-{n_intermediate_layers}layers{tanh}",
        &[("n_intermediate_layers", layer_counts), ("tanh", tanh)],
        factory(|n, a| mlp_shared(n, a, true)),
    )?;
    Ok(())
}
