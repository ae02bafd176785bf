"""Check that a model file written by ``cebra::weights::save`` loads into the Python reference.

Usage::

    python tools/reference/check_saved.py <name> <file> <io-file>

``<file>`` is a libcebra model file; the architecture is rebuilt from its metadata with
``cebra.models.init`` (the name given must match the file's ``cebra.architecture``), the weights are
loaded with the plain ``model.load_state_dict(safetensors.torch.load_file(file))`` (strict), and the
eval-mode forward pass on ``<io-file>``'s ``input`` is compared with its ``output`` (and, for
classifiers, ``features`` and ``prediction``). Files for it are written by the Rust test
``write_files_for_the_reference_check`` in ``tests/weights.rs`` when ``CEBRA_SAVED_DIR`` is set::

    CEBRA_SAVED_DIR=/tmp/saved cargo test --test weights write_files_for_the_reference_check
    for f in /tmp/saved/*.io.safetensors; do n=$(basename "$f" .io.safetensors); \
        python tools/reference/check_saved.py "$n" /tmp/saved/$n.safetensors "$f"; done

Prints one line per compared tensor and exits non-zero on any mismatch (> 1e-5).
"""
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file

import cebra.models

TOL = 1e-5


def parse_value(text):
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_options(text):
    options = {}
    for segment in text.split(";"):
        segment = segment.strip()
        if segment:
            key, value = segment.split("=", 1)
            options[key.strip()] = parse_value(value.strip())
    return options


def main(name, path, io_path):
    torch.set_num_threads(1)
    with safe_open(path, "pt") as f:
        meta = f.metadata() or {}
    if meta.get("cebra.architecture") != name:
        sys.exit(f"{path}: architecture {meta.get('cebra.architecture')!r}, expected {name!r}")
    options = parse_options(meta.get("cebra.options", ""))
    model = cebra.models.init(name,
                              num_neurons=int(meta["cebra.num_neurons"]),
                              num_units=int(meta["cebra.num_units"]),
                              num_output=int(meta["cebra.num_output"]),
                              **options)
    if "cebra.label_num" in meta:
        model.set_output_num(int(meta["cebra.label_num"]))
    state = load_file(path)
    result = model.load_state_dict(state)  # strict=True: raises on missing/unexpected keys
    model.eval()
    io = load_file(io_path)
    failed = False
    with torch.no_grad():
        x = io["input"]
        compared = {}
        if isinstance(model, cebra.models.model.ClassifierModel):
            features, prediction = model(x)
            compared = {"output": model.net(x), "features": features, "prediction": prediction}
        else:
            compared = {"output": model(x)}
    for key, ours in compared.items():
        if key not in io:
            continue
        reference = io[key]
        if tuple(ours.shape) != tuple(reference.shape):
            print(f"{name}: {key} shape {tuple(ours.shape)} vs libcebra {tuple(reference.shape)}")
            failed = True
            continue
        diff = (ours - reference).abs().max().item()
        ok = diff <= TOL
        failed |= not ok
        print(f"{name}: {key} {tuple(ours.shape)} max |python - libcebra| = {diff:.3e} "
              f"{'ok' if ok else 'MISMATCH'}")
    print(f"{name}: {len(state)} tensors loaded strictly ({result}), "
          f"{sum(p.numel() for p in model.parameters())} unique parameters")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
