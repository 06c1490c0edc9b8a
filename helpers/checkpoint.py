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

from .core.network import Network, check_options
from .errors import CheckpointError, ConfigError
from .files import write_atomically

FORMAT = "helpers.network"
VERSION = 3
"""Version 3 names the normalization (norm, and norm_place among the options) where version 2 had
batch_norm and bn_after_relu; version 2 added the network's options (dropout, bn_after_relu, skips),
of which a version 1 file has none on. Versions 1 and 2 still load."""
OPTIONS = ("dropout", "norm_place", "skips")


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
        "norm": np.array(net.norm),
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
    if version not in (1, 2, VERSION):
        raise CheckpointError(
            f"{path} is checkpoint format version {version}; this package reads versions 1 to {VERSION}."
        )
    try:
        dims = [int(d) for d in arrays["dims"]]
        net = Network(
            dims,
            norm(arrays, version),
            {key.split("/", 1)[1]: a for key, a in arrays.items() if key.startswith("param/")},
            {key.split("/", 1)[1]: a for key, a in arrays.items() if key.startswith("running/")},
            float(arrays["alpha"]),
            **options(arrays, version),
        )
        config = json.loads(arrays["config"].item())
        check_options(net.dims, net.norm, net.dropout, net.norm_place, net.skips)
    except (KeyError, ValueError, TypeError, ConfigError) as e:
        raise CheckpointError(f"{path} is damaged: {e!r}; save the network again.") from None
    check_shapes(net, path)
    return net, config


def norm(arrays, version):
    """The network's normalization: a version 1 or 2 file says only whether it batch-normalizes."""
    if version < 3:
        return "batch" if bool(arrays["batch_norm"]) else "none"
    return str(arrays["norm"])


def options(arrays, version):
    """The options of Network, from a file of any version: none in version 1, bn_after_relu in version 2."""
    if version == 1:
        return {}
    if version == 2:
        norm_place = "after" if bool(arrays["option/bn_after_relu"]) else "before"
    else:
        norm_place = str(arrays["option/norm_place"])
    return {"dropout": float(arrays["option/dropout"]), "norm_place": norm_place,
            "skips": bool(arrays["option/skips"])}


def check_shapes(net, path):
    """Every array a network of net.dims needs, with the right shape, and nothing else."""
    k = len(net.dims) - 1
    expected = {}
    for l in range(1, k + 1):
        expected[f"W{l}"] = (net.dims[l - 1], net.dims[l])
        expected[f"b{l}"] = (net.dims[l],)
        if net.norm != "none" and l < k:
            for name in ("gamma", "beta"):
                expected[f"{name}{l}"] = (net.dims[l],)
    expected_running = ({f"{s}{l}": (net.dims[l],) for l in range(1, k) for s in ("mu", "var")}
                        if net.norm == "batch" else {})
    for found, wanted, what in ((net.params, expected, "parameters"), (net.running, expected_running, "BN statistics")):
        if set(found) != set(wanted):
            raise CheckpointError(
                f"{path} has {what} {sorted(found)}, but a network of sizes {net.dims} needs {sorted(wanted)}."
            )
        for name, shape in wanted.items():
            if found[name].shape != shape:
                raise CheckpointError(f"{path}: {name} has shape {found[name].shape}, expected {shape}.")
