#!/usr/bin/env python3
"""Round trip of tools/convert_cebra_checkpoint.py through the reference (not run by CI).

1. Trains ``cebra.CEBRA(model_architecture="offset10-model", ...)`` briefly on a seeded synthetic
   recording and saves it with ``.save("model.pt")``.
2. Converts it to our .safetensors, converts that back to a checkpoint, loads it with
   ``cebra.CEBRA.load`` and checks that its ``transform`` equals the original's.
3. Checks that a multi-session checkpoint and an unknown architecture are refused with a message.
4. With ``--write-fixture``, writes the converted file and the reference transform of a seeded
   recording to tests/fixtures/checkpoint/ (the Rust and C tests load and compare them).

With ``--libcebra PATH/TO/cebra`` (our CLI) it also runs ``cebra transform`` on the converted file
and compares with the reference.

Usage: python tools/reference/check_converter.py [--write-fixture] [--libcebra target/release/cebra]
"""
import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "tools" / "reference"))
import convert_cebra_checkpoint as conv  # noqa: E402
import cebra  # noqa: E402
from make_fixtures import save_fixture  # noqa: E402


def recording(seed, t, n):
    rng = np.random.default_rng(seed)
    phase = np.linspace(0, 8 * np.pi, t)[:, None]
    return (np.sin(phase + rng.uniform(0, 2 * np.pi, (1, n))) + 0.3 * rng.standard_normal((t, n))).astype(np.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--write-fixture", action="store_true")
    ap.add_argument("--libcebra")
    args = ap.parse_args()
    torch.manual_seed(0)
    np.random.seed(0)
    torch.set_num_threads(1)
    x = recording(1, 600, 9)
    est = cebra.CEBRA(model_architecture="offset10-model", num_hidden_units=16, output_dimension=4,
                      batch_size=64, max_iterations=20, device="cpu", verbose=False)
    est.fit(x)
    probe = recording(2, 80, 9)
    want = est.transform(probe)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        est.save(tmp / "model.pt")
        conv.to_safetensors(str(tmp / "model.pt"), str(tmp / "model.safetensors"))
        conv.to_checkpoint(str(tmp / "model.safetensors"), str(tmp / "back.pt"))
        back = cebra.CEBRA.load(str(tmp / "back.pt"))
        got = back.transform(probe)
        assert np.array_equal(got, want), np.abs(got - want).max()
        assert back.get_params()["num_hidden_units"] == 16 and back.get_params()["batch_size"] == 64
        print("round trip: transform of the reloaded checkpoint equals the original's")

        # Refusals.
        multi = cebra.CEBRA(model_architecture="offset10-model", num_hidden_units=8, output_dimension=3,
                            batch_size=32, max_iterations=2, device="cpu", verbose=False)
        multi.fit([recording(3, 100, 5), recording(4, 100, 6)], [np.arange(100.0)[:, None]] * 2)
        multi.save(tmp / "multi.pt")
        try:
            conv.to_safetensors(str(tmp / "multi.pt"), str(tmp / "multi.safetensors"))
            raise AssertionError("multi-session checkpoint accepted")
        except conv.ConversionError as e:
            assert "multi-session" in str(e), e
            print("refused:", e)
        ckpt = torch.load(tmp / "model.pt", weights_only=False)
        ckpt["args"]["model_architecture"] = "my-own-model"
        torch.save(ckpt, tmp / "unknown.pt")
        try:
            conv.to_safetensors(str(tmp / "unknown.pt"), str(tmp / "unknown.safetensors"))
            raise AssertionError("unknown architecture accepted")
        except conv.ConversionError as e:
            assert "my-own-model" in str(e), e
            print("refused:", e)

        if args.libcebra:
            np.save(tmp / "probe.npy", probe)
            subprocess.run([args.libcebra, "transform", str(tmp / "model.safetensors"), str(tmp / "probe.npy"),
                            "-o", str(tmp / "out.npy")], check=True)
            ours = np.load(tmp / "out.npy")
            diff = np.abs(ours - want).max()
            assert diff <= 1e-5, diff
            print(f"libcebra CLI transform of the converted file: max |diff| {diff:.2e}")

        if args.write_fixture:
            out = ROOT / "tests" / "fixtures" / "checkpoint"
            out.mkdir(parents=True, exist_ok=True)
            (out / "offset10-model.safetensors").write_bytes((tmp / "model.safetensors").read_bytes())
            save_fixture({"input": torch.from_numpy(probe), "padded": torch.from_numpy(want),
                          "unpadded": torch.from_numpy(est.solver_.transform(torch.from_numpy(probe),
                                                                             pad_before_transform=False).numpy())},
                         out / "offset10-model.transform.safetensors", {"source": "check_converter.py"})
            print(f"wrote {out}")


if __name__ == "__main__":
    main()
