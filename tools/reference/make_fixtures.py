#!/usr/bin/env python3
"""Generate the reference fixtures that libcebra's Rust and C tests compare against.

Runs the Python reference implementation (cebra 0.6.1 on torch 2.13.0, CPU, float32) and writes
safetensors files plus a JSON manifest under ``tests/fixtures/`` (override with ``--out``):

* ``models/<name>.safetensors``       state_dict of every registered model (N=7, U=12, O=3)
* ``models/<name>.io.safetensors``    an input and the reference forward output for those weights
* ``models/tied-<name>*.safetensors`` tied-weight models whose alias keys hold different values
* ``init/<name>*.safetensors``        state_dicts right after ``torch.manual_seed(1234)`` + construction
* ``layers.safetensors``              layer-level cases (GELU, _Skip, _MeanAndConv, ...)
* ``criterions/*.safetensors``        criterion outputs and gradients, plus raw similarities
* ``manifest.json``                   registry listing and recorded ``get_options`` queries

The output is byte-for-byte deterministic: every random draw comes from a fixed seed, the work runs
single-threaded on the CPU, and safetensors headers are rewritten with sorted metadata keys (the
safetensors writer serialises its metadata map in a random order per process).

Usage: python tools/reference/make_fixtures.py [--out DIR]
"""

import argparse
import json
import math
import struct
from pathlib import Path

import torch
import torch.nn as nn
from safetensors import safe_open
from safetensors.torch import save as st_save

import cebra
import cebra.models
import cebra.models.criterions as crit
import cebra.models.layers as layers

# Model construction arguments shared by every model fixture. Always passed as keywords: parametrized
# registry names remember keyword arguments between calls, so mixing styles would change behaviour.
N, U, O = 7, 12, 3
MODEL_KWARGS = dict(num_neurons=N, num_units=U, num_output=O)
LABEL_NUM = 5  # classifier head width for supervised models
BATCH = 3  # batch size of model io fixtures
CLIP_SCALE = 40.0  # clip family: scale the last Linear so that outputs exceed the clip range
INIT_SEED = 1234
# Non-parametrized names beyond the 26 plain ones whose initialisation is also recorded.
EXTRA_INIT_NAMES = [
    "offset1-model-mse-clip-25-5",
    "offset1-model-mse-v2-3layers-tanh",
    "offset1-model-mse-resnet-3layers",
]
PARAMETRIZED_PREFIXES = ("offset1-model-mse-clip-", "offset1-model-mse-v2-",
                         "offset1-model-mse-resnet-")
TIED_NAMES = ["offset1-model-mse-v2-3layers", "offset1-model-mse-resnet-3layers-tanh"]
# The convolutional models that downsample in time; they get a longer input (L + 9) so the output
# has several time steps and the ignored tail samples are exercised.
RESAMPLE_CONV_EXTRA = 9
CONV_EXTRA = 6


# ----------------------------------------------------------------------------------------------
# Deterministic safetensors writing
# ----------------------------------------------------------------------------------------------

