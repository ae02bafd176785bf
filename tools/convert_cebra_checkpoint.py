#!/usr/bin/env python3
"""Convert between Python CEBRA checkpoints and libcebra's self-describing .safetensors model files.

    python tools/convert_cebra_checkpoint.py to-safetensors model.pt model.safetensors
    python tools/convert_cebra_checkpoint.py to-checkpoint model.safetensors model.pt

``to-safetensors`` reads a checkpoint written by ``cebra.CEBRA(...).fit(...).save("model.pt")`` (the
default "sklearn" backend, or the deprecated "torch" backend) and writes the model's weights under
the reference state_dict keys, with the metadata ``cebra_model_load_file`` rebuilds the model from:
architecture, ``num_neurons``, ``num_units``, ``num_output``, options, plus the offset and the
estimator's parameters (for the way back). A checkpoint this library cannot build is refused with a
message naming what is missing: a model trained jointly on several recordings (multi-session), or
an architecture that is not one of the registered reference models.

``to-checkpoint`` writes a file of ours (from ``cebra_model_save`` or from ``to-safetensors``) as a
checkpoint that ``cebra.CEBRA.load`` accepts and can ``transform`` with. The solver's training state
(optimizer moments, loss history) is not part of our files: the checkpoint starts them afresh.

Needs ``torch``, ``safetensors`` and ``cebra`` (0.6.1).
"""
import argparse
import itertools
import json
import sys

import torch
from safetensors import safe_open
from safetensors.torch import save_file

import cebra
import cebra.models
import cebra.solver

META = {
    "arch": "cebra.architecture",
    "n": "cebra.num_neurons",
    "u": "cebra.num_units",
    "o": "cebra.num_output",
    "options": "cebra.options",
    "label_num": "cebra.label_num",
    "version": "cebra.version",
    "offset_left": "cebra.offset_left",
    "offset_right": "cebra.offset_right",
    "sklearn_args": "cebra.sklearn_args",
    "source": "cebra.source",
}
LIBCEBRA_VERSION = "0.1.0"


class ConversionError(Exception):
    pass


def _checkpoint_parts(ckpt):
    """(args, state, solver_state_dict) of a sklearn-backend dict or a pickled cebra.CEBRA."""
    if isinstance(ckpt, cebra.CEBRA):
        if not hasattr(ckpt, "n_features_"):
            raise ConversionError("the checkpoint holds a cebra.CEBRA that was never fitted")
        state = {k: getattr(ckpt, k, None) for k in
                 ("label_types_", "device_", "n_features_", "n_features_in_", "num_sessions_", "offset_",
                  "solver_name_")}
        return ckpt.get_params(), state, ckpt.solver_.state_dict()
    if isinstance(ckpt, dict):
        missing = [k for k in ("args", "state", "state_dict") if k not in ckpt]
        if missing:
            raise ConversionError(f"not a cebra.CEBRA.save checkpoint: no {', '.join(repr(k) for k in missing)} entry")
        return ckpt["args"], ckpt["state"], ckpt["state_dict"]
    raise ConversionError(f"not a cebra.CEBRA.save checkpoint (it holds a {type(ckpt).__name__})")


def _json_safe(args):
    out = {}
    for key, value in args.items():
        try:
            json.dumps(value)
            out[key] = value
        except TypeError:
            out[key] = repr(value)  # e.g. a callable: kept for information only
    return out


