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
from dataclasses import replace
from pathlib import Path

import numpy as np

from .checkpoint import save_network
from .core import data
from .core.gradcheck import DEFAULT_H, check_gradients, error_table
from .core.network import init_network
from .core.training import PRESETS, SETTINGS, TrainConfig, check_config, settings_table
from .errors import ConfigError, HelpersError, OutputError
from .experiments import run_experiment
from .files import check_writable_file, check_writable_folder, write_json
from .flags import Parser, add_settings, check_flags, given_settings, number, shown
from .memory import check_memory, memory_needed, parameter_count, training_memory
from .pool import cores, executor_for
from .search import (
    RESULTS_FILE,
    SCALES,
    SUMMARY_FILE,
    WIDTHS,
    SearchConfig,
    check_param,
    check_search_config,
    field_label,
    run_config,
    run_search,
    searchable,
    settle,
    values_label,
)
from .seeds import check_seeds, run_seeds


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


GRADCHECK_SETTINGS = ("hidden", "batch_norm", "init", "dropout", "bn_after_relu", "skips", "lam", "seed")
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


def check_workers(workers):
    if workers is not None and workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}.")


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


def check_output_files(args, **sizes):
    """Refuse the output files args.<flag>, for each flag of sizes, that could not be written once the work is done.

    sizes: the bytes each file will take, if known (else 0).
    """
    given = {flag: getattr(args, flag) for flag in sizes if getattr(args, flag)}
    for flag, path in given.items():
        check_writable_file(path, f"--{flag}", sizes[flag])
    if len(given) > len({Path(path).resolve() for path in given.values()}):
        raise ConfigError(f"{' and '.join(f'--{flag}' for flag in given)} name the same file; give each its own.")


def write_outputs(outputs):
    """Write each (flag, path, write) in turn; one that fails (a full disk) does not stop the others.

    Returns the paths written; raises OutputError naming the outputs that failed.
    """
    written, failed = [], []
    for flag, path, write in outputs:
        try:
            write()
            written.append(path)
        except OSError as err:
            failed.append(f"{flag} {path} ({err.strerror or err})")
    if failed:
        kept = f"; wrote {', '.join(map(str, written))}" if written else ""
        raise OutputError(f"could not write {' and '.join(failed)}{kept}. Free some space, or choose another path.")
    return written


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
        parts, rows = training_memory(config, data.split_sizes(args.split))
        check_memory(parts, rows, f"--hidden {shown(config.hidden)} with --n-batch {config.n_batch}"
                     + (f" in {processes} processes" if processes > 1 else ""),
                     "Use fewer or narrower hidden layers, or a smaller --n-batch"
                     + (", or fewer --workers." if processes > 1 else "."), processes=processes)
    check_output_files(args, json=0, save=4 * parameter_count(dims, config.batch_norm))  # float32 parameters
    if args.seeds > 1:
        return train_seeds(args, config)

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
    outputs = []
    if args.json:
        outputs.append(("--json", args.json, lambda: write_json(args.json, summary)))
    if args.save:
        outputs.append(("--save", args.save, lambda: save_network(result.net, args.save, config.to_dict())))
    for path in write_outputs(outputs):
        print(f"wrote {path}")
    return 0


