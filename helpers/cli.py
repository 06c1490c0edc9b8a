"""The command line: `python -m helpers {download,train,gradcheck,search,report} --help`.

Every command checks all its flags, every path it will write, and whether
its network fits in memory before it reads any data or trains anything: a
mistake costs a second, not an hour of training and its result. Whatever
goes wrong on purpose ends as one line starting with `error:` on stderr and
exit code 2; Ctrl-C ends with exit code 130.
"""

import argparse
import sys
import time
from dataclasses import fields, replace
from pathlib import Path

import numpy as np

from .checkpoint import save_network
from .core import data
from .core.gradcheck import DEFAULT_H, check_gradients, error_table
from .core.config import PRESETS, SETTINGS, TrainConfig, check_config, settings_table
from .core.training import new_network
from .errors import ConfigError, HelpersError, OutputError
from .experiments import run_experiment
from .files import check_output_files, check_writable_folder, write_json, write_outputs
from .flags import Parser, add_settings, check_flags, given_settings, number
from .memory import check_gradcheck_memory, check_training_memory, parameter_count
from .pool import check_workers, cores, executor_for
from .search import (
    RESULTS_FILE,
    SCALES,
    WIDTHS,
    SearchConfig,
    check_param,
    check_search_config,
    run_config,
    run_search,
    search_text,
    searchable,
    settle,
)
from .seeds import check_seeds, run_seeds, run_text, spread_text


