"""A fair comparison of update rules and learning-rate schedules (notebook 06).

The report trained with plain SGD and cyclical learning rates. Was that the
right choice? Each contender (an update rule with the cyclical schedule, or
SGD with another schedule) is judged at its own best learning rate, not at
the report's: Adam's good eta_max is about a hundred times smaller than
SGD's, and momentum's step is about eta / (1 - mu), ten times eta for
mu = 0.9. So each contender first gets a short random search of eta_max
(helpers.search, one stage, one seed, judged on the validation accuracy),
over a log range of its own; its best eta_max then trains on several seeds,
beside the report's network itself (eta_max 0.1), and Welch's t-test says
whether the difference in test accuracy is more than the seeds' noise.
Every search draws with the same seed, so its values sit at the same places
of its own range on the log scale: each contender gets the same pattern of
learning rates, shifted to its range.

Everything else is the report's: the 3-layer BN network [50, 50], lambda
0.005, batches of 100, 2 cycles of n_s = 2250 steps (9,000 steps). eta_min
stays at the report's 1e-5 for every contender: it is where each schedule
ends (cyclical and cosine reach it, step is floored at it), at most a tenth
of any eta_max searched, so every run ends with near-zero steps; scaling it
with eta_max would make the search one of two settings at once.

Cost. The full comparison is 7 searches of 6 runs, then 8 settings on 3
seeds: 66 runs of 9,000 steps (RUNS_FULL). SGD takes the fast path, about
10 s per run on one core; the other rules take the textbook code, about
twice as long. The main job cannot add that to notebook 06, so
`python -m helpers.report.rules` trains it once and writes RULES_FILE, which
the notebook reads in full mode (as it reads the best model,
ablation.BEST_MODEL_FILE); the file is refused if the settings it was made
with are not the notebook's. In quick mode the same code runs on a few
short runs.
"""

import sys
import textwrap
from dataclasses import asdict, dataclass, replace

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from ..core.config import TrainConfig
from ..errors import ConfigError
from ..pool import executor_for
from ..search import SearchConfig, run_search
from .cache import DEFAULT_CACHE_DIR, cached_seeds, folder_for
from .committed import commit_main, read_committed, without_history
from .plots import PAGE_WIDTH, STYLE
from .settings import FIGURES_DIR
from .summary import format_spread
from .tables import Table
from .verdicts import ALPHA, capitalized, format_p, gain_and_p, join, welch


@dataclass(frozen=True)
class Contender:
    """An update rule with a schedule, and the log range of eta_max its search draws from."""

    name: str
    optimizer: str
    schedule: str
    eta_range: tuple  # (low, high)

    def config(self, base, eta_max):
        """base (a TrainConfig) trained with this rule and schedule at eta_max."""
        return replace(base, optimizer=self.optimizer, schedule=self.schedule, eta_max=eta_max)


CONTENDERS = (
    Contender("SGD + cyclical", "sgd", "cyclical", (1e-2, 1.0)),
    Contender("momentum + cyclical", "momentum", "cyclical", (1e-3, 1e-1)),
    Contender("Nesterov + cyclical", "nesterov", "cyclical", (1e-3, 1e-1)),
    Contender("Adam + cyclical", "adam", "cyclical", (1e-4, 1e-2)),
    Contender("RMSprop + cyclical", "rmsprop", "cyclical", (1e-4, 1e-2)),
    Contender("SGD + step", "sgd", "step", (1e-2, 1.0)),
    Contender("SGD + cosine", "sgd", "cosine", (1e-2, 1.0)),
)
"""The update rules with the report's cyclical schedule, then the schedules with SGD.

SGD's range is centred, in log10, on the report's 0.1; momentum's and
Nesterov's (mu = 0.9) ten times lower, so that their steps, about
eta / (1 - mu), span the same range; Adam's and RMSprop's divide each
weight's step by its gradients' root mean square, so their eta is a step
size in the weights' own units: 1e-3 is the usual one."""

