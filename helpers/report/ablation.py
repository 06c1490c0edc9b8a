"""An ablation: which change to the report's network buys how much.

Each change is a set of TrainConfig fields. The table trains the base (the
report's 3-layer BN network) and every change alone on top of it, then the
changes added one by one up to the best model, each over several seeds, and
reports mean +- std of the test accuracy, the gain over the base in points,
and the time per run. `gains_text` turns the measured table into the
paragraph the exercise asks for: which changes gave the largest gains.
"""

from dataclasses import dataclass, replace

import numpy as np

from .summary import format_spread
from .tables import Table
from .verdicts import ALPHA, format_p, welch


@dataclass(frozen=True)
class Change:
    """One change to a TrainConfig: a name for the tables and the fields it sets."""

    name: str
    fields: tuple  # ((field, value), ...): a tuple, so that a Change can be a dict key

    def apply(self, config):
        return replace(config, **dict(self.fields))


def change(name, **fields):
    return Change(name, tuple(fields.items()))


def ablation_configs(base, changes):
    """The runs of an ablation: {label: TrainConfig}, in table order.

    "base", then each change alone on base ("+ name"), then the changes
    added one by one ("base + a", "base + a + b", ...); the last is the
    best model. A cumulative row equal to a row before it (the first change)
    is not repeated.
    """
    configs = {"base": base}
    for c in changes:
        configs[f"+ {c.name}"] = c.apply(base)
    config = base
    for i, c in enumerate(changes):
        config = c.apply(config)
        if i > 0:
            configs["base + " + " + ".join(x.name for x in changes[: i + 1])] = config
    return configs


def ablation_table(runs):
    """The ablation's rows: test accuracy mean +- std, gain over the base with Welch's p, time per run.

    runs: {label: [summary of each seed]}, with "base" among them.
    """
    base = [run["test_accuracy"] for run in runs["base"]]
    rows = []
    for label, seeded in runs.items():
        tests = [run["test_accuracy"] for run in seeded]
        if label == "base":
            gain, p = "-", "-"
        else:
            test = welch(tests, base)
            gain, p = f"{100 * test['difference']:+.2f}", format_p(test["p"])
        rows.append([label, len(seeded), format_spread(tests), gain, p,
                     f"{np.mean([run['train_seconds'] for run in seeded]):.0f} s"])
    return Table(["run", "seeds", "test accuracy", "gain over base (points)", "Welch's t-test", "time per run"],
                 rows)


def gains_text(runs, changes):
    """A paragraph, written from the measured runs, on which changes gave the largest gains.

    runs: as for ablation_table, for the labels of ablation_configs(base, changes).
    """
    base = [run["test_accuracy"] for run in runs["base"]]
    alone = []
    for c in changes:
        tests = [run["test_accuracy"] for run in runs[f"+ {c.name}"]]
        alone.append((c.name, welch(tests, base)))
    alone.sort(key=lambda item: item[1]["difference"], reverse=True)
    helped = [f"{name} ({100 * t['difference']:+.2f} points, {format_p(t['p'])})"
              for name, t in alone if t["difference"] > 0 and t["p"] < ALPHA]
    neutral = [name for name, t in alone if t["p"] >= ALPHA]
    hurt = [f"{name} ({100 * t['difference']:+.2f} points)" for name, t in alone
            if t["difference"] < 0 and t["p"] < ALPHA]
    best_label = list(runs)[-1]
    best = [run["test_accuracy"] for run in runs[best_label]]
    gain = welch(best, base)
    sentences = []
    if helped:
        sentences.append("Alone on the report's network, the largest gains came from " + join(helped) + ".")
    if neutral:
        sentences.append(join(neutral).capitalize() + " made no difference the seeds could tell from noise.")
    if hurt:
        sentences.append("Alone, " + join(hurt) + " lowered the accuracy.")
    sentences.append(f"All the changes together ({best_label}) reach {format_spread(best)}, "
                     f"{100 * gain['difference']:+.2f} points over the base.")
    return " ".join(sentences)


def join(items):
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
