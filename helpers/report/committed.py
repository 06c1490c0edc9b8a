"""Results too costly for the main job: made once by a command of their own, committed, read in full mode.

Notebook 04's searches of lambda and notebook 06's comparison of update
rules would add more training to the main job than it has time for. Each
has a command, `python -m helpers.report.<module>`, that trains it (every
run kept in the cache, so an interrupted command loses nothing) and writes
one JSON file to figures/; in full mode the notebook reads that file, and
refuses it, naming the command, if it is missing or was made with other
settings than the notebook's. In quick mode (CI) the notebook runs the same
code on small runs instead.
"""

import argparse
import json
import sys
from pathlib import Path

from ..core.config import TrainConfig
from ..core.data import load_cifar10
from ..errors import HelpersError
from ..files import check_writable_file, shown_path, write_json
from .cache import DEFAULT_CACHE_DIR


def read_committed(path, expected, command):
    """The result stored at path, refused if it is missing or was made with other settings than expected.

    The file holds {"settings": ..., ...}; expected: the settings the
    notebook would make it with. A TrainConfig field that expected has at
    its default and the file lacks (added to TrainConfig since the file was
    made) does not make it stale; any other difference does. command: how
    to make the file and how long it takes, for the error message.
    """
    path = Path(path)
    try:
        stored = json.loads(path.read_text())
    except FileNotFoundError:
        raise HelpersError(f"{path} is missing: make it with {command}.") from None
    differ = differing(stored["settings"], expected)
    if differ:
        raise HelpersError(f"{path} was made with other settings than the notebook's ({', '.join(differ)} "
                           f"differ): it is stale; make it again with {command}.")
    return stored


def differing(have, expected, prefix=""):
    """The keys of the dict expected whose values differ in have, dotted ("base.lam"); see read_committed."""
    is_config = expected.keys() == DEFAULTS.keys()  # a TrainConfig's dict, at today's fields
    differ = []
    for key, value in expected.items():
        if key not in have:
            if not (is_config and value == DEFAULTS[key]):
                differ.append(prefix + key)
        elif isinstance(value, dict) and isinstance(have[key], dict):
            differ += differing(have[key], value, f"{prefix}{key}.")
        elif have[key] != value:
            differ.append(prefix + key)
    return differ


DEFAULTS = TrainConfig().to_dict()
"""The default of every TrainConfig field, as in a config's dict."""


def without_history(summary):
    """A run's summary without its curves: a committed table needs its final numbers only, and the file stays small."""
    return {key: value for key, value in summary.items() if key != "history"}


def commit_main(argv, prog, description, out, make):
    """The command that makes a committed result: parse argv, make it, write it to --out, print its text.

    make(cifar, cache_dir, scheduler) -> (result, text): trains on cifar
    (the report split) with runs kept in cache_dir, on the Dask cluster at
    scheduler or on one worker process per core (None). Returns the exit
    code: bad input or a failed run ends in one `error:` line and 2.
    """
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--out", default=str(out), help=f"the JSON file to write (default: {shown_path(out)})")
    parser.add_argument("--cache", default=str(DEFAULT_CACHE_DIR),
                        help=f"folder of finished runs, reused and added to (default: {shown_path(DEFAULT_CACHE_DIR)})")
    parser.add_argument("--data-dir", help="folder holding cifar-10-batches-py (default: data/)")
    parser.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                        help="train on this Dask cluster, whose workers read the data from the same path"
                             " (default: one worker process per core)")
    args = parser.parse_args(argv)
    try:
        check_writable_file(args.out, "--out")
        cifar = load_cifar10(args.data_dir, split="report")
        result, text = make(cifar, args.cache, args.scheduler)
        write_json(args.out, result)
    except HelpersError as e:  # as the package's command line: one line, exit code 2
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(text)
    return 0
