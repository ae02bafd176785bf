#!/usr/bin/env python3
"""Training side by side: the reference ``cebra.CEBRA`` and libcebra's ``cebra fit`` on the same data.

Not part of CI (it needs the reference: cebra 0.6.1 + torch). The recording is the demo's synthetic
place-cell recording, written by ``cebra synth`` (the same generator as ``make demo``): 120 neurons,
labels (time, 3) = position, running right, running left. Both fit an ``offset10-model`` (32 hidden
units, 8 outputs, time_delta positives, constant temperature 1, cosine) on the first 80 % of the time
steps, with the same batch size, iterations, learning rate and number of threads; then each embeds
the training and the held-out parts, a kNN decoder (``cebra.KNNDecoder``, k = 3, cosine, the
reference's, for both) is fitted on the training part and scored (R², the position and the two
direction columns) on the held-out part. Printed: final loss (mean of the last 50 steps), decoding R²
and iterations per second (fit time only).

    /work/venv/bin/python tools/reference/compare_training.py --iterations 200
    /work/venv/bin/python tools/reference/compare_training.py --batch-sizes 512 2048 --iterations 2000
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def default_binary():
    root = Path(__file__).resolve().parents[2]
    target = Path(os.environ.get("CARGO_TARGET_DIR", root / "target"))
    return str(target / "release" / "cebra")


def fit_reference(args, batch_size, x_train, y_train, x_test):
    import cebra
    import torch

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    model = cebra.CEBRA(
        model_architecture="offset10-model",
        batch_size=batch_size,
        learning_rate=args.learning_rate,
        temperature=1.0,
        output_dimension=8,
        num_hidden_units=32,
        max_iterations=args.iterations,
        conditional="time_delta",
        distance="cosine",
        device="cpu",
        verbose=False,
    )
    start = time.perf_counter()
    model.fit(x_train, y_train)
    seconds = time.perf_counter() - start
    loss = np.asarray([float(v) for v in model.solver_.history])
    return loss, seconds, model.transform(x_train), model.transform(x_test)


def fit_libcebra(args, batch_size, work, cut):
    """`cebra fit` on the training part (written as .npy), then `cebra transform` of both parts."""
    data = np.load(work / "neural.npy")
    labels = np.load(work / "behaviour.npy")
    np.save(work / "x_train.npy", data[:cut])
    np.save(work / "x_test.npy", data[cut:])
    np.save(work / "y_train.npy", labels[:cut])
    model = work / f"model-{batch_size}.safetensors"
    csv = work / f"loss-{batch_size}.csv"
    command = [
        args.cebra, "fit", str(work / "x_train.npy"), "--continuous", str(work / "y_train.npy"),
        "--model-architecture", "offset10-model", "--batch-size", str(batch_size),
        "--learning-rate", str(args.learning_rate), "--temperature", "1", "--output-dimension", "8",
        "--num-hidden-units", "32", "--max-iterations", str(args.iterations), "--conditional", "time_delta",
        "--distance", "cosine", "--seed", str(args.seed), "--threads", str(args.threads),
        "--loss-csv", str(csv), "-q", "-o", str(model),
    ]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    # "fitted N steps in S s (R it/s), ..." — the fit alone, as timed for the reference.
    seconds = float(out.split(" in ", 1)[1].split(" s", 1)[0])
    loss = np.loadtxt(csv, delimiter=",", skiprows=1, ndmin=2)[:, 1]
    embeddings = []
    for part in ("x_train", "x_test"):
        dest = work / f"{part}-emb-{batch_size}.npy"
        subprocess.run([args.cebra, "transform", str(model), str(work / f"{part}.npy"), "-o", str(dest), "-q"],
                       check=True)
        embeddings.append(np.load(dest))
    return loss, seconds, embeddings[0], embeddings[1]


def decode(train_emb, y_train, test_emb, y_test):
    import cebra

    decoder = cebra.KNNDecoder(n_neighbors=3, metric="cosine")
    decoder.fit(train_emb, y_train)
    return float(decoder.score(test_emb, y_test))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[512, 2048])
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--timesteps", type=int, default=10000)
    parser.add_argument("--neurons", type=int, default=120)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads for both (default: torch's choice)")
    parser.add_argument("--cebra", default=default_binary(), help="the cebra binary (default: the release build)")
    args = parser.parse_args()

    import torch

    if args.threads is None:
        args.threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    if not Path(args.cebra).exists():
        sys.exit(f"{args.cebra}: no such binary; run `make build` or pass --cebra")

    with tempfile.TemporaryDirectory(prefix="cebra-compare-") as tmp:
        work = Path(tmp)
        subprocess.run([args.cebra, "synth", "-o", str(work), "--timesteps", str(args.timesteps),
                        "--neurons", str(args.neurons), "--seed", str(args.seed)], check=True, capture_output=True)
        data = np.load(work / "neural.npy")
        labels = np.load(work / "behaviour.npy")
        cut = int(round(0.8 * len(data)))
        x_train, x_test, y_train, y_test = data[:cut], data[cut:], labels[:cut], labels[cut:]
        print(f"synthetic place cells: {data.shape[0]} steps x {data.shape[1]} neurons, labels {labels.shape} "
              f"(position, right, left); fit on the first {cut}, decode the last {len(data) - cut}")
        print(f"offset10-model, 32 units, 8 outputs, time_delta, temperature 1, learning rate {args.learning_rate}, "
              f"{args.iterations} iterations, {args.threads} threads, seed {args.seed}")
        print()
        header = f"{'batch':>6} {'implementation':<16} {'final loss':>11} {'R2 (kNN)':>9} {'it/s':>8} {'fit s':>8}"
        print(header)
        print("-" * len(header))
        for batch_size in args.batch_sizes:
            rows = []
            loss, seconds, tr, te = fit_reference(args, batch_size, x_train, y_train, x_test)
            rows.append(("cebra 0.6.1", loss, seconds, decode(tr, y_train, te, y_test)))
            loss, seconds, tr, te = fit_libcebra(args, batch_size, work, cut)
            rows.append(("libcebra", loss, seconds, decode(tr, y_train, te, y_test)))
            for name, loss, seconds, r2 in rows:
                tail = loss[-50:].mean()
                print(f"{batch_size:>6} {name:<16} {tail:>11.4f} {r2:>9.4f} {len(loss) / seconds:>8.1f} {seconds:>8.1f}",
                      flush=True)


if __name__ == "__main__":
    main()
