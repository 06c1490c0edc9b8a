"""Save and load trained networks as .npz files.

A checkpoint holds the parameters, the running BN statistics, the sizes, and
the training configuration (as JSON), with a format name and version so that
a file from elsewhere, or from a future version, is refused with a clear
message instead of loading into something subtly wrong. No pickles: loading
a checkpoint cannot run code.
"""

import io
import json
import zipfile
from pathlib import Path

import numpy as np

from .core.network import Network
from .errors import CheckpointError
from .files import write_atomically

FORMAT = "helpers.network"
VERSION = 2
"""Version 2 adds the network's options (dropout, bn_after_relu, skips); a version 1 file has none of them on."""
OPTIONS = {"dropout": float, "bn_after_relu": bool, "skips": bool}


def save_network(net, path, config=None):
    """Write net (and the configuration that trained it, a JSON-able dict) to path.

    The file is written whole or not at all (helpers.files.write_atomically):
    a crash leaves either the old file or the new one, never half of one.
    """
    path = Path(path)
    arrays = {
        "format": np.array(FORMAT),
        "version": np.array(VERSION),
        "dims": np.array(net.dims),
        "batch_norm": np.array(net.batch_norm),
        "alpha": np.array(net.alpha),
        **{f"option/{name}": np.array(getattr(net, name)) for name in OPTIONS},
        "config": np.array(json.dumps(config or {})),
    }
    arrays.update({f"param/{name}": p for name, p in net.params.items()})
    arrays.update({f"running/{name}": r for name, r in net.running.items()})
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_atomically(path, buffer.getbuffer())
    return path


def load_network(path):
    """Read a checkpoint written by save_network -> (Network, config dict)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {key: f[key] for key in f.files}
    except FileNotFoundError:
        raise CheckpointError(f"No checkpoint at {path}.") from None
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise CheckpointError(f"{path} is not a readable checkpoint ({e}); save the network again.") from None
    if arrays.get("format", np.array("")).item() != FORMAT:
        raise CheckpointError(f"{path} is not a network checkpoint of this package (no format '{FORMAT}').")
    version = int(arrays["version"])
    if version not in (1, VERSION):
        raise CheckpointError(
            f"{path} is checkpoint format version {version}; this package reads version {VERSION}."
        )
    try:
        dims = [int(d) for d in arrays["dims"]]
        batch_norm = bool(arrays["batch_norm"])
        net = Network(
            dims,
            batch_norm,
            {key.split("/", 1)[1]: a for key, a in arrays.items() if key.startswith("param/")},
            {key.split("/", 1)[1]: a for key, a in arrays.items() if key.startswith("running/")},
            float(arrays["alpha"]),
            **{name: kind(arrays[f"option/{name}"]) for name, kind in OPTIONS.items() if version >= 2},
        )
        config = json.loads(arrays["config"].item())
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"{path} is damaged: {e!r}; save the network again.") from None
    check_shapes(net, path)
    return net, config


def check_shapes(net, path):
    """Every array a network of net.dims needs, with the right shape, and nothing else."""
    k = len(net.dims) - 1
    expected = {}
    for l in range(1, k + 1):
        expected[f"W{l}"] = (net.dims[l - 1], net.dims[l])
        expected[f"b{l}"] = (net.dims[l],)
        if net.batch_norm and l < k:
            for name in ("gamma", "beta"):
                expected[f"{name}{l}"] = (net.dims[l],)
    expected_running = {f"{s}{l}": (net.dims[l],) for l in range(1, k) for s in ("mu", "var")} if net.batch_norm else {}
    for found, wanted, what in ((net.params, expected, "parameters"), (net.running, expected_running, "BN statistics")):
        if set(found) != set(wanted):
            raise CheckpointError(
                f"{path} has {what} {sorted(found)}, but a network of sizes {net.dims} needs {sorted(wanted)}."
            )
        for name, shape in wanted.items():
            if found[name].shape != shape:
                raise CheckpointError(f"{path}: {name} has shape {found[name].shape}, expected {shape}.")
