"""The command line: `python -m helpers {download,train,gradcheck,search,report} --help`.

Every command checks all its flags, every path it will write, and whether
its network fits in memory before it reads any data or trains anything: a
mistake costs a second, not an hour of training and its result. Whatever
goes wrong on purpose ends as one line starting with `error:` on stderr and
exit code 2; Ctrl-C ends with exit code 130.
"""

import argparse
import math
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from .checkpoint import save_network
from .core import data
from .core.gradcheck import DEFAULT_H, check_gradients, error_table
from .core.network import EVAL_CHUNK, check_init, init_network
from .core.optim import SCHEDULES, UPDATE_RULES
from .core.training import PRESETS, TrainConfig, check_config
from .errors import ConfigError, HelpersError, OutputError
from .experiments import run_experiment
from .files import check_writable_file, check_writable_folder, write_json
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


class Parser(argparse.ArgumentParser):
    """argparse whose mistakes end like every other error: one `error:` line, exit code 2."""

    def error(self, message):
        raise ConfigError(f"{message} (see `{self.prog} --help`)")


def number(text):
    """A float flag. float() alone would take "nan" and "inf", which no setting can use."""
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


def build_parser():
    parser = Parser(prog="python -m helpers", description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(required=True, metavar="command")

    p = sub.add_parser("download", help="download and verify CIFAR-10")
    p.add_argument("--data-dir", help="folder to hold cifar-10-batches-py (default: $CIFAR10_DIR or data/)")
    p.add_argument("--from", dest="url", default=data.OFFICIAL_URL, help="archive URL; file:// works too")
    p.add_argument("--md5", default=data.OFFICIAL_MD5, help="expected MD5 of the archive ('' skips the check)")
    p.set_defaults(run=run_download, parser=p)

    defaults = TrainConfig()
    p = sub.add_parser("train", help="train a network with the report's settings",
                       description="Every setting not given comes from --preset (default: the report's).")
    # Every setting defaults to None, "not given": the preset fills it in, so that a flag given
    # with a preset always wins, even when it repeats the report's value.
    p.add_argument("--preset", choices=sorted(PRESETS), default="report",
                   help="settings to start from: 'report' (the report's network) or 'best' (the best model"
                        " of notebook 06); flags given override them")
    add_network_args(p, defaults.hidden, given_only=True)
    p.add_argument("--lam", type=number, help=f"L2 weight lambda (report: {defaults.lam})")
    p.add_argument("--cycles", type=int, help=f"learning-rate cycles (report: {defaults.cycles})")
    p.add_argument("--n-batch", type=int, help=f"mini-batch size (report: {defaults.n_batch})")
    p.add_argument("--eta-min", type=number, help=f"(report: {defaults.eta_min})")
    p.add_argument("--eta-max", type=number, help=f"(report: {defaults.eta_max})")
    p.add_argument("--n-s", type=int, help="steps per half cycle (report: 5 epochs)")
    init = p.add_mutually_exclusive_group()
    init.add_argument("--init", choices=["he", "xavier"], help="weight initialization (report: he)")
    init.add_argument("--sigma", type=number, help="initialize every layer with this standard deviation instead")
    p.add_argument("--alpha", type=number, help=f"BN running-average weight (report: {defaults.alpha})")
    p.add_argument("--seed", type=int, help=f"(report: {defaults.seed})")
    extra = p.add_argument_group("beyond the report (notebook 06)")
    extra.add_argument("--dropout", type=number, help="inverted dropout on every hidden layer (report: 0)")
    extra.add_argument("--bn-after-relu", dest="norm_place", action="store_const", const="after", default=None,
                       help="batch normalization after the ReLU instead of before")
    extra.add_argument("--skips", action="store_true", default=None,
                       help="skip connections between hidden layers of equal width")
    extra.add_argument("--optimizer", choices=UPDATE_RULES, help="update rule (report: sgd)")
    extra.add_argument("--momentum", type=number, help=f"mu of momentum and nesterov (default {defaults.momentum})")
    extra.add_argument("--schedule", choices=SCHEDULES, help="learning-rate schedule (report: cyclical)")
    extra.add_argument("--step-gamma", type=number, help=f"decay of the step schedule (default {defaults.step_gamma})")
    extra.add_argument("--warmup", type=int, help="warm-up steps of the cosine schedule (default 0)")
    extra.add_argument("--flip", action="store_true", default=None, help="random horizontal flips of training images")
    extra.add_argument("--translate", type=int, help="random translations by up to this many pixels (report: 0)")
    extra.add_argument("--brightness", type=number, help="random brightness offsets up to this, [0, 1] scale")
    extra.add_argument("--contrast", type=number, help="random contrast factors in 1 +- this")
    extra.add_argument("--tta", action="store_true", default=None,
                       help="test-time augmentation: average each image's and its mirror's softmax")
    extra.add_argument("--precise-bn", type=int, metavar="BATCHES",
                       help="recompute BN's statistics after training from this many batches (report: 0, off)")
    p.add_argument("--split", choices=data.SPLITS, default="report", help="data split (default report)")
    p.add_argument("--textbook", action="store_true", default=None,
                   help="use the plain textbook code path instead of the fast one (same math, slower)")
    p.add_argument("--layer-stats", action="store_true", default=None,
                   help='also record per-layer statistics at every evaluation'
                        ' (history["layers"] of the --json summary)')
    p.add_argument("--data-dir", help="folder holding cifar-10-batches-py (default: $CIFAR10_DIR or data/)")
    p.add_argument("--json", help="write the results to this JSON file")
    p.add_argument("--save", help="save the trained network to this .npz checkpoint (one seed only)")
    p.add_argument("--seeds", type=int, default=1,
                   help="train seeds --seed, --seed + 1, ... in parallel and print the spread of the accuracies"
                        " (default %(default)s: one run, in this process)")
    add_executor_args(p, "seeds")
    p.set_defaults(run=run_train, parser=p)

    p = sub.add_parser("gradcheck", help="check the analytic gradients against numerical ones")
    add_network_args(p, defaults.hidden)
    p.add_argument("--dim", type=int, default=data.N_FEATURES, help="input features kept (default %(default)s)")
    p.add_argument("--n", type=int, default=100, help="training images used (default %(default)s)")
    p.add_argument("--lam", type=number, default=defaults.lam, help="(default %(default)s)")
    p.add_argument("--method", choices=["centered", "forward"], default="centered")
    p.add_argument("--h", type=number, default=DEFAULT_H, help="finite-difference step (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="(default %(default)s)")
    options = p.add_argument_group("the network's options (notebook 06)")
    options.add_argument("--dropout", type=number, default=0.0,
                         help="inverted dropout, the masks fixed by --seed for the whole check (default 0)")
    options.add_argument("--bn-after-relu", dest="norm_place", action="store_const", const="after",
                         default="before", help="batch normalization after the ReLU")
    options.add_argument("--skips", action="store_true", help="skip connections between hidden layers of equal width")
    p.add_argument("--data-dir", help="folder holding cifar-10-batches-py (default: $CIFAR10_DIR or data/)")
    p.add_argument("--json", help="write the results to this JSON file")
    p.set_defaults(run=run_gradcheck, parser=p)

    add_search_command(sub)
    add_report_command(sub)
    return parser


def add_network_args(p, hidden, given_only=False):
    """--hidden, --bn and --no-bn; given_only: default None ("not given") instead of the report's."""
    p.add_argument("--hidden", type=int, nargs="*", default=None if given_only else list(hidden),
                   help="hidden widths (report: 50 50)")
    bn = p.add_mutually_exclusive_group()
    bn.add_argument("--bn", dest="norm", action="store_const", const="batch", default=None if given_only else "batch",
                    help="batch normalization (report)")
    bn.add_argument("--no-bn", dest="norm", action="store_const", const="none", help="no batch normalization")


def add_search_command(sub):
    defaults, base = SearchConfig(), SearchConfig().base
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
    p.add_argument("--hidden", type=int, nargs="*", default=list(base.hidden), help="hidden widths (default 50 50)")
    p.add_argument("--n-s", type=int, default=None, help="steps per half cycle (default: 5 epochs)")
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


# --- Checking the flags ------------------------------------------------------------


def check_flags(args, check):
    """Return check(args); if it refuses a setting (ConfigError), name the flag to blame.

    The core's check functions name settings ("n_batch must be >= 1"), not
    flags, and a rule on two settings ("Need eta_min <= eta_max") cannot
    know which one the user got wrong. The flag to blame is the first one
    given whose default, put back in its place, changes the complaint.
    args.parser is the command's parser, which knows the defaults.
    """
    try:
        return check(args)
    except ConfigError as err:
        for name, value in vars(args).items():
            default = args.parser.get_default(name)
            if value == default:
                continue
            try:
                check(argparse.Namespace(**{**vars(args), name: default}))
            except ConfigError as other:
                if str(other) == str(err):
                    continue
            raise ConfigError(f"{flag_name(args.parser, name, value)}: {err}") from None
        raise


def flag_name(parser, dest, value):
    """The flag of parser that set dest to value: "--no-bn", not "--norm", for norm="none"."""
    for action in parser._actions:
        if action.dest == dest and action.option_strings and getattr(action, "const", value) in (value, None):
            return action.option_strings[0]
    return f"--{dest.replace('_', '-')}"


def check_training(config, n_train=None):
    """Refuse a TrainConfig that cannot train: the core's checks, and those it makes only once training starts.

    n_train, the number of training images, bounds n_batch when it is known.
    """
    check_config(config, n_train)
    check_init(config.init)
    if not 0 <= config.alpha < 1:
        raise ConfigError(f"alpha must be in [0, 1), got {config.alpha}.")
    check_seed(config.seed)


def check_seed(seed):
    if seed < 0:
        raise ConfigError(f"seed must be >= 0 (NumPy's generators take no negative seed), got {seed}.")


def parameter_count(dims, batch_norm):
    """The number of parameters of a network of dims: W and b of every layer, gamma and beta of every BN layer."""
    widths = dims[1:]
    count = sum(d_in * d_out + d_out for d_in, d_out in zip(dims, widths))
    return count + (2 * sum(widths[:-1]) if batch_norm else 0)


def memory_needed(dims, batch_norm, itemsize, copies, rows, images):
    """A lower bound of the memory that training or checking the network of dims takes, in bytes, by part.

    copies: how many arrays the size of all the parameters are held at once
    (training: the parameters, their gradient, one snapshot per cycle).
    rows: the most images pushed through the network at once; each layer
    keeps at least its scores and its output for every one of them.
    images: the CIFAR-10 images held, as float32 rows of 3072 features.
    """
    return {
        "weights": copies * parameter_count(dims, batch_norm) * itemsize,
        "activations": 2 * rows * sum(dims[1:]) * itemsize,
        "data": images * data.N_FEATURES * np.dtype(np.float32).itemsize,
    }


def machine_memory():
    """The bytes of memory this process can have: the machine's, or its container's limit if lower.

    All of it, not what is free now: a size is refused only if it cannot fit at all.
    """
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    for limit in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):  # cgroup v2, v1
        try:
            text = Path(limit).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total


def check_memory(parts, rows, what, advice, processes=1):
    """Refuse work whose memory_needed (parts, in each of processes) exceeds the machine's.

    what: the flags that ask for it; advice: what to change.
    """
    needed, available = processes * sum(parts.values()), machine_memory()
    if needed <= available:
        return
    each = f", in each of {processes} processes" if processes > 1 else ""
    raise ConfigError(
        f"{what} needs at least {gigabytes(needed)} of memory, more than the {gigabytes(available)} of this"
        f" machine: the weights and their copies alone need {gigabytes(parts['weights'])}, the activations"
        f" of {rows:,} images at a time {gigabytes(parts['activations'])} and the data"
        f" {gigabytes(parts['data'])}{each}. {advice}"
    )


def gigabytes(n_bytes):
    return f"{n_bytes / 1e9:,.2f} GB"


def shown(widths):
    """Hidden widths as they were typed: "100 100", or "(none)"."""
    return " ".join(map(str, widths)) or "(none)"


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


TRAIN_FLAGS = ("norm", "lam", "n_batch", "eta_min", "eta_max", "n_s", "cycles", "alpha", "seed", "textbook",
               "dropout", "norm_place", "skips", "optimizer", "momentum", "schedule", "step_gamma", "warmup", "flip",
               "translate", "brightness", "contrast", "tta", "precise_bn", "layer_stats")
"""The flags of train named as the TrainConfig fields they set (besides --hidden, --init and --sigma)."""


def train_settings(args):
    """The TrainConfig of train's flags over their --preset, checked against the official size of the split."""
    given = {name: getattr(args, name) for name in TRAIN_FLAGS if getattr(args, name) is not None}
    if args.hidden is not None:
        given["hidden"] = tuple(args.hidden)
    if args.sigma is not None or args.init is not None:
        given["init"] = args.sigma if args.sigma is not None else args.init
    config = replace(PRESETS[args.preset], **given)
    check_training(config, data.split_sizes(args.split)[0])
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
    n_train, n_val, n_test = data.split_sizes(args.split)
    dims = [data.N_FEATURES, *config.hidden, data.N_CLASSES]
    rows = max(config.n_batch, min(EVAL_CHUNK, n_train))  # evaluation goes EVAL_CHUNK images at a time
    if args.scheduler is None:  # a cluster's memory is its workers', not this machine's
        processes = 1 if args.seeds == 1 else min(args.seeds, args.workers or cores())
        parts = memory_needed(dims, config.norm != "none", itemsize=4, copies=2 + config.cycles, rows=rows,
                              images=n_train + n_val + n_test)
        check_memory(parts, rows, f"--hidden {shown(config.hidden)} with --n-batch {config.n_batch}"
                     + (f" in {processes} processes" if processes > 1 else ""),
                     "Use fewer or narrower hidden layers, or a smaller --n-batch"
                     + (", or fewer --workers." if processes > 1 else "."), processes=processes)
    check_output_files(args, json=0, save=4 * parameter_count(dims, config.norm != "none"))  # float32 parameters
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
    """Refuse gradcheck's flags: the network's settings as for training, then the data it takes."""
    check_training(TrainConfig(hidden=tuple(args.hidden), norm=args.norm, lam=args.lam, seed=args.seed,
                               dropout=args.dropout, norm_place=args.norm_place, skips=args.skips))
    n_images = data.split_sizes("small")[0]
    if not 1 <= args.n <= n_images:
        raise ConfigError(f"n (training images used) must be between 1 and {n_images}, got {args.n}.")
    if not 1 <= args.dim <= data.N_FEATURES:
        raise ConfigError(f"dim (input features kept) must be between 1 and {data.N_FEATURES}, got {args.dim}.")
    if not args.h > 0:
        raise ConfigError(f"h (the finite-difference step) must be > 0, got {args.h}.")


def run_gradcheck(args):
    check_flags(args, gradcheck_settings)
    dims = [args.dim, *args.hidden, data.N_CLASSES]
    # In float64: the network, the check's two copies of it, and the analytic and numerical gradients.
    parts = memory_needed(dims, args.norm != "none", itemsize=8, copies=5, rows=args.n,
                          images=sum(data.split_sizes("small")))
    check_memory(parts, args.n, f"--hidden {shown(args.hidden)} with --dim {args.dim} and --n {args.n}",
                 "Use fewer or narrower hidden layers, or a smaller --dim or --n.")
    check_output_files(args, json=0)

    cifar = data.load_cifar10(args.data_dir, split="small")
    if args.n > len(cifar.train.X):
        raise ConfigError(f"--n is at most {len(cifar.train.X)}, the training images in {cifar.folder}.")
    X, y = cifar.train.X[: args.n, : args.dim], cifar.train.y[: args.n]
    net = init_network(dims, args.norm, "he", args.seed, np.float64, dropout=args.dropout,
                       norm_place=args.norm_place, skips=args.skips)
    start = time.perf_counter()
    report = check_gradients(net, X, y, args.lam, h=args.h, method=args.method, dropout_seed=args.seed)
    total = time.perf_counter() - start
    options = [f"dropout {args.dropout}"] * (args.dropout > 0) + ["BN after the ReLU"] * (args.norm_place == "after") \
        + ["skips"] * args.skips
    print(f"{args.method} differences, h = {args.h}, n = {args.n}, dim = {args.dim}, hidden {args.hidden},"
          f" {'BN' if args.norm == 'batch' else 'no BN'}, lambda {args.lam}" + "".join(f", {o}" for o in options))
    print(error_table(report["errors"]))
    print(f"max relative error {report['max_relative_error']:.2e}; {total:.2f} s")
    if args.json:
        results = {
            "max_relative_error": report["max_relative_error"],
            "errors": report["errors"],
            "seconds": total,
            "config": {k: v for k, v in vars(args).items() if k not in ("run", "parser", "json")},
        }
        write_outputs([("--json", args.json, lambda: write_json(args.json, results))])
    return 0


# --- search ------------------------------------------------------------------------


def search_settings(args):
    """The SearchConfig of search's flags, checked."""
    defaults = SearchConfig()
    base = replace(defaults.base, hidden=tuple(args.hidden), n_s=args.n_s)
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
    check_search_config(config)
    check_seed(config.seed)
    n_images = data.split_sizes("report")[0]
    if config.n_train is not None and config.n_train > n_images:
        raise ConfigError(f"n_train must be at most {n_images}, the training images of the report split,"
                          f" got {config.n_train}.")
    check_workers(args.workers)
    return config


def run_search_command(args):
    config = check_flags(args, search_settings)
    if args.scheduler is None:  # a cluster's memory is its workers', not this machine's
        workers = args.workers or cores()
        n_train, n_val, n_test = data.split_sizes("report", config.n_train)
        # At both ends of the range: a width, n_batch or cycles searched takes the most memory at one of them.
        for value in config.value_range:
            run = run_config(config, settle(config, value), config.seed)
            rows = max(run.n_batch, min(EVAL_CHUNK, n_train))
            parts = memory_needed([data.N_FEATURES, *run.hidden, data.N_CLASSES], run.norm != "none", itemsize=4,
                                  copies=2 + run.cycles, rows=rows, images=n_train + n_val + n_test)
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