def to_safetensors(src, dst):
    ckpt = torch.load(src, map_location="cpu", weights_only=False)
    args, state, solver_state = _checkpoint_parts(ckpt)
    arch = args.get("model_architecture")
    sessions = state.get("num_sessions_")
    if sessions is not None:
        raise ConversionError(
            f"the model was trained jointly on {sessions} recordings (multi-session): libcebra builds "
            "single-session models only (one encoder per file)")
    if not isinstance(arch, str) or arch not in cebra.models.get_options():
        raise ConversionError(
            f"model_architecture {arch!r} is not a registered reference architecture; libcebra builds the "
            f"{len(cebra.models.get_options())} names of cebra.models.get_options() only")
    weights = solver_state.get("model") if isinstance(solver_state, dict) else None
    if weights is None:
        raise ConversionError("the checkpoint has no model weights (state_dict['model'])")
    # The hybrid solver wraps the encoder: its keys carry a 'module.' prefix.
    if weights and all(k.startswith("module.") for k in weights):
        weights = {k[len("module."):]: v for k, v in weights.items()}
    n = int(state["n_features_in_"])
    u, o = int(args["num_hidden_units"]), int(args["output_dimension"])
    model = cebra.models.init(arch, num_neurons=n, num_units=u, num_output=o)
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as e:
        raise ConversionError(f"the weights do not fit {arch} with N={n}, U={u}, O={o}: {e}") from None
    offset = model.get_offset()
    tensors = {k: v.detach().to(torch.float32).clone().contiguous() for k, v in model.state_dict().items()}
    metadata = {
        "format": "pt",
        META["arch"]: arch,
        META["n"]: str(n),
        META["u"]: str(u),
        META["o"]: str(o),
        META["options"]: "",
        META["version"]: LIBCEBRA_VERSION,
        META["offset_left"]: str(offset.left),
        META["offset_right"]: str(offset.right),
        META["sklearn_args"]: json.dumps(_json_safe(args), sort_keys=True),
        META["source"]: f"cebra {solver_state.get('version', cebra.__version__)} checkpoint",
    }
    save_file(tensors, dst, metadata=metadata)


def to_checkpoint(src, dst):
    with safe_open(src, framework="pt") as f:
        meta = f.metadata() or {}
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    missing = [META[k] for k in ("arch", "n", "u", "o") if k and META[k] not in meta]
    if missing:
        raise ConversionError(f"{src} has no {', '.join(missing)} metadata: it was not written by libcebra")
    if meta.get(META["options"]):
        raise ConversionError(
            f"the model was built with options '{meta[META['options']]}', which a cebra.CEBRA checkpoint "
            "cannot record (the estimator passes no model options)")
    if META["label_num"] in meta:
        raise ConversionError("classifier heads (supervised*-model) have no cebra.CEBRA checkpoint form")
    arch = meta[META["arch"]]
    n, u, o = int(meta[META["n"]]), int(meta[META["u"]]), int(meta[META["o"]])
    args = cebra.CEBRA(model_architecture=arch, num_hidden_units=u, output_dimension=o).get_params()
    if META["sklearn_args"] in meta:
        recorded = json.loads(meta[META["sklearn_args"]])
        args.update({k: v for k, v in recorded.items() if k in args and not str(v).startswith("<")})
    args.update(model_architecture=arch, num_hidden_units=u, output_dimension=o, device="cpu")
    estimator = cebra.CEBRA(**args)
    model = cebra.models.init(arch, num_neurons=n, num_units=u, num_output=o)
    model.load_state_dict(tensors, strict=True)
    model.eval()
    criterion = estimator._prepare_criterion()
    optimizer = torch.optim.Adam(itertools.chain(model.parameters(), criterion.parameters()),
                                 lr=args["learning_rate"], **dict(args["optimizer_kwargs"]))
    solver = cebra.solver.init("single-session", model=model, criterion=criterion, optimizer=optimizer,
                               tqdm_on=False)
    solver.n_features = n
    estimator.model_ = model
    estimator.solver_ = solver
    estimator.label_types_ = []
    estimator.device_ = "cpu"
    estimator.n_features_ = n
    estimator.n_features_in_ = n
    estimator.num_sessions_ = None
    estimator.offset_ = model.get_offset()
    estimator.solver_name_ = "single-session"
    estimator.save(dst)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("direction", choices=["to-safetensors", "to-checkpoint"])
    ap.add_argument("src")
    ap.add_argument("dst")
    a = ap.parse_args(argv)
    try:
        (to_safetensors if a.direction == "to-safetensors" else to_checkpoint)(a.src, a.dst)
    except ConversionError as e:
        print(f"convert_cebra_checkpoint: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