def main(argv=None):
    try:
        args = build_parser().parse_args(argv)
        return args.run(args)
    except HelpersError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def build_parser():
    parser = Parser(prog="python -m helpers", description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(required=True, metavar="command")

    p = sub.add_parser("download", help="download and verify CIFAR-10")
    p.add_argument("--data-dir", help="folder to hold cifar-10-batches-py (default: $CIFAR10_DIR or data/)")
    p.add_argument("--from", dest="url", default=data.OFFICIAL_URL, help="archive URL; file:// works too")
    p.add_argument("--md5", default=data.OFFICIAL_MD5, help="expected MD5 of the archive ('' skips the check)")
    p.set_defaults(run=run_download, parser=p)

    p = sub.add_parser("train", help="train a network with the report's settings",
                       description="Every setting not given comes from --preset (default: the report's)."
                                   " docs/settings.md lists them all.")
    p.add_argument("--preset", choices=sorted(PRESETS), default="report",
                   help="settings to start from: 'report' (the report's network) or 'best' (the best model"
                        " of notebook 06); flags given override them")
    # The settings before the other flags: check_flags blames the first flag given that changes the complaint.
    add_settings(p, SETTINGS, PRESETS["report"], "report")
    p.add_argument("--split", choices=data.SPLITS, default="report", help="data split (default report)")
    p.add_argument("--data-dir", help="folder holding cifar-10-batches-py (default: $CIFAR10_DIR or data/)")
    p.add_argument("--json", help="write the results to this JSON file")
    p.add_argument("--save", help="save the trained network to this .npz checkpoint (one seed only)")
    p.add_argument("--seeds", type=int, default=1,
                   help="train seeds --seed, --seed + 1, ... in parallel and print the spread of the accuracies"
                        " (default %(default)s: one run, in this process)")
    add_executor_args(p, "seeds")
    p.set_defaults(run=run_train, parser=p)

    p = sub.add_parser("gradcheck", help="check the analytic gradients against numerical ones")
    add_settings(p, GRADCHECK_SETTINGS, TrainConfig(), "default")
    p.add_argument("--dim", type=int, default=data.N_FEATURES, help="input features kept (default %(default)s)")
    p.add_argument("--n", type=int, default=100, help="training images used (default %(default)s)")
    p.add_argument("--method", choices=["centered", "forward"], default="centered")
    p.add_argument("--h", type=number, default=DEFAULT_H, help="finite-difference step (default %(default)s)")
    p.add_argument("--data-dir", help="folder holding cifar-10-batches-py (default: $CIFAR10_DIR or data/)")
    p.add_argument("--json", help="write the results to this JSON file")
    p.set_defaults(run=run_gradcheck, parser=p)

    p = sub.add_parser("settings", help="print the table of every training setting (docs/settings.md)")
    p.set_defaults(run=run_settings, parser=p)

    add_search_command(sub)
    add_report_command(sub)
    return parser


GRADCHECK_SETTINGS = ("hidden", "norm", "init", "dropout", "norm_place", "skips", "lam", "seed")
"""The settings of TrainConfig that change the gradients gradcheck checks."""

def add_search_command(sub):
    defaults = SearchConfig()
    low, high = defaults.value_range
    p = sub.add_parser("search", help="staged random search of lambda (or another setting), in parallel")
    p.add_argument("--coarse", type=int, default=defaults.coarse,
                   help="values drawn in stage 1 (default %(default)s)")
    p.add_argument("--fine", type=int, default=defaults.fine,
                   help="values drawn in each later stage (default %(default)s)")
    p.add_argument("--stages", type=int, default=defaults.stages, help="(default %(default)s)")
    p.add_argument("--shrink", type=number, default=defaults.shrink,
                   help="each stage's range, on --scale, is this many times narrower than the last"
                        " (default %(default)s)")
    p.add_argument("--cycles", type=int, default=defaults.cycles,
                   help="learning-rate cycles per run (default %(default)s)")
    add_settings(p, ("hidden", "n_s"), defaults.base, "default")
    p.add_argument("--seed", type=int, default=defaults.seed, help="(default %(default)s)")
    p.add_argument("--seeds", type=int, default=defaults.seeds, metavar="K",
                   help="train each value with seeds --seed, --seed + 1, ... and judge it by their mean"
                        " validation accuracy; K times the runs (default %(default)s)")
    p.add_argument("--n-train", type=int, default=None, help="train on the first N images only (default: all 45,000)")
    add_executor_args(p, "runs")
    p.add_argument("--data-dir", help="folder holding cifar-10-batches-py (default: $CIFAR10_DIR or data/)")
    # What is searched comes last, its range before its scale: check_flags blames the first flag given whose
    # default changes the complaint. --range has no default for most settings, so it would take the blame
    # for any mistake of the flags after it; and a range that a scale refuses is the range's mistake.
    p.add_argument("--param", default=defaults.param,
                   help=f"the setting searched, one of {', '.join(searchable())}: a numeric field of TrainConfig,"
                        " or every hidden layer's width (width), or every width times the value (width_scale);"
                        " whole numbers are rounded (default %(default)s)")
    given = p.add_mutually_exclusive_group()
    given.add_argument("--range", type=number, nargs=2, metavar=("LOW", "HIGH"),
                       help="stage 1 draws --param from here, uniformly on --scale (lambda's default:"
                            f" {low:g} {high:g}; other settings have none)")
    given.add_argument("--lam-range", type=number, nargs=2, metavar=("LOW", "HIGH"),
                       help="the same as --range, for lambda only")
    p.add_argument("--scale", choices=SCALES, default=defaults.scale,
                   help="draw and narrow on log10 of the values, or on the values (default %(default)s)")
    p.add_argument("--out", required=True, help="folder for runs.jsonl and summary.json; reused runs are skipped")
    p.set_defaults(run=run_search_command, parser=p)


def add_executor_args(p, what):
    """--workers and --scheduler: where the runs of a command go (see helpers.pool.executor_for)."""
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=None,
                       help=f"local worker processes for the {what} (default: one per core)")
    where.add_argument("--scheduler", metavar="tcp://HOST:PORT", help=f"run the {what} on this Dask cluster instead")


def add_report_command(sub):
    p = sub.add_parser(
        "report", help="the main job: run every notebook headless, gather the results summary",
        description="Run every notebook headless on a fresh kernel, write the executed copies back into "
                    "notebooks/ (with --quick or --figures-dir: into the figures' folder), and gather the results summary into figures/summary.md and "
                    "README.md (see helpers/report/job.py). Also `python -m helpers.report`.",
    )
    p.add_argument("--quick", action="store_true", help="small, fast runs (NB_QUICK=1), not into figures/")
    p.add_argument("--figures-dir", help="where figures and summary.md go (default: figures/, or "
                                         "results/quick/ with --quick)")
    p.add_argument("--cache-dir", help="cache of finished runs (default: results/cache/)")
    p.add_argument("--no-readme", action="store_true",
                   help="leave README.md alone (it is only rewritten by a full run into figures/)")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                   help="train the notebooks' runs on this Dask cluster, whose workers read the data from the"
                        " same path (default: worker processes beside each notebook's kernel)")
    p.add_argument("notebooks", nargs="*", help="notebooks to run, as paths or names such as "
                                                "01_gradient_check (default: every numbered one, in order)")
    p.set_defaults(run=run_report_command, parser=p)


