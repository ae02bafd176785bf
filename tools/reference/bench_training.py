"""Reference side of ``benches/training.rs``: one training iteration of ``cebra.CEBRA`` as its ``fit``
runs it (``ContinuousDataLoader`` with ``time_delta``, ``SingleSessionSolver.step``), for
``offset10-model`` with 120 neurons, 32 units, 8 outputs, a 3-D continuous label, T = 10000 steps.
Rows: the sampler (``loader.get_indices`` + ``dataset.load_batch``), the solver step, and a whole
iteration, per batch size. Prints ``label<TAB>median_us<TAB>runs`` rows and ``#`` lines::

    python tools/reference/bench_training.py --batch-sizes 512,2048
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
    p.add_argument("--batch-sizes", default="512,2048")
    p.add_argument("--steps", type=int, default=10000)
    args = p.parse_args()
    bench_common.setup(args)
    import cebra.data
    import cebra.models
    import cebra.solver
    torch.manual_seed(0)
    t = torch.arange(args.steps, dtype=torch.float32)
    labels = torch.stack([torch.sin(t * 0.01), torch.cos(t * 0.013), torch.sin(t * 0.007 + 1)], 1)
    neural = torch.rand(args.steps, 120) * 2 - 1
    for batch_size in [int(b) for b in args.batch_sizes.split(",")]:
        model = cebra.models.init("offset10-model", num_neurons=120, num_units=32, num_output=8)
        criterion = cebra.models.criterions.FixedCosineInfoNCE(temperature=1.0)
        optimizer = torch.optim.Adam(list(model.parameters()) + list(criterion.parameters()), lr=3e-4)
        solver = cebra.solver.init("single-session", model=model, criterion=criterion, optimizer=optimizer,
                                   tqdm_on=False)
        dataset = cebra.data.TensorDataset(neural, continuous=labels)
        dataset.configure_for(model)
        loader = cebra.data.ContinuousDataLoader(dataset, num_steps=1, batch_size=batch_size,
                                                 conditional="time_delta", time_offset=1)
        model.train()
        batch = [None]

        def sample():
            batch[0] = dataset.load_batch(loader.get_indices(batch_size))

        def step():
            solver.step(batch[0])

        def iteration():
            sample()
            step()

        label = f"offset10-model batch={batch_size}"
        bench_common.row(f"{label} sampler", bench_common.measure(args, sample))
        bench_common.row(f"{label} step", bench_common.measure(args, step))
        bench_common.row(f"{label} iteration", bench_common.measure(args, iteration))


if __name__ == "__main__":
    main()