def save_fixture(tensors, path, metadata=None):
    """Save float32 tensors with safetensors, then canonicalise the header.

    safetensors stores ``__metadata__`` as a hash map whose serialisation order changes between
    processes. The header is re-serialised here with sorted metadata keys (the tensor entries keep
    the writer's order and offsets), which keeps the same byte length, so the data section is
    untouched. The result is still a normal safetensors file.
    """
    clean = {}
    for key, value in tensors.items():
        value = value.detach().clone().contiguous()  # clone: tied weights would share storage
        assert value.dtype == torch.float32, (path, key, value.dtype)
        clean[key] = value
    metadata = {str(k): str(v) for k, v in (metadata or {}).items()}
    blob = st_save(clean, metadata=metadata)
    (header_len,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + header_len].decode("utf-8"))
    canonical = {}
    if "__metadata__" in header:
        canonical["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    for key, value in header.items():
        if key != "__metadata__":
            canonical[key] = value
    text = json.dumps(canonical, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    assert len(text) <= header_len, "canonical header must not grow"
    text = text + b" " * (header_len - len(text))  # safetensors pads headers with spaces
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(blob[:8] + text + blob[8 + header_len:])
    # Read back to make sure the rewritten file is valid and intact.
    with safe_open(str(path), framework="pt") as f:
        assert set(f.keys()) == set(clean), path
        assert f.metadata() == metadata, path
        for key in clean:
            assert torch.equal(f.get_tensor(key), clean[key]) or (
                torch.isnan(clean[key]).any()
                and torch.equal(torch.nan_to_num(f.get_tensor(key)), torch.nan_to_num(clean[key]))
            ), (path, key)


def jdump(value):
    """Compact, key-sorted JSON for metadata values."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def gen(seed):
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------

def is_classifier(model):
    return isinstance(model, cebra.models.model.ClassifierModel)


def resample_factor(model):
    if isinstance(model, cebra.models.ResampleModelMixin):
        return int(model.resample_factor)
    return 1


def is_convolutional(model):
    return isinstance(model, cebra.models.ConvolutionalModelMixin)


def input_length(model):
    """T = L (+6 for convolutional models, +9 for convolutional resample models)."""
    length = len(model.get_offset())
    if is_convolutional(model):
        length += RESAMPLE_CONV_EXTRA if resample_factor(model) > 1 else CONV_EXTRA
    return length


def build_model(name, seed, classifier_head=True):
    """Seed torch's global RNG, construct the model (default PyTorch init), optional head."""
    torch.manual_seed(seed)
    model = cebra.models.init(name, **MODEL_KWARGS)
    if classifier_head and is_classifier(model):
        model.set_output_num(LABEL_NUM)
    return model


def tied_keys(state_dict):
    """Map alias key -> first key holding the same storage (tied weights in v2/resnet families)."""
    first_by_ptr, aliases = {}, {}
    for key, value in state_dict.items():
        ptr = (value.data_ptr(), tuple(value.shape), tuple(value.stride()))
        if ptr in first_by_ptr:
            aliases[key] = first_by_ptr[ptr]
        else:
            first_by_ptr[ptr] = key
    return aliases


def model_metadata(name, model, state_dict):
    meta = {
        "name": name,
        "num_neurons": str(N),
        "num_units": str(U),
        "num_output": str(O),
        # safetensors does not keep insertion order; record the state_dict order explicitly.
        "state_dict_keys": jdump(list(state_dict.keys())),
        "tied_keys": jdump(tied_keys(state_dict)),
    }
    if is_classifier(model):
        meta["label_num"] = str(LABEL_NUM)
    return meta


@torch.no_grad()
def forward_io(name, model, input_seed):
    """Run the eval-mode model on a seeded standard-normal input; returns tensors and metadata."""
    model.eval()
    offset = model.get_offset()
    x = torch.randn((BATCH, N, input_length(model)), generator=gen(input_seed), dtype=torch.float32)
    tensors = {"input": x}
    meta = {
        "name": name,
        "offset_left": str(offset.left),
        "offset_right": str(offset.right),
        "resample_factor": str(resample_factor(model)),
        "convolutional": "true" if is_convolutional(model) else "false",
        "num_parameters_total": str(sum(p.numel() for p in model.parameters())),
        "num_parameters_trainable": str(
            sum(p.numel() for p in model.parameters() if p.requires_grad)),
        "input_seed": str(input_seed),
    }
    if is_classifier(model):
        features, prediction = model(x)
        tensors["features"] = features  # after ReLU
        tensors["prediction"] = prediction
        tensors["output"] = model.net(x)  # feature encoder output, before ReLU
        meta["features_shape"] = jdump(list(features.shape))
        meta["prediction_shape"] = jdump(list(prediction.shape))
    else:
        tensors["output"] = model(x)
    meta["output_shape"] = jdump(list(tensors["output"].shape))
    return tensors, meta


def make_models(out, names):
    """Files 1 and 2: weights and a forward pass for every registered name."""
    for index, name in enumerate(names):
        model = build_model(name, seed=index)
        if name.startswith("offset1-model-mse-clip-"):
            # Scale the last Linear so the Hardtanh clamp is actually hit in the io fixture.
            with torch.no_grad():
                model.net[7].weight.mul_(CLIP_SCALE)
                model.net[7].bias.mul_(CLIP_SCALE)
        state_dict = model.state_dict()
        save_fixture(state_dict, out / "models" / f"{name}.safetensors",
                     model_metadata(name, model, state_dict))
        tensors, meta = forward_io(name, model, input_seed=1000 + index)
        if name == "offset1-model-mse-clip-1-1":
            hits = (tensors["output"].abs() == 1.0).sum().item()
            assert hits > 0, "clip-1-1 fixture does not exercise the clamp"
            print(f"  {name}: {hits} of {tensors['output'].numel()} outputs clamped to +-1")
        save_fixture(tensors, out / "models" / f"{name}.io.safetensors", meta)


def make_tied(out, names):
    """File 4: load a state_dict whose alias keys disagree; torch keeps the last alias."""
    for name in TIED_NAMES:
        index = names.index(name)
        model = build_model(name, seed=index)
        original = model.state_dict()
        aliases = tied_keys(original)
        assert aliases, f"{name} has no tied weights"
        g = gen(2000 + index)
        state_dict = {}
        for key, value in original.items():
            value = value.detach().clone()
            if key in aliases:
                # Distinct values per alias key, same scale as the default init.
                value = torch.rand(value.shape, generator=g, dtype=torch.float32) - 0.5
            state_dict[key] = value
        model.load_state_dict(state_dict)
        meta = model_metadata(name, model, original)
        # Which key's values the shared tensor ends up with after loading (last alias in order).
        last = {}
        for key in state_dict:
            last[aliases.get(key, key)] = key
        meta["effective_source"] = jdump({k: v for k, v in last.items() if v != k})
        save_fixture(state_dict, out / "models" / f"tied-{name}.safetensors", meta)
        for first, source in last.items():
            assert torch.equal(model.state_dict()[first], state_dict[source])
        tensors, io_meta = forward_io(name, model, input_seed=1000 + index)
        io_meta["name"] = f"tied-{name}"
        save_fixture(tensors, out / "models" / f"tied-{name}.io.safetensors", io_meta)


def make_init(out):
    """File 3: state_dicts straight after torch.manual_seed(1234) + construction."""
    # get_options(expand_parametrized=False) also lists one member of each parametrized family;
    # keep the 26 plain names and add the chosen family members explicitly.
    plain = [n for n in cebra.models.get_options(expand_parametrized=False)
             if not n.startswith(PARAMETRIZED_PREFIXES)]
    assert len(plain) == 26, plain
    plain += EXTRA_INIT_NAMES
    for name in plain:
        model = build_model(name, INIT_SEED, classifier_head=False)
        meta = model_metadata(name, model, model.state_dict())
        meta["seed"] = str(INIT_SEED)
        meta.pop("label_num", None)
        save_fixture(model.state_dict(), out / "init" / f"{name}.safetensors", meta)
        if is_classifier(model):
            model = build_model(name, INIT_SEED, classifier_head=True)
            meta = model_metadata(name, model, model.state_dict())
            meta["seed"] = str(INIT_SEED)
            save_fixture(model.state_dict(), out / "init" / f"{name}.classifier.safetensors", meta)


# ----------------------------------------------------------------------------------------------
# Layers
# ----------------------------------------------------------------------------------------------

def make_layers(out):
    """File 5: layer-level cases, tensors `<case>.<tensor>`, case parameters in metadata `<case>`."""
    tensors, meta = {}, {}

    def add(case, params, **named):
        meta[case] = jdump(params)
        for key, value in named.items():
            tensors[f"{case}.{key}"] = value

    specials = torch.tensor([-50.0, -10.0, -5.0, -3.0, -2.5, -1.0, -0.5, -1e-3, -1e-7, 0.0, 1e-7,
                             1e-3, 0.5, 1.0, 2.5, 3.0, 5.0, 10.0, 50.0])
    x = torch.cat([specials, 3.0 * torch.randn(45, generator=gen(1))]).reshape(4, 16)

    with torch.no_grad():
        add("gelu", {"layer": "GELU", "approximate": "none"}, input=x, output=nn.GELU()(x))
        add("tanh", {"layer": "Tanh"}, input=x, output=nn.Tanh()(x))
        add("hardtanh", {"layer": "Hardtanh", "min_val": -2.5, "max_val": 0.5},
            input=x, output=nn.Hardtanh(-2.5, 0.5)(x))

        x = torch.randn((2, 3, 4), generator=gen(2))
        add("flatten", {"layer": "Flatten", "start_dim": 1, "end_dim": -1},
            input=x, output=nn.Flatten()(x))

        for case, shape, seed in [("squeeze_2_3_1", (2, 3, 1), 3), ("squeeze_2_3_5", (2, 3, 5), 4),
                                  ("squeeze_2_3_1_1", (2, 3, 1, 1), 5)]:
            x = torch.randn(shape, generator=gen(seed))
            y = layers.Squeeze()(x)
            add(case, {"layer": "Squeeze", "input_shape": list(shape),
                       "output_shape": list(y.shape)}, input=x, output=y)

        x = torch.randn((2, 3, 5), generator=gen(6))
        add("norm", {"layer": "_Norm", "dim": 1}, input=x, output=layers._Norm()(x))
        x = torch.randn((2, 3, 5), generator=gen(7))
        x[1, :, 3] = 0.0  # an all-zero channel vector: 0/0 -> NaN, no epsilon
        add("norm_zero", {"layer": "_Norm", "dim": 1, "zero_vector": [1, ":", 3], "nan": True},
            input=x, output=layers._Norm()(x))
        x = torch.randn((4, 3), generator=gen(8))
        x[2] = 0.0
        add("norm_2d_zero", {"layer": "_Norm", "dim": 1, "zero_row": 2, "nan": True},
            input=x, output=layers._Norm()(x))

        # Modules with parameters: seed the global RNG so their default init is reproducible.
        torch.manual_seed(10)
        conv = nn.Conv1d(4, 4, 3)
        skip = layers._Skip(conv, nn.GELU())
        x = torch.randn((2, 4, 9), generator=gen(9))
        add("skip_conv", {"layer": "_Skip", "modules": ["Conv1d(4,4,3)", "GELU"], "crop": [1, 1]},
            weight=conv.weight, bias=conv.bias, input=x, output=skip(x))

        # crop=(2,0): identity branch is x[..., 2:], 7 samples, same as the k=3 conv output.
        torch.manual_seed(11)
        conv = nn.Conv1d(4, 4, 3)
        skip = layers._Skip(conv, crop=(2, 0))
        x = torch.randn((2, 4, 9), generator=gen(10))
        add("skip_crop_2_0", {"layer": "_Skip", "modules": ["Conv1d(4,4,3)"], "crop": [2, 0]},
            weight=conv.weight, bias=conv.bias, input=x, output=skip(x))

        for case, (fin, fout), seed in [("skip_linear_pad", (5, 8), 12),
                                        ("skip_linear_crop", (8, 3), 13)]:
            torch.manual_seed(seed)
            lin = nn.Linear(fin, fout)
            x = torch.randn((3, fin), generator=gen(seed))
            add(case, {"layer": "_SkipLinear", "in_features": fin, "out_features": fout},
                weight=lin.weight, bias=lin.bias, input=x, output=layers._SkipLinear(lin)(x))

        for t in (8, 9):
            torch.manual_seed(20 + t)
            mc = layers._MeanAndConv(4, 6, 4, stride=2)
            x = torch.randn((2, 4, t), generator=gen(20 + t))
            add(f"mean_and_conv_T{t}", {"layer": "_MeanAndConv", "inp": 4, "output": 6,
                                        "kernel": 4, "stride": 2, "T": t},
                weight=mc.layer.weight, bias=mc.layer.bias, input=x, output=mc(x))

        torch.manual_seed(30)
        conv = nn.Conv1d(4, 5, 3, stride=2)
        x = torch.randn((2, 4, 11), generator=gen(30))
        add("conv1d_stride2", {"layer": "Conv1d", "in_channels": 4, "out_channels": 5,
                               "kernel_size": 3, "stride": 2},
            weight=conv.weight, bias=conv.bias, input=x, output=conv(x))

    save_fixture(tensors, out / "layers.safetensors", meta)


# ----------------------------------------------------------------------------------------------
# Criterions
# ----------------------------------------------------------------------------------------------

CRITERIONS = {
    "fixed-cosine-infonce": crit.FixedCosineInfoNCE,
    "fixed-euclidean-infonce": crit.FixedEuclideanInfoNCE,
    "learnable-cosine-infonce": crit.LearnableCosineInfoNCE,
    "learnable-euclidean-infonce": crit.LearnableEuclideanInfoNCE,
    "nce": crit.NCE,
}
SHORT = {
    "fixed-cosine-infonce": "fixed-cosine",
    "fixed-euclidean-infonce": "fixed-euclidean",
    "learnable-cosine-infonce": "learnable-cosine",
    "learnable-euclidean-infonce": "learnable-euclidean",
    "nce": "nce",
}
INFONCE = [k for k in CRITERIONS if k != "nce"]

# Worked example of facts section 7.5.
EXAMPLE = {
    "ref": [[0.1, 0.2], [0.3, -0.4], [-0.5, 0.6]],
    "pos": [[0.2, 0.1], [0.25, -0.5], [-0.4, 0.4]],
    "neg": [[-0.3, 0.3], [0.6, 0.1], [0.0, -0.7]],
}


def example_inputs():
    return tuple(torch.tensor(EXAMPLE[k], dtype=torch.float32) for k in ("ref", "pos", "neg"))


def random_inputs(seed, n, m, d, normalize=False, scale=1.0):
    g = gen(seed)
    ref, pos, neg = (torch.randn((rows, d), generator=g) for rows in (n, n, m))
    if normalize:  # what a normalising model produces for cosine criterions
        ref, pos, neg = (t / t.norm(dim=1, keepdim=True) for t in (ref, pos, neg))
    return ref * scale, pos * scale, neg * scale


def fmt(value):
    """Option/temperature values as text: Python repr for numbers (1.0, 0.001), strings as-is."""
    return value if isinstance(value, str) else repr(value)


def run_criterion(kind, options, ref, pos, neg):
    """Forward + backward of the scalar that training minimises."""
    criterion = CRITERIONS[kind](**options)
    ref, pos, neg = (t.detach().clone().requires_grad_(True) for t in (ref, pos, neg))
    loss, align, uniform = criterion(ref, pos, neg)
    objective = -loss.mean() if kind == "nce" else loss
    objective.backward()
    tensors = {
        "ref": ref, "pos": pos, "neg": neg,
        "loss": loss, "align": align, "uniform": uniform,
        "grad_ref": ref.grad, "grad_pos": pos.grad, "grad_neg": neg.grad,
    }
    if kind.startswith("learnable"):
        param = criterion.log_inverse_temperature
        tensors["log_inverse_temperature"] = param
        tensors["grad_log_inverse_temperature"] = param.grad
    meta = {
        "criterion": kind,
        "options": ";".join(f"{k}={fmt(v)}" for k, v in options.items()),
        "temperature": fmt(float(criterion.temperature)),
    }
    return tensors, meta


def criterion_cases():
    """Yield (case name, criterion kind, options, (ref, pos, neg)).

    Every case draws its inputs from its own seed. Cosine criterions see L2-normalised rows (what
    the normalising models produce) except in the "extreme" cases.
    """
    seeds = iter(range(101, 10_000))

    def inputs(kind, n, m, d, scale=1.0):
        return random_inputs(next(seeds), n, m, d, normalize="cosine" in kind, scale=scale)

    for kind in CRITERIONS:
        short = SHORT[kind]
        for n, m, d in [(32, 32, 8), (16, 40, 3), (20, 12, 1), (64, 64, 128)]:
            yield f"{short}_n{n}_m{m}_d{d}_t1", kind, {"temperature": 1.0}, inputs(kind, n, m, d)
        for tau in (1.0, 0.5):
            yield f"{short}_example_t{tau:g}", kind, {"temperature": tau}, example_inputs()

    for kind in INFONCE:
        short = SHORT[kind]
        yield f"{short}_n32_m32_d8_t0.1", kind, {"temperature": 0.1}, inputs(kind, 32, 32, 8)
        # tau=0.001 with moderate similarities (|sim|/tau <~ 1e3): cosine rows have unit norm,
        # euclidean rows are normalised to norm 0.1 so squared distances stay <= 0.04.
        if "euclidean" in kind:
            x = random_inputs(next(seeds), 32, 32, 8, normalize=True, scale=0.1)
        else:
            x = inputs(kind, 32, 32, 8)
        yield f"{short}_n32_m32_d8_t0.001", kind, {"temperature": 0.001}, x
        # Unnormalised rows of norm ~1e3: exercises the max-subtraction stabilisation.
        x = random_inputs(next(seeds), 32, 32, 8, scale=1e3 / math.sqrt(8))
        yield f"{short}_extreme_norm1e3_t1", kind, {"temperature": 1.0}, x

    for kind in ("learnable-cosine-infonce", "learnable-euclidean-infonce"):
        short = SHORT[kind]
        yield (f"{short}_mintemp_active_t0.05_min0.2", kind,
               {"temperature": 0.05, "min_temperature": 0.2}, inputs(kind, 32, 32, 8))
        yield (f"{short}_mintemp_inactive_t0.5_min0.1", kind,
               {"temperature": 0.5, "min_temperature": 0.1}, inputs(kind, 32, 32, 8))
        # The clamped worked example of facts section 7.5.
        yield (f"{short}_example_t0.1_min0.2", kind,
               {"temperature": 0.1, "min_temperature": 0.2}, example_inputs())

    nce_a = {"temperature": 1.0, "negative_weight": 1.0, "reduce": "mean"}
    nce_b = {"temperature": 0.5, "negative_weight": 2.0, "reduce": "sum"}
    yield "nce_n32_m32_d8_t1_w1_mean", "nce", nce_a, inputs("nce", 32, 32, 8)
    yield "nce_n32_m32_d8_t0.5_w2_sum", "nce", nce_b, inputs("nce", 32, 32, 8)
    yield "nce_n16_m40_d3_t0.5_w2_sum", "nce", nce_b, inputs("nce", 16, 40, 3)
    yield "nce_example_t0.5_w2_sum", "nce", nce_b, example_inputs()


def make_criterions(out):
    """File 6: one safetensors per criterion case, plus the raw similarity functions."""
    names = []
    for case, kind, options, (ref, pos, neg) in criterion_cases():
        assert case not in names, case
        names.append(case)
        tensors, meta = run_criterion(kind, options, ref, pos, neg)
        meta["case"] = case
        save_fixture(tensors, out / "criterions" / f"{case}.safetensors", meta)

    tensors, meta = {}, {}
    sim_cases = [("random1", random_inputs(201, 10, 7, 5)),
                 ("random2", random_inputs(202, 10, 7, 5)),
                 ("example", example_inputs())]
    with torch.no_grad():
        for case, (ref, pos, neg) in sim_cases:
            dot_pos, dot_neg = crit.dot_similarity(ref, pos, neg)
            euc_pos, euc_neg = crit.euclidean_similarity(ref, pos, neg)
            loss, align, uniform = crit.infonce(dot_pos, dot_neg)
            for key, value in [("ref", ref), ("pos", pos), ("neg", neg),
                               ("dot_pos", dot_pos), ("dot_neg", dot_neg),
                               ("euclidean_pos", euc_pos), ("euclidean_neg", euc_neg),
                               ("infonce_loss", loss), ("infonce_align", align),
                               ("infonce_uniform", uniform)]:
                tensors[f"{case}.{key}"] = value
            meta[case] = jdump({"n": ref.shape[0], "m": neg.shape[0], "d": ref.shape[1]})
    save_fixture(tensors, out / "criterions" / "similarity.safetensors", meta)
    return names


# ----------------------------------------------------------------------------------------------
# Manifest
# ----------------------------------------------------------------------------------------------

QUERIES = [
    dict(pattern="offset1*", limit=None, expand=True),
    dict(pattern="offset[15]-model", limit=None, expand=True),
    dict(pattern="*resnet*", limit=2, expand=True),
    dict(pattern="?ffset5-model", limit=None, expand=True),
    dict(pattern="OFFSET1*", limit=None, expand=True),  # fnmatch is case-sensitive here
    dict(pattern=None, limit=3, expand=True),
    dict(pattern=None, limit=-2, expand=True),  # Python slicing: drops the last two
    dict(pattern=None, limit=0, expand=True),
    dict(pattern="*clip-1-*", limit=None, expand=True),
    dict(pattern="offset1-model-mse*", limit=None, expand=False),
]


def make_manifest(out, names, criterion_cases_written):
    queries = []
    for q in QUERIES:
        result = cebra.models.get_options(pattern=q["pattern"], limit=q["limit"],
                                          expand_parametrized=q["expand"])
        queries.append({**q, "result": list(result)})
    manifest = {
        "cebra_version": cebra.__version__,
        "torch_version": torch.__version__.split("+")[0],
        "model_kwargs": MODEL_KWARGS,
        "label_num": LABEL_NUM,
        "names": names,
        "names_unexpanded": list(cebra.models.get_options(expand_parametrized=False)),
        "queries": queries,
        "tied": ["tied-" + n for n in TIED_NAMES],
        "init_seed": INIT_SEED,
        "clip_last_layer_scale": CLIP_SCALE,
        "criterion_cases": criterion_cases_written,
    }
    text = json.dumps(manifest, indent=1) + "\n"
    (out / "manifest.json").write_text(text)


# ----------------------------------------------------------------------------------------------
# reference-models.json: every registered model's structure and a deterministic forward
# (the fingerprint of the facts file, section 10), read by tests/models.rs.
# ----------------------------------------------------------------------------------------------

FINGERPRINT_KWARGS = dict(num_neurons=10, num_units=16, num_output=4)
FINGERPRINT_LABELS = 3
FINGERPRINT_SOURCE = ("cebra 0.6.1 / torch 2.13.0, N=10 U=16 O=4; fill rule w[i]=0.3*sin(1.3*i+0.7*j+0.5) "
                      "(j = state_dict key position, aliases keep their first key value), "
                      "x[b,c,t]=sin(0.9*b+0.4*c+0.25*t+0.1)")


def fingerprint_fill(model):
    """w[i] = 0.3 sin(1.3 i + 0.7 j + 0.5) for the j-th state_dict key (aliases keep their first key's)."""
    state = model.state_dict(keep_vars=True)
    aliases = tied_keys(state)
    with torch.no_grad():
        for j, (key, tensor) in enumerate(state.items()):
            if key in aliases:
                continue
            i = torch.arange(tensor.numel(), dtype=torch.float64)
            tensor.copy_((0.3 * torch.sin(1.3 * i + 0.7 * j + 0.5)).reshape(tensor.shape).to(tensor.dtype))


def fingerprint_input(model):
    length = len(model.get_offset())
    if is_convolutional(model):
        length += 8 if resample_factor(model) > 1 else 2
    b, c, t = torch.meshgrid(torch.arange(2, dtype=torch.float64), torch.arange(10, dtype=torch.float64),
                             torch.arange(length, dtype=torch.float64), indexing="ij")
    return torch.sin(0.9 * b + 0.4 * c + 0.25 * t + 0.1).float()


def sig9(tensor):
    return [float(f"{v:.9g}") for v in tensor.detach().double().flatten().tolist()]


def make_reference_models(out, names):
    classes_seen = set()
    records = []
    for name in names:
        model = cebra.models.init(name, **FINGERPRINT_KWARGS).eval()
        registered_class = type(model)
        state = model.state_dict()
        unique = {p.data_ptr(): p.numel() for p in model.parameters()}
        classifier = is_classifier(model)
        record = {
            "name": name,
            "offset": [model.get_offset().left, model.get_offset().right],
            "resample_factor": resample_factor(model),
            "convolutional": is_convolutional(model),
            "normalize": any(isinstance(m, layers._Norm) for m in model.net),
            # The registry does not store the flag: a deprecated alias is a second name of a class.
            "deprecated": registered_class in classes_seen,
            "classifier_model": classifier,
            "state_dict": {k: list(v.shape) for k, v in state.items()},
            "tied_state_dict_keys": tied_keys(state),
            "num_unique_parameters": sum(unique.values()),
            "input_len_for_single_output": len(model.get_offset()),
        }
        classes_seen.add(registered_class)
        if classifier:
            model.set_output_num(FINGERPRINT_LABELS)
            # Inserted after "state_dict", where the tests read it.
            with_head = {k: list(v.shape) for k, v in model.state_dict().items()}
            items = list(record.items())
            at = [k for k, _ in items].index("state_dict") + 1
            record = dict(items[:at] + [(f"state_dict_after_set_output_num_{FINGERPRINT_LABELS}", with_head)] + items[at:])
        fingerprint_fill(model)
        x = fingerprint_input(model)
        with torch.no_grad():
            y = model(x)
        if classifier:
            features, prediction = y
            shapes, values = [list(features.shape), list(prediction.shape)], [sig9(features), sig9(prediction)]
        else:
            shapes, values = list(y.shape), sig9(y)
        record["fingerprint"] = {"input_shape": list(x.shape), "output_shape": shapes, "output_float32": values}
        records.append(record)
    text = json.dumps({"source": FINGERPRINT_SOURCE, "models": records}, separators=(",", ":"))
    (out / "reference-models.json").write_text(text)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = Path(__file__).resolve().parents[2]
    parser.add_argument("--out", type=Path, default=root / "tests" / "fixtures")
    args = parser.parse_args()

    assert cebra.__version__ == "0.6.1", cebra.__version__
    if not torch.__version__.startswith("2.13.0"):
        print(f"warning: expected torch 2.13.0, running {torch.__version__}")
    # Single-threaded CPU float32 so that reductions happen in a fixed order.
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)
    torch.use_deterministic_algorithms(True)

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    names = list(cebra.models.get_options())
    print(f"models: {len(names)} names")
    make_models(out, names)
    make_tied(out, names)
    make_init(out)
    make_layers(out)
    cases = make_criterions(out)
    print(f"criterions: {len(cases)} cases")
    make_manifest(out, names, cases)
    make_reference_models(out, names)
    print(f"wrote fixtures to {out}")


if __name__ == "__main__":
    main()