# --- download, train, gradcheck ---------------------------------------------------


def run_download(args):
    folder = data.download_cifar10(args.data_dir, url=args.url, md5=args.md5 or None)
    print(f"CIFAR-10 is in {folder}")
    return 0


def train_settings(args):
    """The TrainConfig of train's flags over their --preset, checked against the official size of the split."""
    config = replace(PRESETS[args.preset], **given_settings(args, SETTINGS))
    check_config(config, data.split_sizes(args.split)[0])
    check_seeds(args.seeds)
    check_workers(args.workers)
    if args.seeds == 1 and (args.workers is not None or args.scheduler is not None):
        raise ConfigError("spreads the seeds over processes, and a single seed trains in this one:"
                          " give --seeds 2 or more.")
    if args.seeds > 1 and args.save:
        # N files from one path would be a naming scheme to guess; one seed, trained alone, saves as always.
        raise ConfigError(f"saves one network, and --seeds {args.seeds} trains {args.seeds}: to keep one,"
                          " train its seed alone (--seed S --save PATH).")
    return config


def run_train(args):
    config = check_flags(args, train_settings)
    dims = [data.N_FEATURES, *config.hidden, data.N_CLASSES]
    if args.scheduler is None:  # a cluster's memory is its workers', not this computer's
        processes = 1 if args.seeds == 1 else min(args.seeds, args.workers or cores())
        check_training_memory(config, data.split_sizes(args.split), processes, f" with --n-batch {config.n_batch}",
                              "a smaller --n-batch")
    check_output_files(args, json=0, save=4 * parameter_count(dims, config.norm))  # float32 parameters
    if args.seeds > 1:
        return train_seeds(args, config)

    cifar = data.load_cifar10(args.data_dir, split=args.split)
    print(f"training on {len(cifar.train.X)} images from {cifar.folder} (Ctrl-C stops and keeps the result)",
          flush=True)
    summary, result = run_experiment(config, cifar)
    print(run_text(summary))
    outputs = []
    if args.json:
        outputs.append(("--json", args.json, lambda: write_json(args.json, summary)))
    if args.save:
        outputs.append(("--save", args.save, lambda: save_network(result.net, args.save, config.to_dict())))
    for path in write_outputs(outputs):
        print(f"wrote {path}")
    return 0


def train_seeds(args, config):
    """train --seeds N, N > 1: the seeds in parallel, their spread printed, and --json written."""
    workers = min(args.seeds, args.workers or cores())  # a worker more than the seeds would idle
    if args.scheduler is None:
        data.find_batches_dir(args.data_dir)  # the workers would each say it is missing, later
        where = f"{workers} worker process{'es' if workers > 1 else ''}"
    else:
        where = f"the Dask cluster at {args.scheduler}"
    last = config.seed + args.seeds - 1
    print(f"training seeds {config.seed} to {last} on {where} (Ctrl-C stops them all and keeps none)", flush=True)
    with executor_for(args.scheduler, workers) as executor:
        results = run_seeds(config, args.seeds, executor, args.data_dir, args.split)
    print(spread_text(results))
    if args.json:
        for path in write_outputs([("--json", args.json, lambda: write_json(args.json, results))]):
            print(f"wrote {path}")
    return 0


def gradcheck_settings(args):
    """The TrainConfig of gradcheck's network, checked as for training; then the data it takes."""
    config = replace(TrainConfig(), **given_settings(args, GRADCHECK_SETTINGS))
    check_config(config)
    n_images = data.split_sizes("small")[0]
    if not 1 <= args.n <= n_images:
        raise ConfigError(f"n (training images used) must be between 1 and {n_images}, got {args.n}.")
    if not 1 <= args.dim <= data.N_FEATURES:
        raise ConfigError(f"dim (input features kept) must be between 1 and {data.N_FEATURES}, got {args.dim}.")
    if not args.h > 0:
        raise ConfigError(f"h (the finite-difference step) must be > 0, got {args.h}.")
    return config