REPORT = "the report's SGD + cyclical"
"""The label of the report's network, eta_max 0.1, which every contender is tested against."""

VALUES, QUICK_VALUES = 6, 2
"""Learning rates each search draws (one stage, one seed each), in full and in quick mode."""
SEEDS = 3
"""Seeds of each best setting, and of the report's network, in full mode (seeds 0, 1, 2)."""
RUNS_FULL = len(CONTENDERS) * VALUES + (len(CONTENDERS) + 1) * SEEDS
"""Training runs of the full comparison: 66, 30 with SGD and 36 with the other rules."""

RULES_FILE = FIGURES_DIR / "06_rules.json"
"""The full comparison, as `python -m helpers.report.rules` writes it and notebook 06 reads it."""
COMMAND = "python -m helpers.report.rules"
COST = "10 to 25 minutes with 2 cores"
"""The full comparison's training time (see RUNS_FULL): 30 SGD runs of about 10 s and 36 of the other rules,
about 20 s each on the textbook code, two at a time; 23 min 41 s when the 2 cores also ran other work
(docs/beyond-the-report.md)."""


def comparison_settings(base, values, seeds, n_train, contenders=CONTENDERS):
    """Everything a comparison depends on besides the data and the code, as JSON-able data.

    base: the TrainConfig every contender starts from; values: learning
    rates drawn per search; seeds: seeds per best setting; n_train: the
    training images.
    """
    return {"base": base.to_dict(), "contenders": [{**asdict(c), "eta_range": list(c.eta_range)} for c in contenders],
            "values": values, "seeds": seeds, "n_train": n_train}


def search_config(contender, base, values, n_train):
    """The SearchConfig of contender's eta_max: one stage of `values` draws, one seed, on base's network and steps.

    The search reads only the final validation figures, so its runs
    evaluate once per cycle (evals_per_cycle=1; the training is the same).
    """
    return SearchConfig(param="eta_max", scale="log", value_range=contender.eta_range, coarse=values, fine=values,
                        stages=1, cycles=base.cycles, seeds=1,
                        base=replace(contender.config(base, base.eta_max), evals_per_cycle=1), n_train=n_train)


def run_comparison(cifar, base, values, seeds, cache_dir=DEFAULT_CACHE_DIR, executor=None, contenders=CONTENDERS,
                   progress=True):
    """Search each contender's eta_max, then train its best and the report's network over seeds.

    cifar: the "report" split (the search's workers load that split), whole or
    its first n training images; base: the report's TrainConfig (n_s may be
    shortened for a quick run); values: learning rates per search; seeds:
    seeds 0 .. seeds - 1 of each best setting and of base; executor: where
    the runs train (helpers.pool.executor_for: None for a pool of processes,
    one per core; a Dask scheduler's address; or an executor).
    Searches and runs are kept in cache_dir and recalled, not trained again.

    Returns {"settings": comparison_settings(...); "searches": {name:
    {"per_value": [{"value", "val_accuracy", "val_cost", "test_accuracy"}]
    in the order drawn, "best": the best eta_max}}; "runs": {REPORT or name:
    [summary without its history] per seed}}.
    """
    if cifar.split != "report":
        raise ConfigError(f"The comparison searches on the report split; load the data with split='report', "
                          f"not {cifar.split!r}.")
    n_train = len(cifar.train.y)
    searches = {}
    # One pool for every search and seed: its workers load the data once, not once per search.
    with executor_for(executor) as pool:
        for contender in contenders:
            config = search_config(contender, base, values, n_train)
            out = folder_for("rules-search", config.to_dict(), cifar, cache_dir)
            found = run_search(config, out, pool, data_dir=cifar.folder, progress=progress)
            searches[contender.name] = {
                "per_value": [{key: j[key] for key in ("value", "val_accuracy", "val_cost", "test_accuracy")}
                              for j in found["per_value"]],
                "best": found["best"]["value"],
            }
        configs = {REPORT: base, **{c.name: c.config(base, searches[c.name]["best"]) for c in contenders}}
        runs = cached_seeds(configs, cifar, seeds, cache_dir, pool, progress)
    return {"settings": comparison_settings(base, values, seeds, n_train, contenders), "searches": searches,
            "runs": {label: [without_history(run) for run in seeded] for label, seeded in runs.items()}}


