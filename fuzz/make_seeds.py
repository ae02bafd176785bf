#!/usr/bin/env python3
"""Regenerates fuzz/corpus-seed/ from the test fixtures (run from anywhere; stdlib only).

options/: a few option strings.
weights/: tests/fixtures/models/{offset10-model,offset1-model-mse-v2-3layers}.safetensors as they are
(reference state dicts, loadable with cebra_model_load), and the same tensors with the `cebra.*`
metadata that libcebra's save writes (loadable with cebra_model_load_file), the latter also in the
target's framed form (`*.framed`: header JSON, NUL, tensor bytes), plus a few small files.
"""
import json
import struct
from pathlib import Path

root = Path(__file__).resolve().parent
fixtures = root.parent / "tests" / "fixtures" / "models"
seeds = root / "corpus-seed"

OPTIONS = {
    "empty": "",
    "normalize": "normalize=false",
    "dropout": " normalize = true ; dropout=0.2 ",
    "layers": "n_intermediate_layers=2;tanh=-tanh;normalize=1",
    "clip": "clip_min=0.5;clip_max=2;normalize=off",
    "temperature": "temperature=0.5;negative_weight=1e-3;reduce=sum",
    "learnable": "temperature=2;min_temperature=none",
    "duplicate": "a=1;a=2",
    "malformed": ";;=x;b",
    "numbers": "temperature=inf;dropout=-0;n_intermediate_layers=0x10",
}


def read(path):
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def write(path, header, payload):
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + payload)


def write_framed(path, header, payload):
    """The `weights` target's second form: header JSON, NUL, tensor bytes (the length is added)."""
    path.write_bytes(json.dumps(header, separators=(",", ":")).encode() + b"\0" + payload)


def with_cebra_metadata(header, name, options=""):
    header = dict(header)
    header["__metadata__"] = {
        "format": "pt",
        "cebra.architecture": name,
        "cebra.num_neurons": "7",
        "cebra.num_units": "12",
        "cebra.num_output": "3",
        "cebra.options": options,
        "cebra.version": "0.1.0",
    }
    return header


def main():
    (seeds / "options").mkdir(parents=True, exist_ok=True)
    (seeds / "weights").mkdir(parents=True, exist_ok=True)
    for name, text in OPTIONS.items():
        (seeds / "options" / name).write_bytes(text.encode())
    for name, options in [("offset10-model", ""), ("offset1-model-mse-v2-3layers", "")]:
        src = fixtures / f"{name}.safetensors"
        header, payload = read(src)
        (seeds / "weights" / f"{name}.safetensors").write_bytes(src.read_bytes())
        write(seeds / "weights" / f"{name}.cebra.safetensors", with_cebra_metadata(header, name, options), payload)
        write_framed(seeds / "weights" / f"{name}.cebra.framed", with_cebra_metadata(header, name, options), payload)
    # Tiny files: one scalar of each float dtype, an empty tensor, metadata only.
    write(seeds / "weights" / "dtypes.safetensors", {
        "a": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]},
        "b": {"dtype": "F64", "shape": [1], "data_offsets": [4, 12]},
        "c": {"dtype": "F16", "shape": [1, 1], "data_offsets": [12, 14]},
        "d": {"dtype": "BF16", "shape": [1], "data_offsets": [14, 16]},
        "e": {"dtype": "F32", "shape": [0, 3], "data_offsets": [16, 16]},
    }, struct.pack("<fd", 1.5, -2.0) + b"\x00\x3c\x80\x3f")
    write(seeds / "weights" / "metadata-only.safetensors", {"__metadata__": {
        "cebra.architecture": "offset1-model-mse-v2-3layers", "cebra.num_neurons": "7",
        "cebra.num_units": "12", "cebra.num_output": "3", "cebra.options": "n_intermediate_layers=2"}}, b"")


if __name__ == "__main__":
    main()
