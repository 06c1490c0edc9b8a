"""Random search of one training setting (lambda by default), in stages, on any executor.

What is searched. Any numeric field of TrainConfig (lam, eta_max, n_batch,
and any field added later: they are found at run time), or the hidden
widths: "width" sets every hidden layer's width to the value, "width_scale"
multiplies every width of the base network by it. A whole-number field
(n_batch, cycles, width, ...) trains with each value rounded to the nearest
whole number, as does every width that width_scale gives. seed is not
searched: the search sets the seeds itself.

The narrowing rule, on a log scale (log10 of the values) or a linear one.
Stage 1 draws `coarse` values uniformly, on that scale, from value_range.
Every later stage draws `fine` values from a range centred, on that scale,
on the best value found so far, and `shrink` times narrower than the stage
before it. With lambda's defaults (1e-5..1e-1, log scale, shrink 4) the
stages span 4, 1 and 0.25 decades, close to the report's hand-picked
[1e-5, 1e-1], [1e-4, 1e-3] and [10^-4.1, 10^-3.9]. A later stage may reach
past value_range when the best value lies near its edge: that is where the
search should look then. It stops at the edge, though, where TrainConfig's
checks refuse the values past it (a dropout below 0, an eta_max below
eta_min): lambda may go past on both sides, a dropout range [0, 0.5] only
above 0.5. Draws of one stage that give the same training settings (two
draws of n_batch that round to 64) train once, as the first of them: such a
stage judges fewer values than it drew. A value an earlier stage judged is
judged again from its recorded runs, not trained again.

"Best" is the highest validation accuracy on the 5,000 validation images of
the report split, ties going to the lower validation cost, then to the
value drawn first. The test accuracy is recorded but never used to choose,
so that it stays an unbiased estimate.

By default every run trains with the same seed, the search's: all runs start
from the same weights and see the batches in the same order, so their
differences come from the value searched, not from luck. Yet one run's
validation accuracy is itself noisy: another seed moves it by about half a
point to a point, about as much as nearby lambdas differ, so the best of
single runs is partly the luckiest. With seeds=k each value trains k times,
with seeds seed, seed + 1, ..., seed + k - 1, and is judged by the mean of
its k validation accuracies (and of its validation costs for ties). The mean
of k runs has the noise's standard deviation divided by sqrt(k), at k times
the cost. The summary gives each value's mean and its sample standard
deviation over the seeds.

The values of stage s come from a generator seeded with (seed, s), whatever
seeds is. The same SearchConfig therefore gives the same values and the same
results, whatever executor runs them.

Each run is one call of helpers.experiments.run_experiment, sent to the
executor of helpers.pool.executor_for: by default a pool of processes, one
per core, each with one BLAS thread; or a Dask cluster. Workers load the
data themselves, once per process, rather than receiving 700 MB each.

Every finished run, one per value and seed, is appended at once to
runs.jsonl in the output folder. A search started again on the same folder
reuses the runs recorded there, matched by their full training configuration
(seed included), and trains only the rest. At the end, summary.json holds
every value judged and the best value of each stage.
"""

import json
import math
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from .errors import ConfigError
from .files import append_line, read_lines, write_json
from .pool import blas_threads, executor_for, experiment_in_worker, run_each
from .progress import progress_bar
from .core.config import SETTINGS, TrainConfig, check_config

RESULTS_FILE = "runs.jsonl"
SUMMARY_FILE = "summary.json"
SCALES = ("log", "linear")
WIDTHS = {"width": int, "width_scale": float}
"""The searchable settings that are not fields of TrainConfig: both set hidden."""


