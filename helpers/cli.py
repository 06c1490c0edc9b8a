"""The command line: `python -m helpers {download,train,gradcheck,search,report} --help`."""

import argparse
import sys
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np

from .core import data
from .checkpoint import save_network
from .errors import ConfigError, HelpersError
from .core.gradcheck import DEFAULT_H, check_gradients, error_table
from .experiments import run_experiment
from .files import write_json
from .core.network import check_init, init_network
from .search import SUMMARY_FILE, SearchConfig, check_search_config, process_pool, run_search
from .core.training import TrainConfig, check_config


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except HelpersError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m helpers", description=__doc__)
    sub = parser.add_subparsers(required=True, metavar="command")

    p = sub.add_parser("download", help="download and verify CIFAR-10")
    p.add_argument("--data-dir", help="folder to hold cifar-10-batches-py (default: $CIFAR10_DIR or data/)")
    p.add_argument("--from", dest="url", default=data.OFFICIAL_URL, help="archive URL; file:// works too")
    p.add_argument("--md5", default=data.OFFICIAL_MD5, help="expected MD5 of the archive")
    p.set_defaults(run=run_download)

    defaults = TrainConfig()
    p = sub.add_parser("train", help="train a network with the report's settings")
    add_network_args(p, defaults.hidden)
    p.add_argument("--lam", type=float, default=defaults.lam, help="L2 weight lambda (default %(default)s)")
    p.add_argument("--cycles", type=int, default=defaults.cycles, help="learning-rate cycles (default %(default)s)")
    p.add_argument("--n-batch", type=int, default=defaults.n_batch, help="mini-batch size (default %(default)s)")
    p.add_argument("--eta-min", type=float, default=defaults.eta_min, help="(default %(default)s)")
    p.add_argument("--eta-max", type=float, default=defaults.eta_max, help="(default %(default)s)")
    p.add_argument("--n-s", type=int, default=None, help="steps per half cycle (default: 5 epochs)")
    init = p.add_mutually_exclusive_group()
    init.add_argument("--init", choices=["he", "xavier"], default="he", help="weight initialization (default he)")
    init.add_argument("--sigma", type=float, help="initialize every layer with this standard deviation instead")
    p.add_argument("--alpha", type=float, default=defaults.alpha, help="BN running-average weight (default %(default)s)")
    p.add_argument("--seed", type=int, default=defaults.seed, help="(default %(default)s)")
    p.add_argument("--split", choices=["report", "small"], default="report", help="data split (default report)")
    p.add_argument("--data-dir", help="folder holding cifar-10-batches-py (default: $CIFAR10_DIR or data/)")
    p.add_argument("--json", help="write the results to this JSON file")
    p.add_argument("--save", help="save the trained network to this .npz checkpoint")
    p.set_defaults(run=run_train)

    p = sub.add_parser("gradcheck", help="check the analytic gradients against numerical ones")
    add_network_args(p, defaults.hidden)
    p.add_argument("--dim", type=int, default=3072, help="input features kept (default %(default)s)")
    p.add_argument("--n", type=int, default=100, help="training images used (default %(default)s)")
    p.add_argument("--lam", type=float, default=defaults.lam, help="(default %(default)s)")
    p.add_argument("--method", choices=["centered", "forward"], default="centered")
    p.add_argument("--h", type=float, default=DEFAULT_H, help="finite-difference step (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="(default %(default)s)")
    p.add_argument("--data-dir", help="folder holding cifar-10-batches-py (default: $CIFAR10_DIR or data/)")
    p.add_argument("--json", help="write the results to this JSON file")
    p.set_defaults(run=run_gradcheck)
    add_search_command(sub)
    add_report_command(sub)
    return parser


def add_network_args(p, hidden):
    p.add_argument("--hidden", type=int, nargs="*", default=list(hidden), help="hidden widths (default 50 50)")
    bn = p.add_mutually_exclusive_group()
    bn.add_argument("--bn", dest="batch_norm", action="store_true", default=True, help="batch normalization (default)")
    bn.add_argument("--no-bn", dest="batch_norm", action="store_false", help="no batch normalization")


def run_download(args):
    folder = data.download_cifar10(args.data_dir, url=args.url, md5=args.md5 or None)
    print(f"CIFAR-10 is in {folder}")
    return 0


def run_train(args):
    config = TrainConfig(
        hidden=tuple(args.hidden),
        batch_norm=args.batch_norm,
        lam=args.lam,
        n_batch=args.n_batch,
        eta_min=args.eta_min,
        eta_max=args.eta_max,
        n_s=args.n_s,
        cycles=args.cycles,
        init=args.init if args.sigma is None else args.sigma,
        alpha=args.alpha,
        seed=args.seed,
    )
    check_init(config.init)
    check_config(config)
    cifar = data.load_cifar10(args.data_dir, split=args.split)
    print(f"training on {len(cifar.train.X)} images from {cifar.folder} (Ctrl-C stops and keeps the result)",
          flush=True)
    summary, result = run_experiment(config, cifar)
    print(f"trained {summary['steps']} steps in {summary['train_seconds']:.1f} s"
          f" ({summary['ms_per_step']:.3f} ms/step){' (interrupted)' if summary['interrupted'] else ''}")
    print(f"test accuracy        {100 * summary['test_accuracy']:.2f} %")
    print(f"validation accuracy  {100 * summary['val_accuracy']:.2f} %")
    if summary["ensemble_test_accuracy"] is not None:
        print(f"ensemble of {summary['snapshots']} snapshots, test accuracy"
              f" {100 * summary['ensemble_test_accuracy']:.2f} %")
    if args.json:
        write_json(args.json, summary)
    if args.save:
        print(f"saved the network to {save_network(result.net, args.save, config.to_dict())}")
    return 0


def run_gradcheck(args):
    if args.n < 1 or args.dim < 1:
        raise ConfigError(f"--n and --dim must be >= 1, got n={args.n}, dim={args.dim}.")
    if args.lam < 0:
        raise ConfigError(f"--lam must be >= 0, got {args.lam}.")
    cifar = data.load_cifar10(args.data_dir, split="small")
    if args.n > len(cifar.train.X) or args.dim > cifar.train.X.shape[1]:
        raise ConfigError(f"--n is at most {len(cifar.train.X)} and --dim at most {cifar.train.X.shape[1]}.")
    X, y = cifar.train.X[: args.n, : args.dim], cifar.train.y[: args.n]
    net = init_network([args.dim, *args.hidden, 10], args.batch_norm, "he", args.seed, np.float64)
    start = time.perf_counter()
    report = check_gradients(net, X, y, args.lam, h=args.h, method=args.method)
    total = time.perf_counter() - start
    print(f"{args.method} differences, h = {args.h}, n = {args.n}, dim = {args.dim}, hidden {args.hidden},"
          f" {'BN' if args.batch_norm else 'no BN'}, lambda {args.lam}")
    print(error_table(report["errors"]))
    print(f"max relative error {report['max_relative_error']:.2e}; {total:.2f} s")
    if args.json:
        write_json(args.json, {
            "max_relative_error": report["max_relative_error"],
            "errors": report["errors"],
            "seconds": total,
            "config": {k: v for k, v in vars(args).items() if k not in ("run", "json")},
        })
    return 0


# --- search ------------------------------------------------------------------------


def add_search_command(subparsers):
    defaults, base = SearchConfig(), SearchConfig().base
    p = subparsers.add_parser("search", help="staged random search of lambda, in parallel")
    p.add_argument("--lam-range", type=float, nargs=2, metavar=("LOW", "HIGH"), default=list(defaults.lam_range),
                   help="stage 1 draws lambda log-uniformly from here (default %(default)s)")
    p.add_argument("--coarse", type=int, default=defaults.coarse, help="runs in stage 1 (default %(default)s)")
    p.add_argument("--fine", type=int, default=defaults.fine, help="runs in each later stage (default %(default)s)")
    p.add_argument("--stages", type=int, default=defaults.stages, help="(default %(default)s)")
    p.add_argument("--shrink", type=float, default=defaults.shrink,
                   help="each stage's log10 range is this many times narrower than the last (default %(default)s)")
    p.add_argument("--cycles", type=int, default=defaults.cycles, help="learning-rate cycles per run (default %(default)s)")
    p.add_argument("--hidden", type=int, nargs="*", default=list(base.hidden), help="hidden widths (default 50 50)")
    p.add_argument("--n-s", type=int, default=None, help="steps per half cycle (default: 5 epochs)")
    p.add_argument("--seed", type=int, default=defaults.seed, help="(default %(default)s)")
    p.add_argument("--n-train", type=int, default=None, help="train on the first N images only (default: all 45,000)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=None, help="local worker processes (default: one per core)")
    where.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="run on this Dask cluster instead")
    p.add_argument("--data-dir", help="folder holding cifar-10-batches-py (default: $CIFAR10_DIR or data/)")
    p.add_argument("--out", required=True, help="folder for runs.jsonl and summary.json; reused runs are skipped")
    p.set_defaults(run=run_search_command)


def run_search_command(args):
    config = SearchConfig(
        lam_range=tuple(args.lam_range),
        coarse=args.coarse,
        fine=args.fine,
        stages=args.stages,
        shrink=args.shrink,
        cycles=args.cycles,
        seed=args.seed,
        base=replace(SearchConfig().base, hidden=tuple(args.hidden), n_s=args.n_s),
        n_train=args.n_train,
    )
    # Checked here too, so that bad settings are refused before workers or a cluster connection start.
    check_search_config(config)
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}.")
    with executor_for(args) as executor:
        summary = run_search(config, args.out, executor, args.data_dir)
    for s in summary["stages"]:
        low, high = s["lam_range"]
        best = s["best"]
        print(f"stage {s['stage']}: {len(s['lams'])} runs, lambda in [{low:.3g}, {high:.3g}]:"
              f" best lambda {best['lam']:.4g} (validation accuracy {100 * best['val_accuracy']:.2f} %)")
    best = summary["best"]
    print(f"best lambda {best['lam']:.4g}: validation accuracy {100 * best['val_accuracy']:.2f} %,"
          f" test accuracy {100 * best['test_accuracy']:.2f} %")
    print(f"trained {summary['trained']} runs, reused {summary['reused']};"
          f" summary in {Path(args.out) / SUMMARY_FILE}")
    return 0


