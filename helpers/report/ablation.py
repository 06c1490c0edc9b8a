"""An ablation: which change to the report's network buys how much.

Each change is a set of TrainConfig fields. The table trains the base (the
report's 3-layer BN network) and every change alone on top of it, then the
changes added one by one (those that are added up), each over several seeds,
and reports mean +- std of the test accuracy, the gain over the base in
points, and the time per run. Below them go the best model of `--preset best`
without and with mirror TTA (tta_rows), from one training per seed.
`gains_text` turns the measured table into the paragraph the exercise asks
for: which changes gave the largest gains.

Cost. The full ablation is 14 trainings of 9,000 steps per seed, 3 seeds,
some on the textbook path (layer normalization, BN after the ReLU), some
four times wider: about 13 minutes with 2 cores, as long as the whole
main job. `python -m helpers.report.ablation` trains it once and writes
ABLATION_FILE, which notebook 06 reads in full mode (helpers.report.committed);
in quick mode the notebook trains the same rows on short runs.
"""

import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..core.config import PRESETS, TrainConfig
from ..errors import HelpersError
from ..experiments import evaluated
from ..files import shown_path
from .cache import cached_seeds
from .committed import commit_main, read_committed, without_history
from .settings import FIGURES_DIR
from .summary import format_spread
from .tables import Table
from .verdicts import ALPHA, capitalized, format_p, gain_and_p, join, welch


@dataclass(frozen=True)
class Change:
    """One change to a TrainConfig: a name for the tables, the fields it sets, and whether it is added up.

    added_up: False for a change measured alone only, not added to the
    others one by one (see CHANGES).
    """

    name: str
    fields: tuple  # ((field, value), ...): a tuple, so that a Change can be a dict key
    added_up: bool = True

    def apply(self, config):
        return replace(config, **dict(self.fields))


def change(name, added_up=True, **fields):
    return Change(name, tuple(fields.items()), added_up)


def ablation_configs(base, changes):
    """The runs of an ablation: {label: TrainConfig}, in table order.

    "base", then each change alone on base ("+ name"), then the changes
    that are added up, added one by one ("base + a", "base + a + b", ...);
    the last is all of them together (together_label). A cumulative row
    equal to a row before it (the first change) is not repeated.
    """
    configs = {"base": base}
    for c in changes:
        configs[f"+ {c.name}"] = c.apply(base)
    added = [c for c in changes if c.added_up]
    config = base
    for i, c in enumerate(added):
        config = c.apply(config)
        if i > 0:
            configs["base + " + " + ".join(x.name for x in added[: i + 1])] = config
    return configs


def together_label(changes):
    """The label of ablation_configs' row with every added-up change of changes together."""
    added = [c.name for c in changes if c.added_up]
    return f"+ {added[0]}" if len(added) == 1 else "base + " + " + ".join(added)


def ablation_runs(configs, cifar, seeds, cache_dir, executor=None):
    """The runs of an ablation over seeds: {label: [summary] * seeds}, each network trained once.

    configs: {label: TrainConfig}, e.g. ablation_configs(...). PreciseBN and
    TTA change only how a trained network is evaluated, so the configs that
    differ in nothing else share one training, run with both, and each of
    them reads its own evaluation from it (experiments.evaluated): in the
    report's ablation that is 4 trainings fewer per seed, one of the base and
    one of the wide network. Those trainings go through cached_seeds
    together. A label's summaries are the shared run's, with the accuracies
    and the config of its own evaluation.
    """
    shared = {}  # the training's config as JSON -> [that config, PreciseBN batches, TTA]
    for config in configs.values():
        training = replace(config, precise_bn=0, tta=False)
        entry = shared.setdefault(key_of(training), [training, 0, False])
        if config.precise_bn and entry[1] and config.precise_bn != entry[1]:
            raise ValueError(f"Two rows of {training} ask for PreciseBN over {entry[1]} and "
                             f"{config.precise_bn} batches: one training can give only one of them.")
        entry[1], entry[2] = config.precise_bn or entry[1], entry[2] or config.tta
    trained = cached_seeds({key: replace(training, precise_bn=precise_bn, tta=tta)
                            for key, (training, precise_bn, tta) in shared.items()}, cifar, seeds, cache_dir, executor)
    runs = {}
    for label, config in configs.items():
        seeded = trained[key_of(replace(config, precise_bn=0, tta=False))]
        runs[label] = evaluated_runs(seeded, config.precise_bn, config.tta)
    return runs


ABLATION_FILE = FIGURES_DIR / "06_ablation.json"
"""The full ablation, as `python -m helpers.report.ablation` writes it and notebook 06 reads it."""
ABLATION_COMMAND = "python -m helpers.report.ablation"
ABLATION_COST = "about 13 minutes with 2 cores"
"""42 trainings of 9,000 steps, two at a time; `python -m helpers.report.ablation` took 13 min 18 s on 2026-12-03
(2-core AMD EPYC, SkylakeX kernels, the JPEG re-encoded copy of CIFAR-10)."""
SEEDS, QUICK_SEEDS = 3, 2
"""Seeds of each row of the ablation (0, 1, 2), in full and in quick mode."""


