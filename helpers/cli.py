"""The command line: `python -m helpers {download,train,gradcheck} --help`."""

import argparse
import sys
import time

import numpy as np

from .core import data
from .checkpoint import save_network
from .errors import ConfigError, HelpersError
from .core.gradcheck import DEFAULT_H, check_gradients, error_table
from .experiments import run_experiment
from .files import write_json
from .core.network import check_init, init_network
from .search import add_search_command
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