@dataclass(frozen=True)
class SearchConfig:
    """A staged random search of one setting; the defaults are the report's search of lambda.

    param: str, the setting searched (see searchable()); scale: str, "log" or
    "linear", the scale on which values are drawn and stages narrow;
    value_range: (low, high), floats, stage 1's range of param (on a log
    scale 0 < low < high). base: TrainConfig holding every other training
    setting; the search replaces its cycles (with cycles), its seed and
    param. seeds: int, the runs per value, with seeds seed, seed + 1, ...,
    whose mean validation accuracy judges it (1: one run, the search's seed).
    The search only reads the final validation figures, so the default base
    evaluates once per cycle instead of ten times (this changes nothing in
    training, only saves time). n_train: int or None, keeps only the first
    n_train training images (a quick mode); None keeps all 45,000.
    """

    param: str = "lam"
    scale: str = "log"
    value_range: tuple = (1e-5, 1e-1)
    coarse: int = 10
    fine: int = 10
    stages: int = 3
    shrink: float = 4.0
    cycles: int = 2
    seed: int = 0
    seeds: int = 1
    base: TrainConfig = field(default_factory=lambda: TrainConfig(evals_per_cycle=1))
    n_train: int | None = None

    def to_dict(self):
        """The settings as a JSON-able dict.

        A search of lambda on a log scale gives the dict it gave before the
        search took other settings (its range as lam_range, no param or
        scale): notebook 04 names its cache folder after this dict.
        """
        d = asdict(self)
        d["value_range"] = list(self.value_range)
        d["base"] = self.base.to_dict()
        if (self.param, self.scale) == ("lam", "log"):
            del d["param"], d["scale"]
            d["lam_range"] = d.pop("value_range")
        return d

    def run_count(self):
        """The training runs of the whole search at most: every value drawn, once per seed.

        Fewer when draws of a stage round to the same settings (see plan_stage).
        """
        return (self.coarse + self.fine * (self.stages - 1)) * self.seeds


@dataclass(frozen=True)
class Run:
    """One training run of the search: what a worker needs to do it, and the value searched.

    value: param's value, settled (an int for a whole-number setting, see settle).
    """

    stage: int
    index: int
    param: str
    value: int | float
    config: TrainConfig
    n_train: int | None
    data_dir: str | None

    def key(self):
        return run_key(self.config.to_dict(), self.n_train)


def run_key(config, n_train):
    """What identifies a run in the results file: its full training configuration."""
    return json.dumps({"config": config, "n_train": n_train}, sort_keys=True)


# --- What can be searched --------------------------------------------------------


def searchable():
    """{name: int or float} of every setting the search takes, in TrainConfig's order, then the widths.

    Read from the declaration (helpers.core.config.SETTINGS), so that a
    numeric setting declared there is searchable at once: a number, or a
    number or None (as n_s); not a bool, str or tuple (norm, init,
    hidden), nor one declared search=False (seed, which the search sets).
    A setting that takes a float counts as float.
    """
    found = {}
    for s in SETTINGS.values():
        kinds = set(s.types) - {type(None)}
        if s.search and not s.many and kinds and kinds <= {int, float}:
            found[s.name] = float if float in kinds else int
    return {**found, **WIDTHS}


def field_label(param):
    """How people are told of param: "lambda" for lam, else the name itself."""
    return "lambda" if param == "lam" else param


def values_label(param):
    """How people are told of several values of param: "lambdas" for lam, else e.g. "dropout values"."""
    return "lambdas" if param == "lam" else f"{param} values"


def settle(config, value):
    """value as param takes it: rounded to the nearest whole number for an int setting (a Python int)."""
    return round(value) if searchable()[config.param] is int else value


def run_config(config, value, seed):
    """The TrainConfig of one run: config.base with the search's cycles, seed, and param set to value.

    value: already settled (see settle). width_scale rounds each width it gives.
    """
    base = replace(config.base, cycles=config.cycles, seed=seed)
    if config.param == "width":
        return replace(base, hidden=(value,) * len(base.hidden))
    if config.param == "width_scale":
        return replace(base, hidden=tuple(round(width * value) for width in base.hidden))
    return replace(base, **{config.param: value})


def refusal(config, value):
    """Why TrainConfig's checks refuse a run with param at value (settled first): a str, or None if they accept it."""
    try:
        check_config(run_config(config, settle(config, value), config.seed), config.n_train)
    except ConfigError as err:
        return str(err)
    return None


def check_param(param, base):
    """Refuse a setting the search cannot take, on the network of base (a TrainConfig)."""
    names = searchable()
    if param not in names:
        raise ConfigError(f"{param!r} cannot be searched. The search takes a numeric field of TrainConfig or"
                          f" the hidden widths: {', '.join(names)}.")
    if param in WIDTHS and not base.hidden:
        raise ConfigError(f"{param} sets the widths of the hidden layers, and the network has none.")


