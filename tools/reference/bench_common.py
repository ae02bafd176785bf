"""Timing rule shared by the reference benches (the same as ``benches/common/mod.rs``).

One untimed warm-up call, then timed calls until ``budget_ms`` of timed calls are spent and at least
``min_runs`` calls were timed (at most ``max_runs``); the median in µs is reported.
"""
import argparse
import statistics
import time

import torch


def parser(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--budget-ms", type=float, default=400.0)
    p.add_argument("--min-runs", type=int, default=1)
    p.add_argument("--max-runs", type=int, default=10000)
    p.add_argument("--threads", type=int, default=1)
    return p


def setup(args):
    torch.set_num_threads(args.threads)
    import cebra
    print(f"# torch {torch.__version__}, cebra {cebra.__version__}, "
          f"torch threads = {torch.get_num_threads()}", flush=True)


def measure(args, f):
    f()
    times, spent = [], 0.0
    while len(times) < args.max_runs and (len(times) < max(args.min_runs, 1)
                                          or spent < args.budget_ms * 1e3):
        start = time.perf_counter()
        f()
        us = (time.perf_counter() - start) * 1e6
        spent += us
        times.append(us)
    return statistics.median(times), len(times)


def row(label, result):
    us, runs = result
    print(f"{label}\t{us}\t{runs}", flush=True)