def read_comparison(path, expected):
    """The comparison stored at path, refused if it is missing or stale (see cache.read_committed).

    expected: comparison_settings(...) of the comparison wanted.
    """
    return read_committed(path, expected, f"`{COMMAND}` ({COST})")


def comparison(settings, cifar, executor=None):
    """Notebook 06's comparison: read from RULES_FILE in full mode, run small in quick mode.

    settings: helpers.report.settings.NotebookSettings. In quick mode
    QUICK_VALUES learning rates per search and settings.seeds seeds, on the
    short runs of settings.n_s, cached in settings.cache. executor: as for
    run_comparison (the notebook's SCHEDULER).
    """
    if not settings.quick:
        return read_comparison(RULES_FILE, comparison_settings(TrainConfig(), VALUES, SEEDS, len(cifar.train.y)))
    return run_comparison(cifar, TrainConfig(n_s=settings.n_s), QUICK_VALUES, settings.seeds, settings.cache,
                          executor, progress=False)


# --- The table, the paragraph and the figure ------------------------------------


def tests_of(runs):
    return [run["test_accuracy"] for run in runs]


def verdicts(found):
    """{name: Welch's test (see verdicts.welch) of its test accuracies against the report's}, in the table's order."""
    report = tests_of(found["runs"][REPORT])
    return {name: welch(tests_of(seeded), report) for name, seeded in found["runs"].items() if name != REPORT}


def eta_range_of(found, name):
    contender = next(c for c in found["settings"]["contenders"] if c["name"] == name)
    low, high = contender["eta_range"]
    return f"{low:.0e} to {high:.0e}"


def rules_table(found):
    """One row per contender, the report's network first.

    found: from run_comparison or read_comparison. Columns: the range
    searched, the best eta_max, the test accuracy as mean +- std over the
    seeds, the gain over the report's in points and Welch's p.
    """
    tests = verdicts(found)
    rows = []
    for name, seeded in found["runs"].items():
        eta_max = seeded[0]["config"]["eta_max"]
        if name == REPORT:
            rows.append([name, "-", f"{eta_max:.3g}", format_spread(tests_of(seeded)), "-", "-"])
            continue
        test = tests[name]
        rows.append([name, eta_range_of(found, name), f"{eta_max:.3g}", format_spread(tests_of(seeded)),
                     f"{100 * test['difference']:+.2f}", format_p(test["p"])])
    seeds = len(found["runs"][REPORT])
    values = found["settings"]["values"]
    return Table(["update rule + schedule", "eta_max searched", "best eta_max", f"test accuracy ({seeds} seeds)",
                  "gain over the report's (points)", "Welch's t-test"], rows,
                 caption=f"Each eta_max searched over {values} values drawn log-uniformly, one seed each, judged on "
                         f"the validation accuracy; a difference with p < {ALPHA} is called real.")


def rules_text(found):
    """A paragraph, written from the comparison, on whether the report's SGD with cyclical rates was the right choice.

    found: from run_comparison or read_comparison.
    """
    report = found["runs"][REPORT]
    tests = verdicts(found)
    ranked = sorted(tests.items(), key=lambda item: item[1]["difference"], reverse=True)
    better = [f"{name} ({gain_and_p(t)})" for name, t in ranked if t["difference"] > 0 and t["p"] < ALPHA]
    same = [name for name, t in ranked if t["p"] >= ALPHA]
    worse = [f"{name} ({gain_and_p(t)})" for name, t in ranked if t["difference"] < 0 and t["p"] < ALPHA]
    sentences = [f"Each at its own best learning rate, against the report's SGD with cyclical rates "
                 f"(eta_max {report[0]['config']['eta_max']:g}, {format_spread(tests_of(report))}, "
                 f"{report[0]['steps']:,} steps):"]
    if better:
        sentences.append(capitalized(join(better)) + " did better.")
    if same:
        sentences.append(capitalized(join(same)) + " did as well, as far as the seeds can tell from noise.")
    if worse:
        sentences.append(capitalized(join(worse)) + " did worse.")
    if better:
        best = next(name for name, t in ranked if t["difference"] > 0 and t["p"] < ALPHA)
        sentences.append(f"So the report's choice was not the best one for this network and budget: {best} reached "
                         f"{format_spread(tests_of(found['runs'][best]))}.")
    else:
        sentences.append("So the report's plain SGD with cyclical rates was as good a choice as any of them for "
                         "this network and budget.")
    return " ".join(sentences)


