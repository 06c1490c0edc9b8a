"""Speed-up of the lambda search with 2 worker processes over 1.

    python benchmarks/search_speedup.py                      # 4 runs with the report's settings
    python benchmarks/search_speedup.py --runs 2 --n-s 500   # a quick look

It times the same search (one stage of --runs lambdas, all 45,000 training
images, hidden [50, 50], BN, n_s 2250, 2 cycles: the report's runs) three
times, each with a fresh process pool and output folder:
  - 1 worker with 1 BLAS thread,
  - 2 workers with 1 BLAS thread each (the search's default on 2 cores),
  - 1 worker with as many BLAS threads as BLAS picks: a plain loop over the
    runs, for reference.
The wall times include starting the workers and loading the data in each,
as in a real search. It checks that 1 and 2 workers give the same results,
prints the times and the speed-ups, and writes them with the BLAS in use
(threadpoolctl) to benchmarks/results/search_speedup.json. On a shared
machine, run it when nothing else does: for each setup it also records the
share of the CPUs that other processes took meanwhile (Linux /proc/stat),
and marks the setup disturbed above 5 %.
"""

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from threadpoolctl import threadpool_info  # noqa: E402

from helpers.pool import cores, process_pool  # noqa: E402
from helpers.search import RESULTS_FILE, SearchConfig, read_lines, run_search  # noqa: E402
from helpers.core.config import TrainConfig  # noqa: E402

SETUPS = {  # name: (workers, BLAS threads per worker; None lets BLAS choose)
    "1 worker": (1, 1),
    "2 workers": (2, 1),
    "1 worker, BLAS threads unlimited": (1, None),
}


def timed_search(config, workers, blas_threads, data_dir):
    """Time the search on a fresh pool: (wall seconds, others' share of the CPUs meanwhile, records)."""
    with tempfile.TemporaryDirectory() as out:
        busy, own, start = machine_cpu_seconds(), own_cpu_seconds(), time.perf_counter()
        with process_pool(workers, blas_threads) as pool:
            run_search(config, out, pool, data_dir, progress=False)
        seconds = time.perf_counter() - start
        others = (machine_cpu_seconds() - busy) - (own_cpu_seconds() - own)
        return seconds, max(0.0, others) / (seconds * cores()), read_lines(Path(out) / RESULTS_FILE)


def machine_cpu_seconds():
    """CPU seconds that all processes of the machine have used since it started (Linux)."""
    user, nice, system, _idle, _iowait, irq, softirq = map(int, Path("/proc/stat").read_text().split()[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds():
    """CPU seconds of this process and of its finished children (the pool's workers, once shut down)."""
    return sum(getattr(resource.getrusage(who), field)
               for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN) for field in ("ru_utime", "ru_stime"))


def figures(records):
    """What must not depend on the number of workers, per lambda."""
    return sorted((r["lam"], r["val_accuracy"], r["val_cost"], r["test_accuracy"]) for r in records)


def blas_info():
    return [{k: lib.get(k) for k in ("internal_api", "version", "architecture", "num_threads", "threading_layer")}
            for lib in threadpool_info() if lib["user_api"] == "blas"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=4, help="lambdas searched (default %(default)s)")
    parser.add_argument("--n-s", type=int, default=None, help="steps per half cycle (default: 5 epochs, 2250)")
    parser.add_argument("--cycles", type=int, default=2, help="(default %(default)s)")
    parser.add_argument("--n-train", type=int, default=None, help="training images (default: all 45,000)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "search_speedup.json"))
    args = parser.parse_args()

    config = SearchConfig(coarse=args.runs, stages=1, cycles=args.cycles, n_train=args.n_train,
                          base=TrainConfig(n_s=args.n_s, evals_per_cycle=1))
    results = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "cores": cores(),
        "load_average_before": os.getloadavg(),
        "blas_in_parent": blas_info(),
        "env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS")},
        "search": config.to_dict(),
        "setups": {},
    }
    print(f"{cores()} cores, load average {results['load_average_before'][0]:.2f};"
          f" BLAS in this process: {results['blas_in_parent']}")
    records = {}
    for name, (workers, blas_threads) in SETUPS.items():
        seconds, others, records[name] = timed_search(config, workers, blas_threads, args.data_dir)
        results["setups"][name] = {
            "workers": workers,
            "seconds": seconds,
            "others_cpu_share": others,
            "disturbed": others > 0.05,
            "worker_blas_threads": sorted({r["blas_threads"] for r in records[name]}),
            "run_seconds": [r["seconds"] for r in records[name]],
        }
        print(f"{name}: {seconds:.1f} s for {args.runs} runs"
              f" (BLAS threads per worker {results['setups'][name]['worker_blas_threads']};"
              f" other processes took {100 * others:.0f} % of the CPUs{': DISTURBED' if others > 0.05 else ''})")

    seconds = {name: s["seconds"] for name, s in results["setups"].items()}
    results["speedup_2_over_1"] = seconds["1 worker"] / seconds["2 workers"]
    results["speedup_2_over_plain_loop"] = seconds["1 worker, BLAS threads unlimited"] / seconds["2 workers"]
    results["same_results_1_and_2_workers"] = figures(records["1 worker"]) == figures(records["2 workers"])
    print(f"speed-up, 2 workers over 1: {results['speedup_2_over_1']:.2f}x (aim >= 1.6);"
          f" over the plain loop: {results['speedup_2_over_plain_loop']:.2f}x;"
          f" same results with 1 and 2 workers: {results['same_results_1_and_2_workers']}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")
    return 0 if results["same_results_1_and_2_workers"] else 1


if __name__ == "__main__":
    sys.exit(main())
