"""What TrainConfig.layer_stats costs: the report's networks trained with it and without it.

    python benchmarks/layer_stats.py                  # 300 steps, 3 rounds, the report's split
    python benchmarks/layer_stats.py --steps 1000 --rounds 5

For the 3-layer and 9-layer BN networks of the report it trains (train() on
the fast path, float32, the report's settings but one cycle of --steps
steps, with the report's 10 evaluations per cycle) without and with
layer_stats, one after the other in this one process, round after round,
the order swapped every round, so that a disturbed stretch of the shared
machine hits both. It prints the wall-clock seconds of a whole run
(evaluations included: the statistics are measured there), the medians over
the rounds and the best runs, their ratios with / without, and what each
evaluation's statistics add (ms); the ms per training step of both, which
must not move: the statistics are measured apart from the step; and, as a
figure the machine's load disturbs less, the statistics of one evaluation
timed alone on the trained network (best of 20), and what they would add to
the fastest run without them. It writes everything to
benchmarks/results/layer_stats.json.

The report evaluates every 450 steps; here, with a short cycle, every
--steps / 10, so the evaluations, and the statistics with them, weigh much
more than in the report: the ratio printed bounds the report's from above.
"""

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from helpers.core import probe  # noqa: E402
from helpers.core.data import SPLITS, load_cifar10  # noqa: E402
from helpers.core.config import TrainConfig  # noqa: E402
from helpers.core.training import train  # noqa: E402
from helpers.files import shown_path  # noqa: E402
from speed import NETWORKS, blas_info  # noqa: E402  (this folder is on sys.path: the script's own)


def timed_run(config, cifar):
    """Wall-clock seconds of one train() run, ms per training step, the number of evaluations, the network."""
    start = time.perf_counter()
    result = train(config, cifar.train, cifar.val, progress=False)
    seconds = time.perf_counter() - start
    return seconds, 1000 * result.train_seconds / result.steps, len(result.history["step"]), result.net


def stats_ms(net, config, cifar, repeats=20):
    """What one evaluation's statistics cost, alone: the copy of the weights before the step, then the
    probe (as training.record makes it), in ms, best of repeats."""
    X, y = cifar.train.X[: config.n_batch], cifar.train.y[: config.n_batch]
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        probe.layer_stats(net, X, y, config.lam, before=probe.weights(net))
        best = min(best, time.perf_counter() - start)
    return 1000 * best


def measure(cifar, steps, rounds):
    """{network: its runs without and with layer_stats, and the medians, ratio and cost per evaluation}."""
    configs = {name: TrainConfig(hidden=hidden, n_s=max(1, steps // 2), cycles=1) for name, hidden in NETWORKS.items()}
    runs = {name: {False: [], True: []} for name in NETWORKS}
    for r in range(rounds):
        for name, config in configs.items():
            for on in (False, True) if r % 2 == 0 else (True, False):
                runs[name][on].append(timed_run(replace(config, layer_stats=on), cifar))
    out = {}
    for name, by_setting in runs.items():
        without, with_stats = ([run[0] for run in by_setting[on]] for on in (False, True))
        evaluations, trained = by_setting[True][0][2:]
        median_without, median_with = statistics.median(without), statistics.median(with_stats)
        alone_ms = stats_ms(trained, configs[name], cifar)
        out[name] = {
            "hidden": list(NETWORKS[name]),
            "steps": 2 * configs[name].n_s,
            "evaluations": evaluations,
            "seconds_without": without,
            "seconds_with": with_stats,
            "median_without": median_without,
            "median_with": median_with,
            "ratio": median_with / median_without,
            "best_ratio": min(with_stats) / min(without),
            "added_ms_per_evaluation": 1000 * (median_with - median_without) / evaluations,
            "step_ms_without": statistics.median(run[1] for run in by_setting[False]),
            "step_ms_with": statistics.median(run[1] for run in by_setting[True]),
            "stats_alone_ms_per_evaluation": alone_ms,
            # What the statistics timed alone would add to the fastest run without them.
            "stats_alone_share": evaluations * alone_ms / (1000 * min(without)),
        }
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300, help="update steps per run (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="runs of each kind per network; the medians are reported (default %(default)s)")
    parser.add_argument("--split", choices=SPLITS, default="report", help="data split (default %(default)s)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "layer_stats.json"))
    args = parser.parse_args()
    if args.steps < 2 or args.rounds < 1:
        parser.error(f"need --steps >= 2 and --rounds >= 1, got {args.steps} and {args.rounds}")

    cifar = load_cifar10(args.data_dir, split=args.split)
    results = {"data": shown_path(cifar.folder), "split": args.split, "n_train": len(cifar.train.X),
               "blas": blas_info(), "rounds": args.rounds}
    print(f"data: {results['data']} ({args.split} split, {results['n_train']} training images)"
          f"\nBLAS: {results['blas']}")
    results["networks"] = measure(cifar, args.steps, args.rounds)
    for name, row in results["networks"].items():
        print(f"{name}, {row['steps']} steps, {row['evaluations']} evaluations: without layer_stats"
              f" {row['median_without']:.2f} s per run, with {row['median_with']:.2f} s (medians of {args.rounds});"
              f" ratio {row['ratio']:.3f} (best runs {row['best_ratio']:.3f}),"
              f" {row['added_ms_per_evaluation']:.2f} ms added per evaluation;"
              f" training step {row['step_ms_without']:.3f} ms without, {row['step_ms_with']:.3f} ms with;"
              f" the statistics alone {row['stats_alone_ms_per_evaluation']:.2f} ms per evaluation"
              f" (best of 20), {100 * row['stats_alone_share']:.2f} % of the fastest run without them")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
