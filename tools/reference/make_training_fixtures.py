#!/usr/bin/env python3
"""Reference fixtures for training (issue 8): Adam, replayed solver steps, the kNN decoder.

* ``adam.safetensors``: ``torch.optim.Adam`` (the reference's settings) on two tensors for 4 steps
  with given gradients: ``p{i}_init``, ``grad{k}_p{i}``, ``p{i}_step{k}``.
* ``step-<case>.safetensors``: the reference solver (``cebra.solver.init`` with the solver the
  sklearn API picks: single-session, single-session-hybrid, single-session-full) runs two
  ``solver.step(batch)`` calls on batches whose time indices are given (edge indices included, so
  the window clamping is exercised), from given weights. Tensors: ``data`` (T, N), ``labels``
  (T, C), ``init.<key>`` (weights), ``batch{k}.reference|positive|negative`` (indices as float32),
  ``record{k}`` = (loss, align, uniform, temperature) (hybrid: align/uniform are behaviour + time),
  ``grad0.<key>`` (the gradients of the first step, per parameter name), ``final.<key>`` (weights after both steps), ``final_criterion`` (log inverse temperature, learnable
  criterions). Metadata: the solver options in our `key=value` syntax.
* ``knn.safetensors``: ``cebra.KNNDecoder`` (sklearn) predictions and R² for regression and
  classification, cosine and euclidean.

Deterministic. Usage: python tools/reference/make_training_fixtures.py [--out DIR]
"""
import argparse
import sys
from pathlib import Path

import numpy as np
import torch

import cebra
import cebra.data
import cebra.models
import cebra.solver

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_fixtures import save_fixture  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def f32(x):
    return torch.as_tensor(np.asarray(x), dtype=torch.float32)


def adam_fixture(out):
    g = torch.Generator().manual_seed(0)
    params = [torch.randn(3, 4, generator=g), torch.randn(5, generator=g)]
    tensors = {f"p{i}_init": p.clone() for i, p in enumerate(params)}
    params = [torch.nn.Parameter(p.clone()) for p in params]
    opt = torch.optim.Adam(params, lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False)
    for k in range(4):
        opt.zero_grad()
        for i, p in enumerate(params):
            grad = torch.randn(p.shape, generator=g) * (10.0 ** (k - 2))
            tensors[f"grad{k}_p{i}"] = grad.clone()
            p.grad = grad
        opt.step()
        for i, p in enumerate(params):
            tensors[f"p{i}_step{k}"] = p.detach().clone()
    save_fixture(tensors, out / "adam.safetensors", {"learning_rate": "0.01"})


def fill_weights(model):
    """The fingerprint rule of make_fixtures: w[i] = 0.3 sin(1.3 i + 0.7 j + 0.5), scaled down."""
    with torch.no_grad():
        for j, (key, value) in enumerate(model.state_dict().items()):
            i = torch.arange(value.numel(), dtype=torch.float64)
            value.copy_((0.3 * torch.sin(1.3 * i + 0.7 * j + 0.5)).reshape(value.shape).float())


CASES = [
    # name, architecture, (N, U, O), batch size (0 = full), distance, temperature mode, temperature, hybrid, lr
    ("cosine", "offset10-model", (6, 8, 3), 8, "cosine", "constant", 0.5, False, 0.01),
    ("learnable", "offset10-model", (6, 8, 3), 8, "cosine", "auto", 1.0, False, 0.05),
    ("euclidean", "offset10-model-mse", (6, 8, 3), 8, "euclidean", "constant", 1.0, False, 0.01),
    ("feedforward", "offset1-model", (6, 8, 3), 8, "cosine", "constant", 1.0, False, 0.01),
    ("hybrid", "offset10-model", (6, 8, 4), 8, "cosine", "constant", 1.0, True, 0.01),
    ("fullbatch", "offset10-model", (6, 8, 3), 0, "cosine", "constant", 1.0, False, 0.01),
]
T = 48


def criterion_for(distance, mode, temperature):
    if distance == "cosine":
        if mode == "constant":
            return cebra.models.criterions.FixedCosineInfoNCE(temperature=temperature)
        return cebra.models.criterions.LearnableCosineInfoNCE(temperature=temperature, min_temperature=0.1)
    if mode == "constant":
        return cebra.models.criterions.FixedEuclideanInfoNCE(temperature=temperature)
    return cebra.models.criterions.LearnableEuclideanInfoNCE(temperature=temperature, min_temperature=0.1)


