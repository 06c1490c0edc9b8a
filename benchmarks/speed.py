"""Speed benchmark: our NumPy training against PyTorch on the CPU, side by side.

    python benchmarks/speed.py            # the report's 9,000 steps, then the gradient check
    python benchmarks/speed.py --steps 1000 --skip-gradcheck

For the 3-layer and 9-layer BN networks it trains, on the same data, with the
same batches, learning rates and float32:
  - this package (helpers.core.training.train, evaluation excluded: train_seconds),
    on its fast path (helpers/core/fast.py) and on its textbook path (--textbook),
  - an equivalent PyTorch network (Linear, BatchNorm1d, ReLU; SGD with the L2
    term as weight decay on W only),
  - and the bare matrix products one step needs (every layer's forward H W,
    backward H^T dS and, above layer 1, dS W^T), on the same shapes and with
    the same calls (np.dot) as the package: the floor.
Each of --rounds rounds measures both networks in turn, the three runs of a
network one after the other, each in a process of its own. The medians over
the rounds are reported with the range of the ratios, and the best round of
each kind: the machine is shared, and a process now and then runs at up to
twice its usual time per step.
It prints ms per step and the ratios, then where a step's time goes (gathering
the batch, forward pass and loss, backward pass, update), what augmenting each
mini-batch (as train() does it) adds to a step of the 3-layer network,
as a ratio to the plain step measured in the same process, times the full
centered-difference gradient check of the report's largest case, measures the
peak memory of one full training run (`python -m helpers train` in a child
started first), and writes everything to benchmarks/results/speed.json.
Timings on a shared machine are noisy: compare the ratios, which are measured
in the same run.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from helpers.core.data import find_batches_dir, load_cifar10  # noqa: E402
from helpers.core.gradcheck import check_gradients  # noqa: E402
from helpers.core.layers import BN_EPS  # noqa: E402
from helpers.core.network import init_network  # noqa: E402
from helpers.core.optim import cyclical_eta  # noqa: E402
from helpers.core.config import TrainConfig  # noqa: E402
from helpers.core.training import train  # noqa: E402
from helpers.files import shown_path  # noqa: E402

NETWORKS = {"3-layer BN": (50, 50), "9-layer BN": (50, 30, 20, 20, 10, 10, 10, 10)}
PHASES = ("gather the batch", "forward and loss", "backward", "update")
RATIO_KEYS = ("steps", "numpy_ms_per_step", "torch_ms_per_step", "matmul_floor_ms_per_step",
              "numpy_over_torch", "numpy_over_floor", "textbook_ms_per_step")
TARGETS = {"3-layer BN": {"numpy_over_torch": 0.65, "numpy_over_floor": 2.2},
           "9-layer BN": {"numpy_over_floor": 2.2}}
"""The targets, met by the best rounds (issue 13)."""
AUGMENTATIONS = {
    "flip": dict(flip=True),
    "translate 2": dict(translate=2),
    "translate 4": dict(translate=4),
    "flip + translate 2 (the best model's)": dict(flip=True, translate=2),
    "jitter": dict(brightness=0.1, contrast=0.2),
    "flip + translate 4 + jitter": dict(flip=True, translate=4, brightness=0.1, contrast=0.2),
}
"""The augmentations timed on the 3-layer network, each alone and all together (issue 15)."""
AUGMENT_TARGET = 1.15
"""Augmenting every mini-batch may make a step at most this much slower (best blocks)."""
AUGMENT_BLOCK = 250
"""Steps per block: the plain loop and the augmented ones take turns, a block each."""


def numpy_ms_per_step(config, cifar):
    result = train(config, cifar.train, cifar.val, progress=False)
    return 1000 * result.train_seconds / result.steps, result.steps


def numpy_phases_ms(config, cifar, steps=2000):
    """Where a step's time goes on the fast path: ms per step in each phase of
    the training loop, timed apart over `steps` steps (fast.make_step makes
    the same calls; the moving averages of the batch statistics, a few
    microseconds, are left out)."""
    from helpers.core import fast
    from helpers.core.training import training_batches

    X, y = cifar.train.X, cifar.train.y
    net = init_network([X.shape[1], *config.hidden, 10], seed=config.seed, dtype=X.dtype)
    flat = fast.flatten_parameters(net)
    batches = training_batches(config, X, y)
    seconds = np.zeros(len(PHASES))
    for t in range(steps):
        eta = cyclical_eta(t, config.eta_min, config.eta_max, config.n_s)
        clock = [time.perf_counter()]
        X_batch, y_batch = next(batches)
        clock.append(time.perf_counter())
        S, caches, _ = fast.forward(net, X_batch)
        _, P = fast.cross_entropy_forward(S, y_batch)
        clock.append(time.perf_counter())
        fast.backward(net, fast.cross_entropy_backward(P, y_batch, eta), caches, flat.grads)
        clock.append(time.perf_counter())
        fast.sgd_update(flat, eta, config.lam)
        clock.append(time.perf_counter())
        seconds += np.diff(clock)
    return dict(zip(PHASES, 1000 * seconds / steps))


def augmentation_ms(config, cifar, steps):
    """What augmenting each mini-batch adds to a step, as train() does it.

    The training loop (the next batch of training.training_batches, then
    fast.make_step's step) runs plain and with each augmentation of
    AUGMENTATIONS, `steps` steps each, in blocks of AUGMENT_BLOCK steps that
    take turns, so that a disturbed stretch of the machine hits all of them.
    Flips and translations come from the fast path's augmented_minibatches,
    the jitter from augment() on the gathered batch. Per kind: the one-off
    set-up (the first batch: augmented_minibatches copies the training set
    then), ms per step of the loop (median and best of its blocks), ms per
    batch of getting the batch (gather and augmentation; median over its
    blocks), and the ratio to the plain loop, the best blocks' and the
    median of each block's ratio to the plain block just before it; what it
    adds to a step, the best blocks' difference.
    """
    from helpers.core import fast
    from helpers.core.training import training_batches

    X, y = cifar.train.X, cifar.train.y
    mean, std = cifar.mean.astype(X.dtype), cifar.std.astype(X.dtype)
    kinds = {"plain": {}, **AUGMENTATIONS}
    runs, setup_seconds = {}, {}
    for kind, options in kinds.items():
        net = init_network([X.shape[1], *config.hidden, 10], seed=config.seed, dtype=X.dtype)
        batches = training_batches(replace(config, **options), X, y, mean, std)
        begin = time.perf_counter()
        next(batches)
        setup_seconds[kind] = time.perf_counter() - begin
        runs[kind] = (fast.make_step(net, config.lam), batches)
    loop_ms = {kind: [] for kind in kinds}
    batch_ms = {kind: [] for kind in kinds}
    for first in range(0, steps, AUGMENT_BLOCK):
        block = range(first, min(first + AUGMENT_BLOCK, steps))
        for kind, (step, batches) in runs.items():
            batching = 0.0
            start = time.perf_counter()
            for t in block:
                begin = time.perf_counter()
                X_batch, y_batch = next(batches)
                batching += time.perf_counter() - begin
                step(X_batch, y_batch, cyclical_eta(t, config.eta_min, config.eta_max, config.n_s))
            loop_ms[kind].append(1000 * (time.perf_counter() - start) / len(block))
            batch_ms[kind].append(1000 * batching / len(block))
    plain = loop_ms["plain"]
    out = {"steps": steps, "block_steps": AUGMENT_BLOCK, "kinds": {}}
    for kind in kinds:
        out["kinds"][kind] = {
            "options": kinds[kind],
            "setup_seconds": setup_seconds[kind],
            "ms_per_step": statistics.median(loop_ms[kind]),
            "best_block_ms_per_step": min(loop_ms[kind]),
            "batch_ms": statistics.median(batch_ms[kind]),
            "added_ms_per_step": min(loop_ms[kind]) - min(plain),
            "ratio_best_blocks": min(loop_ms[kind]) / min(plain),
            "ratio_median_of_blocks": statistics.median(a / p for a, p in zip(loop_ms[kind], plain)),
        }
    return out


def torch_ms_per_step(config, cifar, steps):
    """The same network and schedule in PyTorch, float32, on the CPU."""
    import torch

    torch.manual_seed(config.seed)
    X = torch.from_numpy(cifar.train.X)
    y = torch.from_numpy(cifar.train.y)
    dims = [X.shape[1], *config.hidden, 10]
    layers = []
    for l in range(1, len(dims)):
        layers.append(torch.nn.Linear(dims[l - 1], dims[l]))
        if l < len(dims) - 1:
            layers += [torch.nn.BatchNorm1d(dims[l], eps=BN_EPS, momentum=1 - config.alpha), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers)
    weights = [p for n, p in model.named_parameters() if n.endswith("weight") and p.dim() == 2]
    others = [p for n, p in model.named_parameters() if not (n.endswith("weight") and p.dim() == 2)]
    opt = torch.optim.SGD(
        [{"params": weights, "weight_decay": 2 * config.lam}, {"params": others, "weight_decay": 0.0}], lr=0.0
    )
    loss_fn = torch.nn.CrossEntropyLoss()
    rng = np.random.default_rng([config.seed, 1])
    n, n_s = len(X), config.n_s
    seconds, t = 0.0, 0
    while t < steps:
        order = torch.from_numpy(rng.permutation(n))
        for j in range(n // config.n_batch):
            if t == steps:
                break
            start = time.perf_counter()
            idx = order[j * config.n_batch : (j + 1) * config.n_batch]
            for group in opt.param_groups:
                group["lr"] = cyclical_eta(t, config.eta_min, config.eta_max, n_s)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(X[idx]), y[idx])
            loss.backward()
            opt.step()
            seconds += time.perf_counter() - start
            t += 1
    return 1000 * seconds / steps


def matmul_floor_ms(hidden, n_batch, d_in, repeats=2000):
    """The bare matrix products of one step, on hot data: forward H W for every
    layer, backward H^T dS for every layer, and dS W^T above the first."""
    rng = np.random.default_rng(0)
    dims = [d_in, *hidden, 10]
    H = [rng.standard_normal((n_batch, d)).astype(np.float32) for d in dims]
    W = [rng.standard_normal((dims[l], dims[l + 1])).astype(np.float32) for l in range(len(dims) - 1)]

    def step():
        for l, w in enumerate(W):
            np.dot(H[l], w)
            np.dot(H[l].T, H[l + 1])
            if l > 0:
                np.dot(H[l + 1], w.T)

    for _ in range(100):
        step()
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    return 1000 * (time.perf_counter() - start) / repeats


def measure_round(hidden, steps, data_dir):
    """One round: the floor, this package, the floor again and PyTorch, one
    after the other, so that they see the same machine and their ratios can be
    compared. Each runs in a process of its own: once PyTorch's OpenMP threads
    share a process with NumPy's OpenBLAS threads, NumPy's training there runs
    up to twice as slowly as alone (measured here), which is no user's case."""
    floor_before = measure_in_child("floor", hidden, steps, data_dir)["ms_per_step"]
    ours = measure_in_child("numpy", hidden, steps, data_dir)
    floor_after = measure_in_child("floor", hidden, steps, data_dir)["ms_per_step"]
    theirs = measure_in_child("torch", hidden, steps, data_dir)
    textbook = measure_in_child("textbook", hidden, steps, data_dir)
    # The floor takes a second, training many: measured on both sides of our
    # run, it sees the machine as our run did.
    floor = (floor_before + floor_after) / 2
    return {
        "steps": ours["steps"],
        **with_ratios({"numpy_ms_per_step": ours["ms_per_step"], "torch_ms_per_step": theirs["ms_per_step"],
                       "matmul_floor_ms_per_step": floor}),
        "textbook_ms_per_step": textbook["ms_per_step"],
        "torch": theirs["torch"],
        "torch_threads": theirs["torch_threads"],
    }


def with_ratios(times):
    """The three ms-per-step figures and the two ratios the targets are about."""
    return {**times, "numpy_over_torch": times["numpy_ms_per_step"] / times["torch_ms_per_step"],
            "numpy_over_floor": times["numpy_ms_per_step"] / times["matmul_floor_ms_per_step"]}


def best_of_rounds(runs):
    """The fastest round of each kind, and their ratios.

    On this shared machine a process now and then runs the whole of its
    training at up to twice its usual time per step, the floor barely (mostly
    the per-call overhead grows, which the step has much more of); the best
    of the rounds is each kind undisturbed, as timeit's best of repeats."""
    best = with_ratios({key: min(r[key] for r in runs)
                        for key in ("numpy_ms_per_step", "torch_ms_per_step", "matmul_floor_ms_per_step")})
    return {**best, "textbook_ms_per_step": min(r["textbook_ms_per_step"] for r in runs)}


def measure_in_child(kind, hidden, steps, data_dir):
    """Run `measure(kind, ...)` in a new Python process; return what it measured."""
    args = [sys.executable, __file__, "--child", kind, "--steps", str(steps), "--hidden", *map(str, hidden)]
    if data_dir:
        args += ["--data-dir", data_dir]
    out = subprocess.run(args, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return json.loads(out.splitlines()[-1])


def measure(kind, hidden, steps, data_dir):
    """In a child: ms per step of one kind of run ("numpy" on the fast path, "textbook", "torch",
    "floor", "phases" or "augment")."""
    # Two cycles of the report's shape: n_s = 2250 for the default 9,000 steps.
    config = TrainConfig(hidden=tuple(hidden), n_s=max(1, steps // 4), cycles=2, evals_per_cycle=1)
    if kind == "floor":
        return {"ms_per_step": matmul_floor_ms(config.hidden, config.n_batch, 3072)}
    cifar = load_cifar10(data_dir)
    if kind in ("numpy", "textbook"):
        ms, steps = numpy_ms_per_step(replace(config, textbook=kind == "textbook"), cifar)
        return {"ms_per_step": ms, "steps": steps}
    if kind == "phases":
        return numpy_phases_ms(config, cifar)
    if kind == "augment":
        return augmentation_ms(config, cifar, steps)
    import torch

    return {"ms_per_step": torch_ms_per_step(config, cifar, steps), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads()}


def gradcheck_seconds(cifar):
    net = init_network([3072, 50, 50, 10], norm="batch", seed=0, dtype=np.float64)
    report = check_gradients(net, cifar.train.X[:100], cifar.train.y[:100], 0.005)
    return report["seconds"], report["max_relative_error"]


def peak_memory_mb_of_training(data_dir):
    """Peak resident memory of `python -m helpers train` (report settings), from
    the kernel's accounting of that one child process (wait4)."""
    env = {**os.environ, "TQDM_DISABLE": "1"}
    args = [sys.executable, "-m", "helpers", "train"] + (["--data-dir", data_dir] if data_dir else [])
    child = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(args)} failed")
    return usage.ru_maxrss / 1024


def report_augmentation(measured):
    """Print what augmenting each mini-batch of the 3-layer network costs; add the targets."""
    kinds = measured["kinds"]
    plain = kinds["plain"]
    print(f"augmentation, 3-layer BN (one process, {measured['steps']} steps of each kind in blocks of"
          f" {measured['block_steps']} taking turns): plain loop {plain['ms_per_step']:.3f} ms/step"
          f" (best block {plain['best_block_ms_per_step']:.3f})")
    measured["targets"] = {}
    for kind, row in kinds.items():
        if kind == "plain":
            continue
        met = row["ratio_best_blocks"] <= AUGMENT_TARGET
        measured["targets"][kind] = {"target": AUGMENT_TARGET, "best_blocks": row["ratio_best_blocks"], "met": met}
        print(f"  {kind}: batch {row['batch_ms']:.3f} ms (median; plain {plain['batch_ms']:.3f}), set-up"
              f" {row['setup_seconds']:.2f} s, adds"
              f" {row['added_ms_per_step']:.3f} ms/step (best blocks {row['best_block_ms_per_step']:.3f}"
              f" against {plain['best_block_ms_per_step']:.3f});"
              f" ratio to plain {row['ratio_best_blocks']:.2f} (best blocks; median of blocks"
              f" {row['ratio_median_of_blocks']:.2f}), target <= {AUGMENT_TARGET}: {'met' if met else 'NOT met'}")
    return measured


def blas_info():
    from threadpoolctl import threadpool_info

    return [{k: i.get(k) for k in ("internal_api", "version", "architecture", "num_threads")} for i in threadpool_info()]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=9000, help="update steps per network (default 9000)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="rounds of the measurements per network; the medians are reported (default 5)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--skip-gradcheck", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-augment", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "speed.json"))
    parser.add_argument("--child", choices=["numpy", "textbook", "torch", "floor", "phases", "augment"], help=argparse.SUPPRESS)
    parser.add_argument("--hidden", type=int, nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.hidden, args.steps, args.data_dir)))
        return

    # First, while this process is still small: a child's peak memory counts
    # what it inherited from its parent before exec.
    peak = None if args.skip_memory else peak_memory_mb_of_training(args.data_dir)
    results = {
        "data": shown_path(find_batches_dir(args.data_dir)),
        "blas": blas_info(),
        "env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")},
        "networks": {},
    }
    print(f"data: {results['data']}\nBLAS: {results['blas']}")
    # Round after round, both networks: a disturbed stretch of minutes then
    # hits both rather than all the rounds of one.
    rounds = {name: [] for name in NETWORKS}
    for _ in range(args.rounds):
        for name, hidden in NETWORKS.items():
            rounds[name].append(measure_round(hidden, args.steps, args.data_dir))
    for name, runs in rounds.items():
        row = {key: statistics.median(r[key] for r in runs) for key in RATIO_KEYS}
        row["best_of_rounds"] = best_of_rounds(runs)
        row["rounds"] = runs
        results["networks"][name] = row
        best = row["best_of_rounds"]
        row["targets"] = {key: {"target": limit, "best_of_rounds": best[key], "met": best[key] <= limit}
                          for key, limit in TARGETS[name].items()}
        print(f"{name}: numpy {row['numpy_ms_per_step']:.3f} ms/step (textbook path"
              f" {row['textbook_ms_per_step']:.3f}), torch {row['torch_ms_per_step']:.3f} ms/step,"
              f" floor {row['matmul_floor_ms_per_step']:.3f} ms/step; numpy/torch {row['numpy_over_torch']:.2f},"
              f" numpy/floor {row['numpy_over_floor']:.2f};"
              f" medians of {args.rounds} rounds, numpy/torch from {min(r['numpy_over_torch'] for r in runs):.2f}"
              f" to {max(r['numpy_over_torch'] for r in runs):.2f}, numpy/floor from"
              f" {min(r['numpy_over_floor'] for r in runs):.2f} to {max(r['numpy_over_floor'] for r in runs):.2f};"
              f" best of the rounds: numpy/torch {best['numpy_over_torch']:.2f}, numpy/floor {best['numpy_over_floor']:.2f}")
        for key, target in row["targets"].items():
            print(f"  target {key} <= {target['target']} (best rounds): {target['best_of_rounds']:.2f},"
                  f" {'met' if target['met'] else 'NOT met'}")
    for name, hidden in NETWORKS.items():
        phases = measure_in_child("phases", hidden, args.steps, args.data_dir)
        results["networks"][name]["phases_ms_per_step"] = phases
        print(f"{name}, where a step's time goes (ms per step, one run of 2,000 steps): "
              + ", ".join(f"{phase} {ms:.3f}" for phase, ms in phases.items()))
    if not args.skip_augment:
        results["augmentation"] = report_augmentation(
            measure_in_child("augment", NETWORKS["3-layer BN"], args.steps, args.data_dir))
    any_round = next(iter(rounds.values()))[0]
    results["torch"], results["torch_threads"] = any_round["torch"], any_round["torch_threads"]
    print(f"PyTorch {results['torch']}, {results['torch_threads']} threads")
    if not args.skip_gradcheck:
        seconds, error = gradcheck_seconds(load_cifar10(args.data_dir, split="small"))
        results["gradcheck"] = {"seconds": seconds, "max_relative_error": error}
        print(f"full gradient check (3072 features, n 100, [50, 50], BN): {seconds:.2f} s (target <= 10),"
              f" max relative error {error:.2e} (target <= 1e-7)")
    if peak is not None:
        results["training_peak_memory_mb"] = peak
        print(f"peak memory of `python -m helpers train`: {peak:.0f} MB (target <= 1200)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