@contextmanager
def executor_for(args):
    """The executor the command line asked for; shut down (and the Dask client closed) on leaving."""
    if args.scheduler is None:
        with process_pool(args.workers) as pool:
            yield pool
        return
    # Imported only when asked for: distributed takes a second to import.
    from distributed import Client

    try:
        client = Client(args.scheduler)
    except OSError as err:
        raise ConfigError(f"Cannot reach the Dask scheduler at {args.scheduler}: {err}") from err
    with client:
        yield client.get_executor()


# --- report ------------------------------------------------------------------------


def add_report_command(sub):
    p = sub.add_parser(
        "report", help="the main job: run every notebook headless, gather the results summary",
        description="Run every notebook headless on a fresh kernel, save the executed copies to "
                    "results/notebooks/, and gather the results summary into figures/summary.md and "
                    "README.md (see helpers/report/job.py). Also `python -m helpers.report`.",
    )
    p.add_argument("--quick", action="store_true", help="small, fast runs (NB_QUICK=1), not into figures/")
    p.add_argument("--figures-dir", help="where figures and summary.md go (default: figures/, or "
                                         "results/quick/ with --quick)")
    p.add_argument("--cache-dir", help="cache of finished runs (default: results/cache/)")
    p.add_argument("--no-readme", action="store_true",
                   help="leave README.md alone (it is never touched with --quick)")
    p.add_argument("notebooks", nargs="*", help="notebooks to run (default: every numbered one, in order)")
    p.set_defaults(run=run_report_command)


def run_report_command(args):
    # Imported only here: nbclient and nbformat take seconds to import, which the other commands need not wait.
    from .report import job

    readme = None if args.quick or args.no_readme else job.REPO / "README.md"
    job.run_report(args.quick, args.figures_dir, args.cache_dir or job.DEFAULT_CACHE_DIR, readme,
                   args.notebooks or None)
    return 0
