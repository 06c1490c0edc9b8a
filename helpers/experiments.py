"""One experiment: train a configuration and summarize it as plain, JSON-able data.

The command line, the notebooks and the search all call `run_experiment`, so
a run means the same thing, and is recorded the same way, wherever it is made.
"""

from dataclasses import replace

import numpy as np

from .core.augment import tta_proba
from .core.network import accuracy, forward
from .core.training import ensemble_accuracy, train
from .files import shown_path


def summarize(result, cifar):
    """The numbers and curves of a finished run, as a dict of plain values.

    result: a TrainResult; cifar: the helpers.core.data.Cifar10 it was trained on.
    """
    test, val = cifar.test, cifar.val
    snapshots = result.snapshots
    final_accuracy = tta_accuracy if result.config.tta else accuracy
    return {
        "test_accuracy": final_accuracy(result.net, test.X, test.y),
        "val_accuracy": final_accuracy(result.net, val.X, val.y),
        "ensemble_test_accuracy": ensemble_accuracy(snapshots, test.X, test.y) if snapshots else None,
        "batch_stats_test_accuracy": (batch_stats_accuracy(result.net, test.X, test.y, result.config.n_batch)
                                      if result.config.norm == "batch" else None),
        "snapshots": len(snapshots),
        "steps": result.steps,
        "n_s": result.n_s,
        "train_seconds": result.train_seconds,
        "ms_per_step": 1000 * result.train_seconds / max(1, result.steps),
        "interrupted": result.interrupted,
        "n_train": len(cifar.train.X),
        "data": shown_path(cifar.folder),
        "config": result.config.to_dict(),
        "history": {**result.history, "eta": result.etas.tolist()},
        **precise_bn_summary(result, cifar),
        **({"without_tta": {"test_accuracy": accuracy(result.net, test.X, test.y),
                            "val_accuracy": accuracy(result.net, val.X, val.y)}} if result.config.tta else {}),
    }


def tta_accuracy(net, X, y):
    """The accuracy of test-time augmentation: each image's and its mirror's softmax averaged."""
    return float(np.mean(tta_proba(net, X).argmax(axis=1) == y))


def batch_stats_accuracy(net, X, y, n_batch):
    """The accuracy of a BN network that normalizes with each test batch's own statistics.

    X: (n, d), y: (n,). The images go through the network in training mode,
    n_batch at a time in their order (the last batch holds what is left), so
    each layer normalizes by the mean and variance of those n_batch images,
    as in training, instead of by the running averages. Dropout stays off, as
    at test time. Nothing of net changes: the running averages are updated by
    the training step, not by the forward pass.
    """
    still = replace(net, dropout=0.0)  # shares net's arrays
    correct = 0
    for i in range(0, len(X), n_batch):
        S, _ = forward(still, X[i : i + n_batch], training=True)
        correct += int(np.sum(S.argmax(axis=1) == y[i : i + n_batch]))
    return correct / len(X)


def precise_bn_summary(result, cifar):
    """With PreciseBN, the test and validation accuracy of the network before it: {} otherwise.

    With TTA too, also that network's accuracies with TTA ("tta_test_accuracy",
    "tta_val_accuracy"), so that one run gives all four evaluations.
    """
    before = result.before_precise_bn
    if before is None:
        return {}
    test, val = cifar.test, cifar.val
    accuracies = {"test_accuracy": accuracy(before, test.X, test.y), "val_accuracy": accuracy(before, val.X, val.y)}
    if result.config.tta:
        accuracies.update(tta_test_accuracy=tta_accuracy(before, test.X, test.y),
                          tta_val_accuracy=tta_accuracy(before, val.X, val.y))
    return {"before_precise_bn": accuracies}


def evaluated(summary, precise_bn, tta):
    """The test and validation accuracy of a run as evaluated with or without PreciseBN and TTA.

    summary: of a run whose config has at least the evaluations asked for
    (PreciseBN, TTA). -> {"test_accuracy": ..., "val_accuracy": ...}
    """
    config = summary["config"]
    if (precise_bn and not config["precise_bn"]) or (tta and not config["tta"]):
        raise ValueError(f"A run with precise_bn={config['precise_bn']}, tta={config['tta']} cannot be "
                         f"evaluated with precise_bn={precise_bn}, tta={tta}.")
    if config["precise_bn"] and not precise_bn:
        before = summary["before_precise_bn"]
        prefix = "tta_" if tta else ""
        return {part: before[f"{prefix}{part}"] for part in ("test_accuracy", "val_accuracy")}
    source = summary["without_tta"] if config["tta"] and not tta else summary
    return {part: source[part] for part in ("test_accuracy", "val_accuracy")}


def run_experiment(config, cifar, progress=True):
    """Train `config` on cifar.train (validating on cifar.val) and summarize it.

    Returns (summary, result): the JSON-able summary and the full TrainResult.
    """
    result = train(config, cifar.train, cifar.val, progress=progress, mean=cifar.mean, std=cifar.std)
    return summarize(result, cifar), result
