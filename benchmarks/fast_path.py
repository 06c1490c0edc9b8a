"""What each trick of the fast path (helpers/core/fast.py) gains, measured.

    python benchmarks/fast_path.py            # prints a table, writes benchmarks/results/fast_path.json

Each trick is timed against the plain code it replaces, on the arrays of a
step of the report's networks (n_batch 100, float32), in this one process,
one after the other: microseconds per call, best of several repeats (as
timeit recommends: the best is the least disturbed by the rest of the
machine). Then a whole training step, fast path against textbook path, for
the 3-layer and the 9-layer BN network and for the best model (--preset
best: [1024, 512, 256] with dropout), on random data of CIFAR's shape.
"""

import argparse
import json
import os
import sys
import timeit
from pathlib import Path

import numpy as np

from helpers.core import fast, layers
from helpers.core.config import PRESETS
from helpers.core.network import init_network, moving_average
from helpers.core.training import textbook_step

ROOT = Path(__file__).resolve().parent.parent
NETWORKS = {"3-layer BN": (50, 50), "9-layer BN": (50, 30, 20, 20, 10, 10, 10, 10)}
BEST_MODEL = "best model (--preset best, with dropout)"


def best_us(statement, number, repeat=7):
    """Microseconds per call of statement(), the best of `repeat` timings of `number` calls."""
    return 1e6 * min(timeit.repeat(statement, number=number, repeat=repeat)) / number


def tricks(number):
    """(trick, plain code, fast code, plain us, fast us) for each trick that can be timed alone."""
    rng = np.random.default_rng(0)
    f32 = np.float32
    X = rng.standard_normal((100, 3072)).astype(f32)
    W1 = rng.standard_normal((3072, 50)).astype(f32)
    H = rng.standard_normal((100, 50)).astype(f32)
    W = rng.standard_normal((50, 50)).astype(f32)
    dS = rng.standard_normal((100, 50)).astype(f32)
    gamma, beta = np.ones(50, f32), np.zeros(50, f32)
    scores = rng.standard_normal((100, 10)).astype(f32)
    _, textbook_cache = layers.batchnorm_forward(H, gamma, beta)
    _, fast_cache, _, _ = fast.batchnorm_forward(H.copy(), gamma, beta)
    dgamma, dbeta = np.empty(50, f32), np.empty(50, f32)

    net = init_network([3072, 50, 50, 10], dtype=f32)
    grads = {name: np.ones_like(p) for name, p in net.params.items()}
    flat_net = init_network([3072, 50, 50, 10], dtype=f32)
    flat = fast.flatten_parameters(flat_net)

    def plain_update():
        for name, p in net.params.items():
            g = grads[name] + 2 * 0.005 * p if name.startswith("W") else grads[name]
            p -= 0.01 * g

    nine = init_network([3072, *NETWORKS["9-layer BN"], 10], dtype=f32)
    stats = {name: r.copy() for name, r in nine.running.items()}
    running, _ = fast.flatten(list(nine.running.values()))
    stats_list = list(stats.values())

    def plain_running():
        for name, r in nine.running.items():
            moving_average(r, stats[name], 0.9)

    rows = [
        ("1. np.dot instead of @ (100x50 by 50x50)", lambda: H @ W, lambda: np.dot(H, W)),
        ("2. batch sum as a product with ones (100x50)", lambda: H.sum(axis=0), lambda: fast.batch_sum(H)),
        ("3. BN backward folded, sums shared (100x50)",
         lambda: layers.batchnorm_backward(dS, textbook_cache),
         lambda: fast.batchnorm_backward(dS, fast_cache, dgamma, dbeta)),
        ("4. no gradient for the images (layer 1's dH)", lambda: dS @ W1.T, lambda: None),
        ("5-7. flat update with weight decay (3-layer)", plain_update, lambda: fast.sgd_update(flat, 0.01, 0.005)),
        ("8. row maximum with argmax (100x10)",
         lambda: scores.max(axis=1),
         lambda: scores[np.arange(100), scores.argmax(axis=1)]),
        ("9. running averages in one call (9-layer)", plain_running,
         lambda: moving_average(running, np.concatenate(stats_list), 0.9)),
    ]
    return [(name, best_us(plain, number), best_us(quick, number)) for name, plain, quick in rows]


def whole_steps(number):
    """us per training step, textbook path and fast path, for each network: the report's two and the best model's."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((100, 3072)).astype(np.float32)
    y = rng.integers(0, 10, 100)
    best = PRESETS["best"]
    networks = {name: (hidden, 0.0, number) for name, hidden in NETWORKS.items()}
    networks[BEST_MODEL] = (best.hidden, best.dropout, max(1, number // 20))  # a step costs 50 of the report's
    out = {}
    for name, (hidden, dropout, calls) in networks.items():
        # A tiny eta keeps both networks where they started over the repeats.
        textbook = init_network([3072, *hidden, 10], dtype=np.float32, dropout=dropout)
        quick = fast.make_step(init_network([3072, *hidden, 10], dtype=np.float32, dropout=dropout), lam=0.005,
                               rng=np.random.default_rng(2))
        masks = np.random.default_rng(2)
        out[name] = (best_us(lambda: textbook_step(textbook, X, y, 1e-9, 0.005, rng=masks), calls),
                     best_us(lambda: quick(X, y, 1e-9), calls))
    return out


def blas_info():
    from threadpoolctl import threadpool_info

    return [{k: i.get(k) for k in ("internal_api", "version", "architecture", "num_threads")} for i in threadpool_info()]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--number", type=int, default=2000, help="calls per timing of a trick (default 2000)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "fast_path.json"))
    args = parser.parse_args()

    results = {"blas": blas_info(), "env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")},
               "tricks": {}, "steps": {}}
    print(f"BLAS: {results['blas']}")
    print(f"{'trick':50} {'plain us':>9} {'fast us':>9} {'saved us':>9}")
    for name, plain, quick in tricks(args.number):
        results["tricks"][name] = {"plain_us": plain, "fast_us": quick, "saved_us": plain - quick}
        print(f"{name:50} {plain:9.2f} {quick:9.2f} {plain - quick:9.2f}")
    print(f"\n{'whole training step':50} {'textbook':>9} {'fast':>9} {'speed-up':>9}")
    for name, (textbook, quick) in whole_steps(max(1, args.number // 10)).items():
        results["steps"][name] = {"textbook_us": textbook, "fast_us": quick, "speedup": textbook / quick}
        print(f"{name:50} {textbook:9.1f} {quick:9.1f} {textbook / quick:8.2f}x")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
