#!/usr/bin/env python3
"""Fixtures for `cebra decode`: the reference `cebra.KNNDecoder` on fixed embeddings.

Writes ``tests/fixtures/decode/decode.npz`` (written by numpy's ``savez_compressed``, so the CLI's
``.npz`` reader is checked against numpy's own files) with float32 embeddings, float64 continuous
labels (2 columns) and int64 classes, and ``tests/fixtures/decode/decode.json`` with the reference's
R² and predictions for k = 3 and 5, cosine and euclidean. Deterministic (fixed seed, fixed zip
timestamps). Needs the reference (cebra 0.6.1):

    /work/venv/bin/python tools/reference/make_decode_fixtures.py
"""
import argparse
import io
import json
import zipfile
from pathlib import Path

import numpy as np

import cebra


def savez_deterministic(path, arrays):
    """np.savez_compressed, but with fixed member timestamps so the bytes do not change per run."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, buffer.getvalue())


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[2] / "tests/fixtures/decode"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    rng = np.random.RandomState(0)
    # A 1-D latent on a curve in 4-D, plus noise: decodable but not perfectly.
    def sample(n):
        latent = rng.uniform(0, 1, size=n)
        emb = np.stack([np.cos(3 * latent), np.sin(3 * latent), latent - 0.5, np.cos(7 * latent)], axis=1)
        emb = emb + 0.15 * rng.randn(n, 4)
        labels = np.stack([latent, np.sin(2 * latent)], axis=1).astype(np.float64)
        classes = np.minimum((latent * 4).astype(np.int64), 3)
        return emb.astype(np.float32), labels, classes

    train_embedding, train_labels, train_classes = sample(300)
    test_embedding, test_labels, test_classes = sample(80)
    savez_deterministic(out / "decode.npz", {
        "train_embedding": train_embedding, "train_labels": train_labels, "train_classes": train_classes,
        "test_embedding": test_embedding, "test_labels": test_labels, "test_classes": test_classes,
    })

    cases = []
    for k in (3, 5):
        for metric in ("cosine", "euclidean"):
            for target in ("labels", "classes"):
                train_y = train_labels if target == "labels" else train_classes
                test_y = test_labels if target == "labels" else test_classes
                decoder = cebra.KNNDecoder(n_neighbors=k, metric=metric)
                decoder.fit(train_embedding, train_y)
                cases.append({
                    "k": k,
                    "metric": metric,
                    "target": target,
                    "r2": float(decoder.score(test_embedding, test_y)),
                    "predictions": np.asarray(decoder.predict(test_embedding)).ravel().tolist(),
                })
    with open(out / "decode.json", "w") as f:
        json.dump({"generator": "tools/reference/make_decode_fixtures.py", "cebra": cebra.__version__, "cases": cases},
                  f, indent=1)
        f.write("\n")
    print(f"wrote {out}/decode.npz and decode.json ({len(cases)} cases)")


if __name__ == "__main__":
    main()
