"""Reference side of ``benches/transform.rs``: the reference's ``transform`` (the solver code behind
``cebra.CEBRA.transform``, padded, one pass) of ``offset10-model`` with 120 neurons, 32 units and 8
outputs on a row-major recording. Prints ``label<TAB>median_us<TAB>runs`` rows and ``#`` lines::

    python tools/reference/bench_transform.py --steps 100000
"""
import os
import sys
import warnings

warnings.filterwarnings("ignore")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

import bench_common  # noqa: E402


def main():
    p = bench_common.parser(__doc__)
    p.add_argument("--steps", type=int, default=100000)
    args = p.parse_args()
    bench_common.setup(args)
    import cebra.models
    import cebra.solver
    torch.manual_seed(0)
    model = cebra.models.init("offset10-model", num_neurons=120, num_units=32, num_output=8).eval()
    solver = cebra.solver.init("single-session", model=model, criterion=cebra.models.InfoNCE(),
                               optimizer=torch.optim.Adam(model.parameters()), tqdm_on=False)
    solver.n_features = 120
    x = torch.rand(args.steps, 120) * 2 - 1

    def run():
        return solver.transform(x, pad_before_transform=True)

    bench_common.row(f"offset10-model transform T={args.steps} reference", bench_common.measure(args, run))


if __name__ == "__main__":
    main()