def run_ablation(cifar, base, changes, seeds, cache_dir, executor=None):
    """The ablation of changes on base over seeds, as a committed file holds it: {"settings", "runs"}.

    "settings": the configs of ablation_configs(base, changes) as dicts,
    seeds and the training images; "runs": ablation_runs(...) without the
    runs' curves.
    """
    configs = ablation_configs(base, changes)
    runs = ablation_runs(configs, cifar, seeds, cache_dir, executor)
    return {"settings": ablation_settings(configs, seeds, len(cifar.train.y)),
            "runs": {label: [without_history(run) for run in seeded] for label, seeded in runs.items()}}


def ablation_settings(configs, seeds, n_train):
    return {"configs": {label: config.to_dict() for label, config in configs.items()}, "seeds": seeds,
            "n_train": n_train}


def notebook_ablation(settings, cifar):
    """Notebook 06's ablation, {label: [summary] * seeds}: read from ABLATION_FILE in full mode, run small in quick mode.

    settings: a NotebookSettings; in quick mode the rows train on
    settings.n_s steps per half cycle, QUICK_SEEDS seeds, kept in
    settings.cache, on settings.scheduler.
    """
    if not settings.quick:
        expected = ablation_settings(ablation_configs(TrainConfig(), CHANGES), SEEDS, len(cifar.train.y))
        return read_committed(ABLATION_FILE, expected, f"`{ABLATION_COMMAND}` ({ABLATION_COST})")["runs"]
    return run_ablation(cifar, TrainConfig(n_s=settings.n_s), CHANGES, QUICK_SEEDS, settings.cache,
                        settings.scheduler)["runs"]


def evaluated_runs(runs, precise_bn, tta):
    """runs ([summary] per seed) as evaluated with precise_bn (its batches, 0: none) and tta (experiments.evaluated).

    Each summary's accuracies and config become those of that evaluation;
    the rest (curves, times) is the training's, shared.
    """
    return [{**run, **evaluated(run, precise_bn > 0, tta),
             "config": {**run["config"], "precise_bn": precise_bn, "tta": tta}} for run in runs]


def key_of(config):
    return json.dumps(config.to_dict(), sort_keys=True)


def ablation_table(runs):
    """The ablation's rows: test accuracy mean +- std, gain over the base with Welch's p, time per run.

    runs: {label: [summary of each seed]}, with "base" among them; the
    best model's rows (tta_rows) too, if given.
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

    runs: as for ablation_table, for the labels of ablation_configs(base, changes);
    with the rows of tta_rows too, a last sentence says what mirror TTA adds
    to the best model.
    """
    base = [run["test_accuracy"] for run in runs["base"]]
    alone = []
    for c in changes:
        tests = [run["test_accuracy"] for run in runs[f"+ {c.name}"]]
        alone.append((c.name, welch(tests, base)))
    alone.sort(key=lambda item: item[1]["difference"], reverse=True)
    helped = [f"{name} ({gain_and_p(t)})" for name, t in alone if t["difference"] > 0 and t["p"] < ALPHA]
    neutral = [name for name, t in alone if t["p"] >= ALPHA]
    hurt = [f"{name} ({100 * t['difference']:+.2f} points)" for name, t in alone
            if t["difference"] < 0 and t["p"] < ALPHA]
    best_label = together_label(changes)
    best = [run["test_accuracy"] for run in runs[best_label]]
    gain = welch(best, base)
    sentences = []
    if helped:
        sentences.append("Alone on the report's network, the largest gains came from " + join(helped) + ".")
    if neutral:
        sentences.append(capitalized(join(neutral)) + " made no difference the seeds could tell from noise.")
    if hurt:
        sentences.append("Alone, " + join(hurt) + " lowered the accuracy.")
    for name, alone_test, added_test in turned(runs, changes):
        sentences.append(f"Yet {name}, {100 * alone_test['difference']:+.2f} points alone, moved the network of the "
                         f"changes before it by {100 * added_test['difference']:+.2f} points "
                         f"({format_p(added_test['p'])}): what a change buys depends on the network it joins.")
    sentences.append(f"The changes added up ({best_label}) reach {format_spread(best)}, "
                     f"{100 * gain['difference']:+.2f} points over the base.")
    if BEST in runs and BEST_TTA not in runs:
        sentences.append(f"The best model's runs hold no measurement with mirror TTA: `{BEST_MODEL_COMMAND} "
                         f"{shown_path(BEST_MODEL_FILE)}` trains them again and measures it.")
    if BEST_TTA in runs:
        plain, mirrored = ([run["test_accuracy"] for run in runs[label]] for label in (BEST, BEST_TTA))
        tta = welch(mirrored, plain)
        sentences.append(f"On the best model, mirror TTA moves the test accuracy from {format_spread(plain)} to "
                         f"{format_spread(mirrored)} ({gain_and_p(tta)}).")
    return " ".join(sentences)


