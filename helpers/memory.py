"""Will a network fit in memory? A lower bound of what training or checking it takes, and the memory there is.

The command line refuses a network that cannot fit before it reads any data
(helpers.cli): at 100,000 units a layer the weights alone take tens of GB,
and finding that out after loading the data and starting the pool costs
minutes and ends in the kernel killing the process instead of a message.
"""

import os
from pathlib import Path

import numpy as np

from .core import data
from .core.network import EVAL_CHUNK
from .errors import ConfigError
from .flags import shown


def parameter_count(dims, norm):
    """The number of parameters of a network of dims: W and b of every layer, gamma and beta of every normalized one.

    norm: the network's normalization, "none", "batch" or "layer".
    """
    widths = dims[1:]
    count = sum(d_in * d_out + d_out for d_in, d_out in zip(dims, widths))
    return count + (2 * sum(widths[:-1]) if norm != "none" else 0)


def memory_needed(dims, norm, itemsize, copies, rows, images):
    """A lower bound of the memory that training or checking the network of dims takes, in bytes, by part.

    copies: how many arrays the size of all the parameters are held at once
    (training: the parameters, their gradient, one snapshot per cycle).
    rows: the most images pushed through the network at once; each layer
    keeps at least its scores and its output for every one of them.
    images: the CIFAR-10 images held, as float32 rows of 3072 features.
    Returns {"weights": bytes, "activations": bytes, "data": bytes}.
    """
    return {
        "weights": copies * parameter_count(dims, norm) * itemsize,
        "activations": 2 * rows * sum(dims[1:]) * itemsize,
        "data": images * data.N_FEATURES * np.dtype(np.float32).itemsize,
    }


def training_memory(config, sizes):
    """memory_needed of training config (a TrainConfig) in float32 on a split of sizes (n_train, n_val, n_test).

    Returns (parts, rows): rows, the most images in the network at once, is
    a mini-batch, or an evaluation's EVAL_CHUNK images if more.
    """
    n_train = sizes[0]
    rows = max(config.n_batch, min(EVAL_CHUNK, n_train))
    dims = [data.N_FEATURES, *config.hidden, data.N_CLASSES]
    return memory_needed(dims, config.norm, itemsize=4, copies=2 + config.cycles, rows=rows,
                         images=sum(sizes)), rows


def check_training_memory(config, sizes, processes, flags, advice):
    """Refuse training config (a TrainConfig) on a split of sizes in each of processes if it cannot fit.

    flags: how the command line asked for more than --hidden, e.g. " with
    --n-batch 100"; advice: what else could be made smaller, or None.
    """
    parts, rows = training_memory(config, sizes)
    what = f"--hidden {shown(config.hidden)}{flags}" + (f" in {processes} processes" if processes > 1 else "")
    tips = ["fewer or narrower hidden layers", *([advice] if advice else []), *(["fewer --workers"] if processes > 1 else [])]
    check_memory(parts, rows, what, f"Use {', or '.join(tips)}.", processes)


def check_gradcheck_memory(config, dims, n, flags, advice):
    """Refuse a gradient check of config's network of dims on n images if it cannot fit (see check_training_memory).

    In float64: the network, the check's two copies of it, and the analytic
    and numerical gradients; the small split's images.
    """
    parts = memory_needed(dims, config.norm, itemsize=8, copies=5, rows=n, images=sum(data.split_sizes("small")))
    check_memory(parts, n, f"--hidden {shown(config.hidden)}{flags}", f"Use fewer or narrower hidden layers, or {advice}.")


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
    """Refuse work whose memory_needed (parts, in each of processes) exceeds machine_memory().

    what: the flags that ask for it; advice: what to change.
    """
    needed, available = processes * sum(parts.values()), machine_memory()
    if needed <= available:
        return
    each = f", in each of {processes} processes" if processes > 1 else ""
    raise ConfigError(
        f"{what} needs at least {gigabytes(needed)} of memory, more than the {gigabytes(available)} there is"
        f" (the computer's memory, or its container's limit): the weights and their copies alone need"
        f" {gigabytes(parts['weights'])}, the activations of {rows:,} images at a time"
        f" {gigabytes(parts['activations'])} and the data {gigabytes(parts['data'])}{each}. {advice}"
    )


def gigabytes(n_bytes):
    return f"{n_bytes / 1e9:,.2f} GB"