def run_gradcheck(args):
    config = check_flags(args, gradcheck_settings)
    dims = [args.dim, *config.hidden, data.N_CLASSES]
    check_gradcheck_memory(config, dims, args.n, f" with --dim {args.dim} and --n {args.n}", "a smaller --dim or --n")
    check_output_files(args, json=0)

    cifar = data.load_cifar10(args.data_dir, split="small")
    if args.n > len(cifar.train.X):
        raise ConfigError(f"--n is at most {len(cifar.train.X)}, the training images in {cifar.folder}.")
    X, y = cifar.train.X[: args.n, : args.dim], cifar.train.y[: args.n]
    net = new_network(config, dims, np.float64)
    start = time.perf_counter()
    report = check_gradients(net, X, y, config.lam, h=args.h, method=args.method, dropout_seed=config.seed)
    total = time.perf_counter() - start
    network = {name: value for name, value in config.to_dict().items() if name in GRADCHECK_SETTINGS}
    print(f"{args.method} differences, h = {args.h}, n = {args.n}, dim = {args.dim}, "
          + ", ".join(f"{name} {value}" for name, value in network.items()))
    print(error_table(report["errors"]))
    print(f"max relative error {report['max_relative_error']:.2e}; {total:.2f} s")
    if args.json:
        results = {"max_relative_error": report["max_relative_error"], "errors": report["errors"], "seconds": total,
                   "config": {**network, **{name: getattr(args, name) for name in ("dim", "n", "method", "h", "data_dir")}}}
        write_outputs([("--json", args.json, lambda: write_json(args.json, results))])
    return 0


def run_settings(args):
    print(settings_table(), end="")
    return 0


# --- search ------------------------------------------------------------------------


def search_settings(args):
    """The SearchConfig of search's flags, checked."""
    defaults = SearchConfig()
    base = replace(defaults.base, **given_settings(args, ("hidden", "n_s")))
    check_param(args.param, base)  # first: an unknown setting has no range to ask for
    if args.lam_range is not None and args.param != "lam":
        raise ConfigError(f"--lam-range is the range of lambda; give that of {args.param} with --range LOW HIGH.")
    value_range = args.range or args.lam_range
    if value_range is None:
        if args.param != "lam":
            raise ConfigError(f"{args.param} has no default range: give one with --range LOW HIGH.")
        value_range = defaults.value_range
    # SearchConfig's fields have flags of the same names (and value_range, base, given above).
    given = {f.name: getattr(args, f.name) for f in fields(SearchConfig) if f.name in vars(args)}
    config = SearchConfig(**given, value_range=tuple(value_range), base=base)
    check_search_config(config)  # its refusal() of the range's ends checks the seed, too
    n_images = data.split_sizes("report")[0]
    if config.n_train is not None and config.n_train > n_images:
        raise ConfigError(f"n_train must be at most {n_images}, the training images of the report split,"
                          f" got {config.n_train}.")
    check_workers(args.workers)
    return config


def run_search_command(args):
    config = check_flags(args, search_settings)
    if args.scheduler is None:  # a cluster's memory is its workers', not this computer's
        workers = args.workers or cores()
        # At both ends of the range: a width, n_batch or cycles searched takes the most memory at one of them.
        for value in config.value_range:
            run = run_config(config, settle(config, value), config.seed)
            network = "" if config.param not in WIDTHS else f" (--param {config.param} at {value:g})"
            check_training_memory(run, data.split_sizes("report", config.n_train), workers, network, None)
    check_writable_folder(args.out, "--out")

    try:
        with executor_for(args.scheduler, args.workers) as executor:
            summary = run_search(config, args.out, executor, args.data_dir)
    except OSError as err:
        raise OutputError(
            f"the search stopped: {err}. The runs finished so far are kept in {Path(args.out) / RESULTS_FILE}:"
            " fix the cause (a full disk?) and run the same command again to train only the others."
        ) from err
    print(search_text(config, summary, args.out))
    return 0


# --- report ------------------------------------------------------------------------


def run_report_command(args):
    # Imported only here: nbclient and nbformat take seconds to import, which the other commands need not wait.
    from .report import job

    job.run_command(args.quick, args.figures_dir, args.cache_dir, args.no_readme, args.notebooks, args.scheduler)
    return 0