def check_search_config(config):
    """Refuse settings that cannot work, before any work is done."""
    c = config
    check_param(c.param, c.base)
    if c.scale not in SCALES:
        raise ConfigError(f"scale must be 'log' or 'linear', got {c.scale!r}.")
    if len(c.value_range) != 2 or not all(isinstance(x, (int, float)) and math.isfinite(x) for x in c.value_range):
        raise ConfigError(f"value_range must be two finite numbers (low, high), got {c.value_range}.")
    low, high = c.value_range
    if c.scale == "log" and not 0 < low < high:
        raise ConfigError(f"value_range must satisfy 0 < low < high on a log scale (a linear one takes any"
                          f" low < high), got {low}, {high}.")
    if not low < high:
        raise ConfigError(f"value_range must satisfy low < high, got {low}, {high}.")
    for name in ("coarse", "fine", "stages", "seeds"):
        value = getattr(c, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a whole number >= 1, got {value!r}.")
    if not c.shrink >= 1:
        raise ConfigError(f"shrink must be >= 1 (each stage is at most as wide as the one before), got {c.shrink}.")
    if c.n_train is not None and not c.n_train >= 1:
        raise ConfigError(f"n_train must be >= 1 (or None for all the training images), got {c.n_train}.")
    at_low, at_high = refusal(c, low), refusal(c, high)
    if at_low is not None and at_low == at_high:
        raise ConfigError(at_low)  # the same at both ends: a setting the search leaves alone, not the range
    for end, value, reason in (("low", low, at_low), ("high", high, at_high)):
        if reason is not None:
            raise ConfigError(f"value_range cannot train at its {end} end, {c.param} = {value}: {reason}")


# --- The narrowing rule and the draws ----------------------------------------


def to_scale(value, scale):
    """A value on the scale the search draws and narrows on: its log10, or itself."""
    return math.log10(value) if scale == "log" else value


def from_scale(u, scale):
    """The value at u on the scale: 10 ** u, or u."""
    return 10.0**u if scale == "log" else u


def stage_range(config, stage, best_value=None):
    """The (low, high) bounds, on config's scale, that stage (1, 2, ...) draws from.

    Stage 1: config.value_range. Stage s > 1: centred on best_value, with the
    width of value_range divided by shrink ** (s - 1). Past value_range only
    where the values there can train (see the module's docstring); else it
    stops at value_range's end, or at best_value if that lies further out.
    """
    low, high = (to_scale(x, config.scale) for x in config.value_range)
    if stage == 1:
        return low, high
    half_width = (high - low) / config.shrink ** (stage - 1) / 2
    centre = to_scale(best_value, config.scale)
    stage_low, stage_high = centre - half_width, centre + half_width
    # Validity is checked at the ends only: TrainConfig's checks allow an interval of each setting.
    if stage_low < low and refusal(config, from_scale(stage_low, config.scale)) is not None:
        stage_low = min(low, centre)
    if stage_high > high and refusal(config, from_scale(stage_high, config.scale)) is not None:
        stage_high = max(high, centre)
    return stage_low, stage_high


def sample_values(scaled_range, n, seed, stage, scale="log"):
    """n floats drawn uniformly on the scale: from_scale(u) with u uniform in scaled_range.

    The generator is seeded (seed, stage). On a log scale these are lambda's
    draws as they always were: 10 ** u.
    """
    rng = np.random.default_rng([seed, stage])
    return [float(value) for value in from_scale(rng.uniform(*scaled_range, size=n), scale)]


def plan_stage(config, stage, scaled_range, data_dir=None):
    """The runs of one stage: for each value, in the order drawn, a list of its runs, one per seed.

    Values are settled (rounded for an int setting). A draw whose training
    settings equal those of an earlier draw of the stage is left out.
    """
    n = config.coarse if stage == 1 else config.fine
    per_value = []
    for value in sample_values(scaled_range, n, config.seed, stage, config.scale):
        value = settle(config, value)
        runs = [
            Run(stage, len(per_value), config.param, value, run_config(config, value, seed), config.n_train, data_dir)
            for seed in range(config.seed, config.seed + config.seeds)
        ]
        if all(runs[0].config != kept[0].config for kept in per_value):
            per_value.append(runs)
    return per_value


def brief(records, value):
    """One value judged on its records (one per seed, a list of dicts): the figures a summary shows.

    value: the value searched, as drawn and settled (a width_scale cannot be
    read back from the configuration). Returns {"value"; "lam", "stage",
    "index": as in the records; "val_accuracy", "val_cost", "test_accuracy":
    their means over the seeds; "seeds": the number of records;
    "val_accuracy_std": the sample standard deviation (ddof=1) of the
    validation accuracy, None for one record}.
    """
    val_accuracy = np.array([r["val_accuracy"] for r in records])
    first = records[0]
    return {
        "value": value,
        "lam": first["lam"],
        "stage": first["stage"],
        "index": first["index"],
        "val_accuracy": float(val_accuracy.mean()),
        "val_cost": float(np.mean([r["val_cost"] for r in records])),
        "test_accuracy": float(np.mean([r["test_accuracy"] for r in records])),
        "seeds": len(records),
        "val_accuracy_std": float(val_accuracy.std(ddof=1)) if len(records) > 1 else None,
    }


def best_value(judged):
    """The judged value (see brief) with the highest mean validation accuracy.

    Ties go to the lower mean validation cost, then to the earlier in judged
    (max keeps the first of equal keys).
    """
    return max(judged, key=lambda j: (j["val_accuracy"], -j["val_cost"]))


# --- Training the runs -------------------------------------------------------------


def train_run(run):
    """Train one run and return its record for the results file. Runs in a worker.

    The record: lam (kept whatever is searched, for readers older than
    param), param and value (the setting searched and its value), stage,
    index (its place in the stage's values), seed; val_accuracy, val_cost
    (final, on the 5,000 validation images), test_accuracy; seconds
    (training and evaluation, not loading the data), train_seconds, steps;
    blas_threads of the worker; data (the folder read), n_train and config
    (the TrainConfig as a dict), which identify the run.
    """
    name = f"run {run.stage}.{run.index} ({field_label(run.param)} {run.value:.3g})"
    summary, _, seconds = experiment_in_worker(run.config, run.data_dir, run.n_train, "report", name)
    return {
        "lam": run.config.lam,
        "param": run.param,
        "value": run.value,
        "stage": run.stage,
        "index": run.index,
        "seed": run.config.seed,
        "val_accuracy": summary["val_accuracy"],
        "val_cost": summary["history"]["val_cost"][-1],
        "test_accuracy": summary["test_accuracy"],
        "seconds": seconds,
        "train_seconds": summary["train_seconds"],
        "steps": summary["steps"],
        "blas_threads": blas_threads(),
        "data": summary["data"],
        "n_train": run.n_train,
        "config": summary["config"],
    }


def run_stage(executor, runs, results_path, bar):
    """Train runs on executor, appending each record to results_path as soon as it arrives.

    Returns {run key: record}; on a failure, see run_each.
    """
    records = {}

    def record(run, result):
        append_line(results_path, result)
        records[run.key()] = result
        bar.update(1)

    run_each(executor, train_run, runs, record)
    return records


def run_search(config, out_dir, executor=None, data_dir=None, progress=True):
    """Run the staged search of config, recording to out_dir; return the summary.

    executor: where the runs train (helpers.pool.executor_for): None for a
    process pool of one worker per core, a Dask scheduler's address
    ("tcp://HOST:PORT"), or any concurrent.futures.Executor.
    data_dir is resolved by each worker as in helpers.core.data.find_batches_dir.
    Runs already in out_dir/runs.jsonl are reused, not trained again.

    The summary (also written to out_dir/summary.json): "param" and "scale",
    as in config; "best", the best judged value (see brief); "stages", a
    stage_summary per stage; "per_value", every judged value, stage by stage
    in the order drawn; "runs", "trained", "reused": training runs (values x
    seeds) in all, trained now, and found in runs.jsonl; "results_file";
    "config". A search of lambda also has per_lambda, the same list under
    the name it had before the search took other settings.
    """
    check_search_config(config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / RESULTS_FILE
    done = {}
    for record in read_lines(results_path):
        done.setdefault(run_key(record["config"], record["n_train"]), record)
    if data_dir is not None:
        data_dir = os.path.abspath(data_dir)

    stages, judged, runs_seen, trained = [], [], 0, 0
    best = None
    with executor_for(executor) as ex, \
            progress_bar(config.run_count(), progress, desc="search", unit="run") as bar:
        for stage in range(1, config.stages + 1):
            scaled_range = stage_range(config, stage, None if best is None else best["value"])
            per_value = plan_stage(config, stage, scaled_range, data_dir)
            # Every seed of every value goes to the executor at once, to keep all its workers busy.
            runs = [run for value_runs in per_value for run in value_runs]
            todo = [run for run in runs if run.key() not in done]
            # The bar counts every draw: those reused, and those left out as repeats, are done already.
            drawn = (config.coarse if stage == 1 else config.fine) * config.seeds
            bar.update(drawn - len(todo))
            done.update(run_stage(ex, todo, results_path, bar))
            trained += len(todo)
            runs_seen += len(runs)
            stage_judged = [brief([done[run.key()] for run in value_runs], value_runs[0].value)
                            for value_runs in per_value]
            judged += stage_judged
            best = best_value(judged)
            stages.append(stage_summary(config, stage, scaled_range, stage_judged))

    summary = {
        "param": config.param,
        "scale": config.scale,
        "best": best,
        "stages": stages,
        "per_value": judged,
        "runs": runs_seen,
        "trained": trained,
        "reused": runs_seen - trained,
        "results_file": RESULTS_FILE,
        "config": config.to_dict(),
    }
    if config.param == "lam":
        summary["per_lambda"] = judged
    write_json(out / SUMMARY_FILE, summary)
    return summary


def stage_summary(config, stage, scaled_range, judged):
    """The summary of one stage from its judged values (see brief), in the order they were drawn.

    "range": the (low, high) values drawn from; "values"; "best"; on a log
    scale "log10_range" too. A search of lambda also has lam_range and lams,
    the names range and values had before the search took other settings.
    """
    summary = {
        "stage": stage,
        "range": [from_scale(u, config.scale) for u in scaled_range],
        "values": [j["value"] for j in judged],
        "best": best_value(judged),
    }
    if config.scale == "log":
        summary["log10_range"] = list(scaled_range)
    if config.param == "lam":
        summary["lam_range"], summary["lams"] = summary["range"], summary["values"]
    return summary


def neutral_summary(summary):
    """summary, from run_search or a part of one, with the keys any setting's search has.

    A summary of lambda written before the search took other settings (or a
    hand-made one) has only lambda's keys: per_lambda, a stage's lam_range
    and lams, a judged lambda's lam. The copy returned adds param "lam",
    scale "log", per_value, range, values and value from those. A summary
    with param is returned as it is.
    """
    if "param" in summary:
        return summary

    def valued(judged):
        return {**judged, "value": judged["lam"]}

    neutral = {**summary, "param": "lam", "scale": "log"}
    if "best" in summary:
        neutral["best"] = valued(summary["best"])
    if "per_lambda" in summary:
        neutral["per_value"] = [valued(j) for j in summary["per_lambda"]]
    if "stages" in summary:
        neutral["stages"] = [{**s, "range": s["lam_range"], "values": s["lams"], "best": valued(s["best"])}
                             for s in summary["stages"]]
    return neutral


def search_text(config, summary, out_dir):
    """What the search command prints of run_search's summary: each stage's best, the best of all, the runs."""
    name, values, seeds = field_label(config.param), values_label(config.param), config.seeds
    lines = []
    if seeds > 1:
        lines.append(f"each {name} judged on the mean of {seeds} seeds ({config.seed} to {config.seed + seeds - 1});"
                     " ± is their sample standard deviation (ddof=1)")
    for s in summary["stages"]:
        low, high = s["range"]
        drawn = len(s["values"])
        runs = f"{drawn} runs" if seeds == 1 else f"{drawn * seeds} runs ({drawn} {values} x {seeds} seeds)"
        lines.append(f"stage {s['stage']}: {runs}, {name} in [{low:.3g}, {high:.3g}]:"
                     f" best {name} {s['best']['value']:.4g} (validation accuracy {mean_and_std(s['best'])})")
    best = summary["best"]
    means = "" if seeds == 1 else f" (means over {seeds} seeds)"
    lines.append(f"best {name} {best['value']:.4g}: validation accuracy {mean_and_std(best)},"
                 f" test accuracy {100 * best['test_accuracy']:.2f} %{means}")
    lines.append(f"trained {summary['trained']} runs, reused {summary['reused']};"
                 f" summary in {Path(out_dir) / SUMMARY_FILE}")
    return "\n".join(lines)


def mean_and_std(judged):
    """A judged value's validation accuracy (see brief): "54.12 %", or "54.12 ± 0.40 %" over seeds."""
    if judged["val_accuracy_std"] is None:
        return f"{100 * judged['val_accuracy']:.2f} %"
    return f"{100 * judged['val_accuracy']:.2f} ± {100 * judged['val_accuracy_std']:.2f} %"