SPREAD_ROWS = (("test_accuracy", "test accuracy"), ("ensemble_test_accuracy", "ensemble test accuracy"),
               ("val_accuracy", "validation accuracy"))


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
    stats = results["statistics"]
    print(f"over {args.seeds} seeds (std: the sample standard deviation, ddof=1)")
    print(f"{'':24}{'mean ± std':>16}  {'min':>9}  {'max':>9}")
    for key, label in SPREAD_ROWS:
        s = stats[key]
        print(f"{label:24}{100 * s['mean']:6.2f} ± {100 * s['std']:5.2f} %  {100 * s['min']:7.2f} %"
              f"  {100 * s['max']:7.2f} %")
    for seed, summary in zip(results["seeds"], results["summaries"]):
        print(f"seed {seed}: test {100 * summary['test_accuracy']:.2f} %,"
              f" ensemble {100 * summary['ensemble_test_accuracy']:.2f} %,"
              f" validation {100 * summary['val_accuracy']:.2f} %;"
              f" {summary['steps']} steps in {summary['train_seconds']:.1f} s")
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
    # In float64: the network, the check's two copies of it, and the analytic and numerical gradients.
    parts = memory_needed(dims, config.batch_norm, itemsize=8, copies=5, rows=args.n,
                          images=sum(data.split_sizes("small")))
    check_memory(parts, args.n, f"--hidden {shown(config.hidden)} with --dim {args.dim} and --n {args.n}",
                 "Use fewer or narrower hidden layers, or a smaller --dim or --n.")
    check_output_files(args, json=0)

    cifar = data.load_cifar10(args.data_dir, split="small")
    if args.n > len(cifar.train.X):
        raise ConfigError(f"--n is at most {len(cifar.train.X)}, the training images in {cifar.folder}.")
    X, y = cifar.train.X[: args.n, : args.dim], cifar.train.y[: args.n]
    net = init_network(dims, config.batch_norm, config.init, config.seed, np.float64, dropout=config.dropout,
                       bn_after_relu=config.bn_after_relu, skips=config.skips)
    start = time.perf_counter()
    report = check_gradients(net, X, y, config.lam, h=args.h, method=args.method, dropout_seed=config.seed)
    total = time.perf_counter() - start
    network = {name: value for name, value in config.to_dict().items() if name in GRADCHECK_SETTINGS}
    print(f"{args.method} differences, h = {args.h}, n = {args.n}, dim = {args.dim}, "
          + ", ".join(f"{name} {value}" for name, value in network.items()))
    print(error_table(report["errors"]))
    print(f"max relative error {report['max_relative_error']:.2e}; {total:.2f} s")
    if args.json:
        results = {
            "max_relative_error": report["max_relative_error"],
            "errors": report["errors"],
            "seconds": total,
            "config": {**network, "dim": args.dim, "n": args.n, "method": args.method, "h": args.h,
                       "data_dir": args.data_dir},
        }
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
    config = SearchConfig(
        param=args.param,
        scale=args.scale,
        value_range=tuple(value_range),
        coarse=args.coarse,
        fine=args.fine,
        stages=args.stages,
        shrink=args.shrink,
        cycles=args.cycles,
        seed=args.seed,
        seeds=args.seeds,
        base=base,
        n_train=args.n_train,
    )
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
            parts, rows = training_memory(run, data.split_sizes("report", config.n_train))
            network = f"--hidden {shown(run.hidden)}" if config.param not in WIDTHS else \
                f"--param {config.param} at {value:g} (hidden widths {shown(run.hidden)})"
            check_memory(parts, rows, f"{network} with {workers} workers",
                         "Use fewer or narrower hidden layers, or fewer --workers.", processes=workers)
    check_writable_folder(args.out, "--out")

    try:
        with executor_for(args.scheduler, args.workers) as executor:
            summary = run_search(config, args.out, executor, args.data_dir)
    except OSError as err:
        raise OutputError(
            f"the search stopped: {err}. The runs finished so far are kept in {Path(args.out) / RESULTS_FILE}:"
            " fix the cause (a full disk?) and run the same command again to train only the others."
        ) from err
    name, values, seeds = field_label(config.param), values_label(config.param), config.seeds
    if seeds > 1:
        print(f"each {name} judged on the mean of {seeds} seeds ({config.seed} to {config.seed + seeds - 1});"
              " ± is their sample standard deviation (ddof=1)")
    for s in summary["stages"]:
        low, high = s["range"]
        best = s["best"]
        drawn = len(s["values"])
        runs = f"{drawn} runs" if seeds == 1 else f"{drawn * seeds} runs ({drawn} {values} x {seeds} seeds)"
        print(f"stage {s['stage']}: {runs}, {name} in [{low:.3g}, {high:.3g}]:"
              f" best {name} {best['value']:.4g} (validation accuracy {mean_and_std(best)})")
    best = summary["best"]
    means = "" if seeds == 1 else f" (means over {seeds} seeds)"
    print(f"best {name} {best['value']:.4g}: validation accuracy {mean_and_std(best)},"
          f" test accuracy {100 * best['test_accuracy']:.2f} %{means}")
    print(f"trained {summary['trained']} runs, reused {summary['reused']};"
          f" summary in {Path(args.out) / SUMMARY_FILE}")
    return 0


def mean_and_std(judged):
    """A judged value's validation accuracy (helpers.search.brief): "54.12 %", or "54.12 ± 0.40 %" over seeds."""
    if judged["val_accuracy_std"] is None:
        return f"{100 * judged['val_accuracy']:.2f} %"
    return f"{100 * judged['val_accuracy']:.2f} ± {100 * judged['val_accuracy_std']:.2f} %"


# --- report ------------------------------------------------------------------------


def run_report_command(args):
    # Imported only here: nbclient and nbformat take seconds to import, which the other commands need not wait.
    from .report import job
    from .report.settings import notebook_settings

    settings = notebook_settings(args.quick, args.figures_dir, args.cache_dir, environ={}, scheduler=args.scheduler)
    figures_dir, cache_dir = settings.figures, settings.cache
    job.check_output_folder(args.quick, figures_dir)
    # The README's headline links REPORT.md: both are rewritten only by a full run into figures/.
    writes_back = job.executed_folder(args.quick, figures_dir) == job.NOTEBOOKS_DIR
    readme = job.REPO / "README.md" if writes_back and not args.no_readme else None
    notebooks = [job.find_notebook(name) for name in args.notebooks] or None
    check_writable_folder(figures_dir, "--figures-dir")
    check_writable_folder(cache_dir, "--cache-dir")
    check_writable_folder(job.executed_folder(args.quick, figures_dir), "the executed notebooks' folder")
    if readme is not None:
        check_writable_file(readme, "README.md (--no-readme leaves it alone)")
    data.find_batches_dir()  # every notebook reads CIFAR-10: say now, not in the first notebook, if it is missing

    try:
        job.run_report(args.quick, figures_dir, cache_dir, readme, notebooks, scheduler=settings.scheduler)
    except OSError as err:
        raise OutputError(f"the main job stopped: {err}. Fix the cause (a full disk?) and run it again:"
                          " the cache recalls every run already finished.") from err
    return 0