def turned(runs, changes):
    """(name, Welch alone, Welch added) of each added-up change that helps alone and hurts added, or the reverse.

    "Added": its cumulative row against the row before it (ablation_configs'
    order); both tests must be significant (p < ALPHA) and of opposite signs.
    """
    base = [run["test_accuracy"] for run in runs["base"]]
    added = [c for c in changes if c.added_up]
    found = []
    for i in range(1, len(added)):
        before, after = (runs[together_label(added[:j])] for j in (i, i + 1))
        alone = welch([run["test_accuracy"] for run in runs[f"+ {added[i].name}"]], base)
        joined = welch([run["test_accuracy"] for run in after], [run["test_accuracy"] for run in before])
        if alone["p"] < ALPHA and joined["p"] < ALPHA and alone["difference"] * joined["difference"] < 0:
            found.append((added[i].name, alone, joined))
    return found


CHANGES = (
    change("wider [200, 100]", hidden=(200, 100)),
    change("dropout 0.2", dropout=0.2),
    change("flips", flip=True),
    change("translations by 2 pixels", translate=2),
    change("ZCA whitening", zca=3.0),
    change("BN after the ReLU", norm_place="after"),
    change("label smoothing 0.1", added_up=False, label_smoothing=0.1),
    change("layer normalization", added_up=False, norm="layer"),
    change("PreciseBN", precise_bn=100),
    change("mirror TTA", tta=True),
)
"""The changes of notebook 06's ablation, cheap enough to train over seeds in the main job, in the order in
which they are added up.

Label smoothing and layer normalization are measured alone only: layer
normalization replaces the batch normalization that PreciseBN recomputes,
and label smoothing, newer to the course than the rest, is judged alone
before the best model takes it or not."""


def best_settings():
    """(field, value) of every setting in which PRESETS["best"] differs from the report's network."""
    report, best = TrainConfig().to_dict(), PRESETS["best"].to_dict()
    return [(name, value) for name, value in best.items() if value != report[name]]


BEST_MODEL_FILE = FIGURES_DIR / "06_best_model.json"
"""The best model over 3 seeds, as BEST_MODEL_COMMAND writes it."""
BEST_MODEL_COMMAND = "python -m helpers train --preset best --seeds 3 --json"
"""The command that makes BEST_MODEL_FILE, given its path (about 13 minutes per seed). The preset measures each
network with mirror TTA, its accuracies without it kept beside (helpers.experiments.summarize)."""

BEST, BEST_TTA = "best model", "best model + mirror TTA"
"""The labels of tta_rows."""


def best_model_runs(settings, cifar, cache_dir):
    """The best model's runs for notebook 06: [summary] per seed, measured with and without mirror TTA.

    In full mode they are read from BEST_MODEL_FILE, which its own command
    makes (the main job could not train them in time). In quick mode the
    best model's settings train for one short cycle on cifar, 2 seeds, so
    that CI runs the same cells, on settings.scheduler's cluster if it names one.
    """
    if not settings.quick:
        return read_seed_runs(BEST_MODEL_FILE)
    quick = replace(PRESETS["best"], n_s=settings.n_s, cycles=1)
    return cached_seeds({"best": quick}, cifar, settings.seeds, cache_dir, settings.scheduler)["best"]


def tta_rows(runs):
    """The best model without and with mirror TTA, from the same networks: {BEST: [summary], BEST_TTA: [summary]}.

    runs: best_model_runs(...). Runs trained with --tta hold both
    evaluations; runs measured without it (a file made before --tta) give
    the first row only, and gains_text says which command measures the
    second. Both rows keep the runs' PreciseBN, if any.
    """
    precise_bn = runs[0]["config"]["precise_bn"]
    rows = {BEST: evaluated_runs(runs, precise_bn, False)}
    if all(run["config"]["tta"] for run in runs):
        rows[BEST_TTA] = evaluated_runs(runs, precise_bn, True)
    return rows


def read_seed_runs(path):
    """The summaries of a run over seeds written by `python -m helpers train --seeds N --json path`.

    Returns [summary] * N. A missing file is an error that names the command which makes it.
    """
    path = Path(path)
    try:
        return json.loads(path.read_text())["summaries"]
    except FileNotFoundError:
        raise HelpersError(f"{path} is missing: make it with `{BEST_MODEL_COMMAND} {path}` (about 13 minutes "
                           f"per seed).") from None


def main(argv=None):
    """`python -m helpers.report.ablation`: train the full ablation and write it to ABLATION_FILE (or --out)."""
    def make(cifar, cache, scheduler):
        found = run_ablation(cifar, TrainConfig(), CHANGES, SEEDS, cache, scheduler)
        return found, f"{ablation_table(found['runs'])}\n{gains_text(found['runs'], CHANGES)}"

    return commit_main(argv, ABLATION_COMMAND, f"Train notebook 06's ablation ({ABLATION_COST}) and write it as "
                       "JSON.", ABLATION_FILE, make)


if __name__ == "__main__":
    sys.exit(main())
