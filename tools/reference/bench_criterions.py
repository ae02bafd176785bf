"""Reference side of ``benches/criterions.rs``: the same criterion work, timed by the same rule.

Run by the Rust bench when ``CEBRA_REFERENCE_PYTHON`` is set; prints ``label<TAB>median_us<TAB>runs``
rows (labels identical to the Rust ones) and ``#`` info lines. Standalone::

    python tools/reference/bench_criterions.py --kinds nce --n 512 --d 8

``--only forward+backward`` skips the forward-only rows; ``--peak-rss`` ends with a
``# peak_rss_kb=N`` line (the process's peak resident memory, for one configuration per process).
"""
import os
import sys
import warnings

warnings.filterwarnings("ignore")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

import bench_common  # noqa: E402

KINDS = ["fixed-cosine-infonce", "fixed-euclidean-infonce", "learnable-cosine-infonce",
         "learnable-euclidean-infonce", "nce"]


def build(kind):
    import cebra.models.criterions as crit
    classes = {
        "fixed-cosine-infonce": crit.FixedCosineInfoNCE,
        "fixed-euclidean-infonce": crit.FixedEuclideanInfoNCE,
        "learnable-cosine-infonce": crit.LearnableCosineInfoNCE,
        "learnable-euclidean-infonce": crit.LearnableEuclideanInfoNCE,
        "nce": crit.NCE,
    }
    return classes[kind]()


def main():
    p = bench_common.parser(__doc__)
    p.add_argument("--kinds", default=",".join(KINDS))
    p.add_argument("--n", default="512,2048,8192")
    p.add_argument("--d", default="3,8,32")
    p.add_argument("--only", choices=["forward", "forward+backward"], default=None)
    p.add_argument("--peak-rss", action="store_true")
    args = p.parse_args()
    bench_common.setup(args)
    torch.manual_seed(0)
    for kind in args.kinds.split(","):
        criterion = build(kind)
        params = list(criterion.parameters())
        for n in map(int, args.n.split(",")):
            for d in map(int, args.d.split(",")):
                r, pos, neg = (torch.nn.functional.normalize(torch.randn(n, d), dim=1)
                               for _ in range(3))

                def forward():
                    return criterion(r, pos, neg)

                def forward_backward():
                    # As Criterion::backward: fresh leaves, objective, gradients of the inputs
                    # and the learnable temperature, objective value as a Python float.
                    leaves = [t.detach().requires_grad_(True) for t in (r, pos, neg)]
                    loss, _, _ = criterion(*leaves)
                    objective = -loss.mean() if kind == "nce" else loss
                    grads = torch.autograd.grad(objective, leaves + params)
                    return objective.item(), grads

                label = f"{kind} n={n} d={d}"
                if args.only != "forward+backward":
                    bench_common.row(f"{label} forward", bench_common.measure(args, forward))
                if args.only != "forward":
                    bench_common.row(f"{label} forward+backward",
                                     bench_common.measure(args, forward_backward))
    if args.peak_rss:
        import resource
        print(f"# peak_rss_kb={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}", flush=True)


if __name__ == "__main__":
    main()