def step_fixture(out, case):
    name, arch, (n_in, units, n_out), batch_size, distance, mode, temperature, hybrid, lr = case
    t = torch.arange(T, dtype=torch.float32)
    c = torch.arange(n_in, dtype=torch.float32)
    data = torch.sin(0.37 * t[:, None] * (1 + 0.1 * c[None, :]) + 0.5 * c[None, :])
    labels = torch.stack([torch.sin(0.2 * t), torch.cos(0.13 * t)], dim=1)
    model = cebra.models.init(arch, num_neurons=n_in, num_units=units, num_output=n_out)
    fill_weights(model)
    tensors = {"data": data, "labels": labels}
    tensors.update({f"init.{k}": v.clone() for k, v in model.state_dict().items()})
    criterion = criterion_for(distance, mode, temperature)
    optimizer = torch.optim.Adam(list(model.parameters()) + list(criterion.parameters()), lr=lr)
    variant = "single-session-hybrid" if hybrid else ("single-session-full" if batch_size == 0 else "single-session")
    solver = cebra.solver.init(variant, model=model, criterion=criterion, optimizer=optimizer, tqdm_on=False)
    dataset = cebra.data.TensorDataset(data, continuous=labels)
    offset = model.get_offset()
    dataset.configure_for(model)
    if batch_size == 0:
        solver.offset = offset
        solver.neural = dataset.neural.T[None]
        solver._mode = "convolutional"
    rng = np.random.default_rng(len(name))
    model.train()
    for k in range(2):
        if batch_size == 0:
            reference = np.arange(offset.left, T - len(offset) - 1)
            negative = rng.permutation(reference)
            # Positives anywhere, including rows past the end (replaced by their reference) and
            # before `left` (Python's negative indexing).
            positive = rng.integers(0, T, len(reference))
            batch = cebra.data.Batch(reference=torch.as_tensor(reference), positive=torch.as_tensor(positive),
                                     negative=torch.as_tensor(negative))
        else:
            n = batch_size
            reference = rng.integers(0, T, n)
            reference[:2] = [0, T - 1]  # clamped windows at both edges
            positive = rng.integers(0, T, 2 * n if hybrid else n)
            negative = rng.integers(0, T, n)
            index = cebra.data.BatchIndex(reference=torch.as_tensor(reference), positive=torch.as_tensor(positive),
                                          negative=torch.as_tensor(negative))
            batch = dataset.load_batch(index)
        stats = solver.step(batch)
        if k == 0:
            # The gradients of the first step (still in .grad after optimizer.step()).
            grad_model = solver.model.module if hybrid else solver.model
            for key, param in grad_model.named_parameters():
                tensors[f"grad0.{key}"] = param.grad.detach().clone()
        if hybrid:
            align = stats["behavior_pos"] + stats["time_pos"]
            uniform = stats["behavior_neg"] + stats["time_neg"]
            loss = stats["behavior_total"] + stats["time_total"]
            temp = criterion.temperature
        else:
            align, uniform, loss, temp = stats["pos"], stats["neg"], stats["total"], stats["temperature"]
        tensors[f"batch{k}.reference"] = f32(reference)
        tensors[f"batch{k}.positive"] = f32(positive)
        tensors[f"batch{k}.negative"] = f32(negative)
        tensors[f"record{k}"] = f32([loss, align, uniform, float(temp)])
    final = (solver.model.module if hybrid else solver.model).state_dict()
    tensors.update({f"final.{k}": v.clone() for k, v in final.items()})
    if mode == "auto":
        tensors["final_criterion"] = criterion.log_inverse_temperature.detach().clone().reshape(1)
    options = (f"model_architecture={arch};num_hidden_units={units};output_dimension={n_out};batch_size={batch_size};"
               f"distance={distance};temperature_mode={mode};temperature={temperature};min_temperature=0.1;"
               f"learning_rate={lr};hybrid={'true' if hybrid else 'false'};conditional=time_delta;seed=0")
    save_fixture(tensors, out / f"step-{name}.safetensors", {"options": options})


def knn_fixture(out):
    rng = np.random.default_rng(5)
    train = rng.normal(size=(300, 4)).astype(np.float32)
    test = rng.normal(size=(80, 4)).astype(np.float32)
    y_train = np.stack([np.sin(train[:, 0]) + train[:, 1], train[:, 2] ** 2], axis=1).astype(np.float32)
    y_test = np.stack([np.sin(test[:, 0]) + test[:, 1], test[:, 2] ** 2], axis=1).astype(np.float32)
    c_train = (train[:, 0] > 0).astype(np.int64) + 2 * (train[:, 1] > 0.5)
    c_test = (test[:, 0] > 0).astype(np.int64) + 2 * (test[:, 1] > 0.5)
    tensors = {"train": f32(train), "test": f32(test), "y_train": f32(y_train), "y_test": f32(y_test),
               "c_train": f32(c_train), "c_test": f32(c_test)}
    for metric in ["cosine", "euclidean"]:
        for k in [1, 3, 7]:
            reg = cebra.KNNDecoder(n_neighbors=k, metric=metric).fit(train, y_train)
            tensors[f"{metric}.k{k}.regression"] = f32(reg.predict(test))
            tensors[f"{metric}.k{k}.regression_r2"] = f32([reg.score(test, y_test)])
            cls = cebra.KNNDecoder(n_neighbors=k, metric=metric).fit(train, c_train)
            tensors[f"{metric}.k{k}.classification"] = f32(cls.predict(test))
            tensors[f"{metric}.k{k}.classification_r2"] = f32([cls.score(test, c_test)])
    save_fixture(tensors, out / "knn.safetensors")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "fixtures" / "training")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    adam_fixture(args.out)
    for case in CASES:
        step_fixture(args.out, case)
    knn_fixture(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
