"""Reference side of ``benches/models.rs``: eval-mode forward latency under ``torch.no_grad()``.

Run by the Rust bench when ``CEBRA_REFERENCE_PYTHON`` is set; prints ``label<TAB>median_us<TAB>runs``
rows (labels identical to the Rust ones) and ``#`` info lines. Standalone::

    python tools/reference/bench_models.py --name offset10-model --cases 1x10,512x10
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
    p.add_argument("--name", default="offset10-model")
    p.add_argument("--cases", default="1x10,512x10,1x1009", help="batch x time, comma-separated")
    p.add_argument("--neurons", type=int, default=50)
    p.add_argument("--units", type=int, default=32)
    p.add_argument("--output", type=int, default=8)
    args = p.parse_args()
    bench_common.setup(args)
    import cebra.models
    torch.manual_seed(0)
    model = cebra.models.init(args.name, num_neurons=args.neurons, num_units=args.units,
                              num_output=args.output)
    model.eval()
    for case in args.cases.split(","):
        batch, time = map(int, case.split("x"))
        x = torch.randn(batch, args.neurons, time)

        def forward():
            with torch.no_grad():
                return model(x)

        label = f"{args.name} forward batch={batch} T={time}"
        bench_common.row(label, bench_common.measure(args, forward))


if __name__ == "__main__":
    main()
