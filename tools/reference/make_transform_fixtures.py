#!/usr/bin/env python3
"""Reference fixtures for whole-recording transform (and, through it, streaming).

For each model below, loads the committed weights ``tests/fixtures/models/<name>.safetensors``
(N=7, U=12, O=3, written by make_fixtures.py) into the reference model and records what the
reference solver's ``transform`` (the code behind ``cebra.CEBRA.transform``) returns for one seeded
recording: padded and unpadded, in one pass and batched with a short last chunk. One wider model,
``offset10-model`` with N=120, U=32, O=8 (the benchmark size), gets its own weights file.

Writes ``tests/fixtures/transform/<case>.safetensors`` with tensors ``input`` (T, N), ``padded``,
``unpadded``, and where the reference can batch: ``batched_padded``/``batched_unpadded``; metadata
``name``, ``batch_size``, ``weights`` (the weights file, relative to tests/fixtures). Deterministic.

Usage: python tools/reference/make_transform_fixtures.py [--out DIR]
"""
import argparse
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

import cebra
import cebra.models
import cebra.solver

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_fixtures import save_fixture  # noqa: E402  (deterministic safetensors writer)

ROOT = Path(__file__).resolve().parents[2]
T = 64
BATCH_SIZE = 20  # 64 steps: chunks [0,20) [20,40) and a merged last chunk [40,64)
MODELS = [
    "offset10-model",
    "offset10-model-mse",
    "offset5-model",
    "offset15-model",
    "offset36-model-more-dropout",
    "offset10-model-mse-tanh",
    "offset1-model",
    "offset1-model-v4",
    "offset1-model-v5",
    "offset1-model-mse-clip-5-5",
    "offset1-model-mse-resnet-3layers-tanh",
    "offset1-model-mse-v2-2layers",
    "offset40-model-4x-subsample",
    "offset20-model-4x-subsample",
]
WIDE = ("offset10-model", 120, 32, 8)


def solver_for(model, num_neurons):
    """A single-session solver around `model`, marked fitted, as CEBRA.transform uses it."""
    criterion = cebra.models.InfoNCE()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    solver = cebra.solver.init("single-session", model=model, criterion=criterion, optimizer=optimizer,
                               tqdm_on=False)
    solver.n_features = num_neurons
    return solver


def record(name, model, num_neurons, seed, weights, out_dir, case):
    model.eval()
    solver = solver_for(model, num_neurons)
    x = torch.randn((T, num_neurons), generator=torch.Generator().manual_seed(seed), dtype=torch.float32)
    tensors = {"input": x}
    with torch.no_grad():
        tensors["padded"] = solver.transform(x, pad_before_transform=True)
        tensors["unpadded"] = solver.transform(x, pad_before_transform=False)
        meta = {"name": name, "weights": weights, "batch_size": str(BATCH_SIZE), "input_seed": str(seed)}
        for pad, key in ((True, "batched_padded"), (False, "batched_unpadded")):
            try:
                tensors[key] = solver.transform(x, pad_before_transform=pad, batch_size=BATCH_SIZE)
            except ValueError as e:  # the reference cannot batch every case (CEBRA issue #199)
                meta[key + "_error"] = str(e)
    save_fixture(tensors, out_dir / f"{case}.safetensors", meta)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "tests" / "fixtures"))
    args = ap.parse_args()
    fixtures = Path(args.out)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    out_dir = fixtures / "transform"
    for i, name in enumerate(MODELS):
        model = cebra.models.init(name, num_neurons=7, num_units=12, num_output=3)
        model.load_state_dict(load_file(str(fixtures / "models" / f"{name}.safetensors")))
        record(name, model, 7, 2000 + i, f"models/{name}.safetensors", out_dir, name)
    name, n, u, o = WIDE
    torch.manual_seed(77)
    model = cebra.models.init(name, num_neurons=n, num_units=u, num_output=o)
    weights = f"transform/{name}-wide.weights.safetensors"
    save_fixture(dict(model.state_dict()), fixtures / weights,
                 {"name": name, "num_neurons": str(n), "num_units": str(u), "num_output": str(o)})
    record(name, model, n, 3000, weights, out_dir, f"{name}-wide")


if __name__ == "__main__":
    main()