PANELS = (("Update rules, cyclical schedule", "cyclical"), ("Schedules, SGD", "sgd"))
"""The figure's two panels: the contenders with the cyclical schedule, and those with SGD (SGD + cyclical in both)."""


def rules_figure(found):
    """Validation accuracy against eta_max from each contender's search, and its best eta_max's test accuracy.

    found: from run_comparison or read_comparison. Two panels side by side,
    the update rules (cyclical) and the schedules (SGD), on the same axes,
    and one legend of the contenders below them.
    Per contender: its search's runs as dots joined in the order of eta_max,
    and at its best eta_max a diamond with a bar, the test accuracy's mean
    +- std over the seeds. Dashed: the report's network, mean test accuracy.
    """
    report = 100 * np.mean(tests_of(found["runs"][REPORT]))
    seeds = len(found["runs"][REPORT])
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(PAGE_WIDTH, 3.6), layout="constrained")
        axes = fig.subplots(1, len(PANELS), sharex=True, sharey=True)
        handles = {}
        for ax, (title, kind) in zip(axes, PANELS):
            for i, contender in enumerate(found["settings"]["contenders"]):
                if kind not in (contender["schedule"], contender["optimizer"]):
                    continue
                name = contender["name"]
                judged = sorted(found["searches"][name]["per_value"], key=lambda j: j["value"])
                color = f"C{i}"
                (handles[name],) = ax.plot([j["value"] for j in judged], [100 * j["val_accuracy"] for j in judged],
                                           "o-", color=color, markersize=3, linewidth=0.9)
                tests = 100 * np.array(tests_of(found["runs"][name]))
                ax.errorbar([found["searches"][name]["best"]], [tests.mean()], yerr=[tests.std(ddof=1)], fmt="D",
                            color=color, markersize=5, capsize=2, markeredgecolor="black", markeredgewidth=0.5)
            ax.axhline(report, color="gray", linestyle="--", linewidth=0.8)
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())  # labels at 2, 3, 4 ... x 10^k would overlap
            ax.set_xlabel("eta_max")
            ax.set_title(title)
        axes[0].set_ylabel("accuracy (%)")
        fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncols=4)
        fig.suptitle(textwrap.fill(f"Dots: the validation accuracy of each search run (seed 0). Diamonds: the test "
                                   f"accuracy at the best eta_max, mean ± std of {seeds} seeds. Dashed: the "
                                   f"report's network (eta_max 0.1), mean test accuracy of {seeds} seeds.", width=90))
    return fig


# --- The command that makes RULES_FILE --------------------------------------------


def main(argv=None):
    """`python -m helpers.report.rules`: train the full comparison and write it to RULES_FILE (or --out)."""
    def make(cifar, cache, scheduler):
        found = run_comparison(cifar, TrainConfig(), VALUES, SEEDS, cache, scheduler)
        return found, f"{rules_table(found)}\n{rules_text(found)}"

    return commit_main(argv, COMMAND, f"Train the full comparison of update rules and schedules of notebook 06 "
                       f"({RUNS_FULL} runs, {COST}) and write it as JSON.", RULES_FILE, make)


if __name__ == "__main__":
    sys.exit(main())
