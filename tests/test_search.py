"""The staged search: the draws, the narrowing rule, the settings searched, executors, the results file,
restarts, the CLI.

The searches here are tiny (2,000 training images, hidden [20], 40 steps a
run, 3 + 3 lambdas, one or two seeds each; on the fake data, 100 images and
hidden [8]) and share one process pool, so the file runs in about a minute.
"""
import json
import math
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import Executor, Future
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

from helpers import search
from helpers.cli import main
from helpers.errors import ConfigError, HelpersError
from helpers.pool import process_pool
from helpers.files import append_line, read_lines
from helpers.search import (
    RESULTS_FILE,
    SUMMARY_FILE,
    SearchConfig,
    brief,
    plan_stage,
    run_config,
    run_key,
    run_search,
    sample_values,
    searchable,
    stage_range,
)
from helpers.core.config import TrainConfig, declared, setting

from conftest import write_fake_cifar

REPO = Path(__file__).resolve().parent.parent

QUICK = SearchConfig(
    value_range=(1e-5, 1e-1), coarse=3, fine=3, stages=2, cycles=1, n_train=2000,
    base=TrainConfig(hidden=(20,), n_s=20, evals_per_cycle=1),
)
# The same search with 25 times longer runs (about half a second each), to be caught midway.
SLOW = replace(QUICK, base=replace(QUICK.base, n_s=500))
# Each lambda judged on two seeds; seed 3, not 0, so that seeds 0 and 1 would be a mistake.
SEEDED = replace(QUICK, seed=3, seeds=2)


def cli_args(n_s=20):
    """The command-line flags of QUICK (of SLOW with n_s=500)."""
    return ["--lam-range", "1e-5", "1e-1", "--coarse", "3", "--fine", "3", "--stages", "2", "--cycles", "1",
            "--hidden", "20", "--n-s", str(n_s), "--n-train", "2000"]


# What must not depend on the executor, nor on being interrupted.
RESULT_KEYS = ("lam", "stage", "index", "seed", "val_accuracy", "val_cost", "test_accuracy", "steps", "config")


class NoExecutor(Executor):
    """An executor for searches that must train nothing."""

    def submit(self, fn, /, *args, **kwargs):
        raise AssertionError("this search should have trained nothing")


class FailsAfter(Executor):
    """Hands the first k runs on to inner; every later one fails, as if its worker had died."""

    def __init__(self, inner, k):
        self.inner, self.k, self.submitted = inner, k, 0

    def submit(self, fn, /, *args, **kwargs):
        self.submitted += 1
        if self.submitted <= self.k:
            return self.inner.submit(fn, *args, **kwargs)
        future = Future()
        future.set_exception(RuntimeError("worker lost"))
        return future


def results(folder):
    """{run key: record} of a results file, checking that no run is recorded twice."""
    records = read_lines(Path(folder) / RESULTS_FILE)
    keyed = {run_key(r["config"], r["n_train"]): r for r in records}
    assert len(keyed) == len(records), "a run was recorded twice"
    return keyed


def same_results(a, b):
    """Assert two {key: record} maps hold the same runs with the same figures."""
    assert a.keys() == b.keys()
    for key in a:
        assert {k: a[key][k] for k in RESULT_KEYS} == {k: b[key][k] for k in RESULT_KEYS}


def whole_lines(path):
    return path.read_bytes().split(b"\n")[:-1] if path.exists() else []


def wait_for_lines(path, n, proc, timeout=60):
    """Wait until path holds n whole lines; fail if proc ends first."""
    deadline = time.monotonic() + timeout
    while len(whole_lines(path)) < n:
        assert proc.poll() is None, f"the search ended early:\n{proc.communicate()[1]}"
        assert time.monotonic() < deadline, "the search wrote no results in time"
        time.sleep(0.02)


def start_search(args, out):
    """`python -m helpers search` in its own process group, so that a signal reaches its workers too."""
    return subprocess.Popen(
        [sys.executable, "-m", "helpers", "search", *args, "--out", str(out)],
        cwd=REPO, env={**os.environ, "TQDM_DISABLE": "1"}, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


@pytest.fixture(scope="module")
def pool():
    with process_pool(2) as executor:
        yield executor


@pytest.fixture(scope="module")
def reference(pool, cifar_dir, tmp_path_factory):
    """QUICK searched on the process pool: (output folder, summary)."""
    out = tmp_path_factory.mktemp("reference")
    return out, run_search(QUICK, out, pool, data_dir=cifar_dir, progress=False)


@pytest.fixture(scope="module")
def seeded(pool, cifar_dir, tmp_path_factory):
    """SEEDED searched on the process pool: (output folder, summary)."""
    out = tmp_path_factory.mktemp("seeded")
    return out, run_search(SEEDED, out, pool, data_dir=cifar_dir, progress=False)


def runs_by_lambda(folder):
    """{(stage, index): [record, ...] in the order of the seeds} of a results file, in the order drawn.

    Not in the file's order: parallel runs are recorded as they finish.
    """
    grouped = {}
    for r in sorted(results(folder).values(), key=lambda r: (r["stage"], r["index"], r["seed"])):
        grouped.setdefault((r["stage"], r["index"]), []).append(r)
    return grouped


# --- The draws and the narrowing rule ------------------------------------------


def test_lambdas_are_log_uniform_and_reproducible():
    lams = np.array(sample_values((-5, -1), 40_000, seed=0, stage=1))
    assert lams.min() >= 1e-5 and lams.max() <= 1e-1
    # Log-uniform: each decade gets a quarter (a uniform draw would put 90 % in the last one).
    per_decade = np.histogram(np.log10(lams), bins=4, range=(-5, -1))[0] / len(lams)
    np.testing.assert_allclose(per_decade, 0.25, atol=0.01)
    assert sample_values((-5, -1), 10, seed=0, stage=1) == sample_values((-5, -1), 10, seed=0, stage=1)
    assert sample_values((-5, -1), 10, seed=0, stage=2) != sample_values((-5, -1), 10, seed=0, stage=1)
    assert sample_values((-5, -1), 10, seed=1, stage=1) != sample_values((-5, -1), 10, seed=0, stage=1)


def test_a_linear_scale_draws_uniformly_from_the_same_generator():
    values = np.array(sample_values((-1, 3), 40_000, seed=0, stage=1, scale="linear"))
    assert values.min() >= -1 and values.max() <= 3
    np.testing.assert_allclose(np.histogram(values, bins=4, range=(-1, 3))[0] / len(values), 0.25, atol=0.01)
    # The same uniform draws, not put through 10 ** u.
    np.testing.assert_array_equal(10.0 ** values[:10], sample_values((-1, 3), 10, seed=0, stage=1))


def test_each_stage_is_centred_on_the_best_so_far_and_shrink_times_narrower():
    config = SearchConfig()
    assert stage_range(config, stage=1) == pytest.approx((-5, -1))
    # The report's second stage, [1e-4, 1e-3], after a best lambda of 10^-3.5.
    assert stage_range(config, stage=2, best_value=10**-3.5) == pytest.approx((-4, -3))
    # Width 4 / 4^2 decades; 4 / 20 would give the report's third stage, [10^-4.1, 10^-3.9].
    assert stage_range(config, stage=3, best_value=1e-4) == pytest.approx((-4.125, -3.875))
    assert stage_range(replace(config, shrink=20**0.5), stage=3, best_value=1e-4) == pytest.approx((-4.1, -3.9))
    # On a linear scale, in the values themselves: 0.5 wide, then 0.125 around the best.
    linear = replace(config, param="alpha", scale="linear", value_range=(0.25, 0.75))
    assert stage_range(linear, stage=1) == (0.25, 0.75)
    assert stage_range(linear, stage=2, best_value=0.4) == pytest.approx((0.3375, 0.4625))


def test_a_later_stage_reaches_past_the_range_only_where_the_setting_can_train():
    # lambda may go past its range on either side: any lambda >= 0 trains.
    assert stage_range(SearchConfig(), stage=2, best_value=1e-5) == pytest.approx((-5.5, -4.5))
    # lambda on a linear scale: not below 0, where the stage stops at the range's end.
    linear = replace(SearchConfig(), scale="linear", value_range=(0, 0.01), shrink=2)
    assert stage_range(linear, stage=2, best_value=0.001) == pytest.approx((0, 0.0035))
    assert stage_range(linear, stage=2, best_value=0.009) == pytest.approx((0.0065, 0.0115))  # above: allowed
    # eta_min may not pass eta_max (0.1): a best found past the range's end is as far as the stage goes.
    eta_min = replace(SearchConfig(), param="eta_min", scale="linear", value_range=(0.01, 0.05), shrink=1)
    assert stage_range(eta_min, stage=2, best_value=0.09) == pytest.approx((0.07, 0.09))


def test_the_search_follows_the_rule_and_records_every_run(reference):
    out, summary = reference
    runs = results(out)
    assert len(runs) == summary["runs"] == summary["trained"] == 6
    first, second = summary["stages"]
    assert first["log10_range"] == pytest.approx([-5, -1])
    assert len(first["lams"]) == 3 and len(second["lams"]) == 3
    best_first = max((r for r in runs.values() if r["stage"] == 1), key=lambda r: r["val_accuracy"])
    assert first["best"]["lam"] == best_first["lam"]
    assert np.mean(second["log10_range"]) == pytest.approx(math.log10(best_first["lam"]))
    assert np.diff(second["log10_range"])[0] == pytest.approx(1.0)  # 4 decades / shrink 4
    assert all(second["lam_range"][0] <= lam <= second["lam_range"][1] for lam in second["lams"])
    assert summary["best"]["val_accuracy"] == max(r["val_accuracy"] for r in runs.values())
    for r in runs.values():
        assert r["seed"] == 0 and r["steps"] == 40 and r["blas_threads"] == 1
        assert r["config"]["lam"] == r["lam"] and r["config"]["hidden"] == [20]
        assert 0.15 < r["val_accuracy"] < 0.6 and r["val_cost"] > 0 and r["seconds"] > 0
    assert json.loads((out / SUMMARY_FILE).read_text()) == summary


def test_a_finished_search_started_again_trains_nothing(reference, cifar_dir):
    out, summary = reference
    again = run_search(QUICK, out, NoExecutor(), data_dir=cifar_dir, progress=False)
    assert again["trained"] == 0 and again["reused"] == 6
    assert again["stages"] == summary["stages"]
    assert len(whole_lines(out / RESULTS_FILE)) == 6


# --- Judging each lambda on several seeds -----------------------------------------


def test_with_one_seed_each_lambda_is_judged_on_its_one_run_as_before(reference):
    out, summary = reference
    assert QUICK.seeds == 1 and QUICK.run_count() == 6
    by_lambda = runs_by_lambda(out)
    assert all(len(records) == 1 for records in by_lambda.values())
    assert [(j["stage"], j["index"]) for j in summary["per_lambda"]] == list(by_lambda)
    for judged in summary["per_lambda"]:
        (record,) = by_lambda[judged["stage"], judged["index"]]
        # The run's own figures, not a mean that could round them.
        assert judged == {**{k: record[k] for k in ("lam", "stage", "index", "val_accuracy", "val_cost",
                                                    "test_accuracy")},
                          "value": record["lam"], "seeds": 1, "val_accuracy_std": None}
    # The rule of a search of single runs: the best record, ties to the lower cost, then to the earlier.
    in_draw_order = [records[0] for records in by_lambda.values()]
    best = max(in_draw_order, key=lambda r: (r["val_accuracy"], -r["val_cost"]))
    assert (summary["best"]["stage"], summary["best"]["index"]) == (best["stage"], best["index"])


def test_with_k_seeds_every_lambda_trains_with_seeds_seed_to_seed_plus_k_minus_1(seeded):
    out, summary = seeded
    assert SEEDED.run_count() == 12
    assert len(results(out)) == summary["runs"] == summary["trained"] == 12 and summary["reused"] == 0
    by_lambda = runs_by_lambda(out)
    assert len(by_lambda) == len(summary["per_lambda"]) == 6
    for records in by_lambda.values():
        assert [r["seed"] for r in records] == [r["config"]["seed"] for r in records] == [3, 4]
        assert len({r["lam"] for r in records}) == 1
    first, second = summary["stages"]
    # The draws of a search of one seed: seeds changes how often a lambda trains, not which lambdas.
    assert first["lams"] == sample_values((-5, -1), 3, seed=3, stage=1)
    assert len(second["lams"]) == 3
    assert np.mean(second["log10_range"]) == pytest.approx(math.log10(first["best"]["lam"]))


def test_each_lambda_is_judged_by_the_mean_and_sample_std_of_its_seeds(seeded):
    out, summary = seeded
    by_lambda = runs_by_lambda(out)
    for judged in summary["per_lambda"]:
        records = by_lambda[judged["stage"], judged["index"]]
        val_accuracy = [r["val_accuracy"] for r in records]
        assert judged["lam"] == records[0]["lam"] and judged["seeds"] == 2
        assert judged["val_accuracy"] == pytest.approx(np.mean(val_accuracy), rel=1e-12)
        assert judged["val_accuracy_std"] == pytest.approx(np.std(val_accuracy, ddof=1), rel=1e-12)
        assert judged["val_cost"] == pytest.approx(np.mean([r["val_cost"] for r in records]), rel=1e-12)
        assert judged["test_accuracy"] == pytest.approx(np.mean([r["test_accuracy"] for r in records]), rel=1e-12)
    assert any(j["val_accuracy_std"] > 0 for j in summary["per_lambda"])  # else ddof would not show
    # In the order drawn, stage by stage.
    assert [j["lam"] for j in summary["per_lambda"]] == [lam for s in summary["stages"] for lam in s["lams"]]

    def mean_figures(key):
        records = by_lambda[key]
        return np.mean([r["val_accuracy"] for r in records]), -np.mean([r["val_cost"] for r in records])

    best = max(by_lambda, key=mean_figures)
    assert (summary["best"]["stage"], summary["best"]["index"]) == best
    for stage in summary["stages"]:
        best_of_stage = max((key for key in by_lambda if key[0] == stage["stage"]), key=mean_figures)
        assert (stage["best"]["stage"], stage["best"]["index"]) == best_of_stage
    assert json.loads((out / SUMMARY_FILE).read_text()) == summary


def record_of(run, val_accuracy, val_cost=1.0):
    """A record as train_run writes it, with the figures given and no training."""
    return {"lam": run.config.lam, "param": run.param, "value": run.value, "stage": run.stage, "index": run.index,
            "seed": run.config.seed, "val_accuracy": val_accuracy, "val_cost": val_cost, "test_accuracy": 0.5,
            "n_train": run.n_train, "config": run.config.to_dict()}


class Scripted(Executor):
    """Trains nothing: a run's record gets the (val_accuracy, val_cost) that script[index][seed] gives.

    Also notes, at each run submitted, how many records the results file
    held already.
    """

    def __init__(self, script, results_path):
        self.script, self.results_path, self.recorded_before = script, results_path, []

    def submit(self, fn, run):
        self.recorded_before.append(len(whole_lines(self.results_path)))
        val_accuracy, val_cost = self.script[run.index][run.config.seed]
        future = Future()
        future.set_result(record_of(run, val_accuracy, val_cost))
        return future


def test_the_best_lambda_has_the_best_mean_not_the_best_single_run(tmp_path):
    # (val_accuracy, val_cost) of seeds 0 and 1; the accuracies are exact in binary, so the means tie exactly.
    script = [
        [(0.875, 1.0), (0.0625, 1.0)],  # the best single run, a poor mean: 0.46875
        [(0.5, 1.0), (0.5, 1.0)],  # mean 0.5
        [(0.625, 0.5), (0.375, 0.5)],  # mean 0.5 at a lower cost: the best
        [(0.375, 0.5), (0.625, 0.5)],  # the same figures, drawn later
    ]
    config = replace(QUICK, coarse=4, stages=1, seeds=2, seed=0)
    executor = Scripted(script, tmp_path / RESULTS_FILE)
    summary = run_search(config, tmp_path, executor, progress=False)
    assert executor.recorded_before == [0] * 8  # every (lambda, seed) run submitted before any came back
    best = summary["best"]
    assert (best["index"], best["val_accuracy"], best["val_cost"], best["seeds"]) == (2, 0.5, 0.5, 2)
    assert best["val_accuracy_std"] == np.std([0.625, 0.375], ddof=1)
    assert summary["stages"][0]["best"] == best
    assert [j["val_accuracy"] for j in summary["per_lambda"]] == [0.46875, 0.5, 0.5, 0.5]

    # One seed, on the same folder: seed 0's runs are all recorded, and its best single run wins.
    single = run_search(replace(config, seeds=1), tmp_path, NoExecutor(), progress=False)
    assert single["trained"] == 0 and single["reused"] == 4
    first_run = next(r for r in read_lines(tmp_path / RESULTS_FILE) if (r["index"], r["seed"]) == (0, 0))
    assert single["best"] == brief([first_run], first_run["lam"])
    assert (single["best"]["index"], single["best"]["val_accuracy"]) == (0, 0.875)


def test_a_seed_averaged_search_started_again_trains_only_its_missing_runs(seeded, pool, cifar_dir, tmp_path):
    out, summary = seeded
    again = run_search(SEEDED, out, NoExecutor(), data_dir=cifar_dir, progress=False)
    assert again["trained"] == 0 and again["reused"] == 12
    assert {k: again[k] for k in ("best", "stages", "per_lambda")} == \
        {k: summary[k] for k in ("best", "stages", "per_lambda")}

    # Only the first seed's runs kept: the search trains the second seed's, and ends as the whole one did.
    for record in results(out).values():
        if record["seed"] == 3:
            append_line(tmp_path / RESULTS_FILE, record)
    restarted = run_search(SEEDED, tmp_path, pool, data_dir=cifar_dir, progress=False)
    assert restarted["trained"] == 6 and restarted["reused"] == 6
    same_results(results(tmp_path), results(out))
    assert restarted["best"] == summary["best"] and restarted["per_lambda"] == summary["per_lambda"]


def test_search_seeds_on_the_command_line_from_start_to_end(tmp_path, capsys):
    # 5,100 fake images: the report split keeps 5,000 for validation, 100 to train.
    fake = write_fake_cifar(tmp_path / "data", n_per_batch=1020)
    out = tmp_path / "out"
    argv = ["search", "--lam-range", "1e-5", "1e-1", "--coarse", "2", "--fine", "2", "--stages", "2",
            "--cycles", "1", "--hidden", "8", "--n-s", "2", "--n-train", "100", "--seed", "1", "--seeds", "2",
            "--workers", "2", "--data-dir", str(fake), "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / SUMMARY_FILE).read_text())
    by_lambda = runs_by_lambda(out)
    assert len(by_lambda) == 4 and all([r["seed"] for r in rs] == [1, 2] for rs in by_lambda.values())
    assert summary["config"]["seeds"] == 2 and summary["trained"] == 8
    best = summary["best"]
    assert best["seeds"] == 2 and best["val_accuracy_std"] is not None
    assert "each lambda judged on the mean of 2 seeds (1 to 2)" in printed
    assert "stage 1: 4 runs (2 lambdas x 2 seeds)" in printed
    assert (f"best lambda {best['lam']:.4g}: validation accuracy {100 * best['val_accuracy']:.2f}"
            f" ± {100 * best['val_accuracy_std']:.2f} %") in printed
    assert "trained 8 runs, reused 0" in printed

    assert main(argv) == 0  # again: every (lambda, seed) run is recorded
    assert "trained 0 runs, reused 8" in capsys.readouterr().out


# --- Other settings than lambda ------------------------------------------------------


class ByValue(Executor):
    """Trains nothing: a run's record gets the validation accuracy score(value), and cost 1."""

    def __init__(self, score):
        self.score = score

    def submit(self, fn, run):
        future = Future()
        future.set_result(record_of(run, self.score(run.value)))
        return future


def test_the_default_search_of_lambda_draws_and_records_as_before(tmp_path):
    # The best lambda at 10^-1.3, near the range's edge, so that stage 2 reaches past 1e-1.
    summary = run_search(SearchConfig(), tmp_path, ByValue(lambda lam: 0.5 - (math.log10(lam) + 1.3) ** 2 / 100),
                         progress=False)
    # What the search of lambda alone gave (commit f385351), to the last bit.
    expected = [
        ([-5.0, -1.0], [0.0362205603776798, 0.0016925916763832934, 0.015982044941494765]),
        ([-1.6739447300986456, -0.6739447300986456], [0.025519920026575563, 0.05351716040276744, 0.08459495741586875]),
        ([-1.4221210396226809, -1.1721210396226809], [0.06333184578482007, 0.06208441161229517, 0.04552213956721796]),
    ]
    assert [(s["log10_range"], s["lams"][:3]) for s in summary["stages"]] == expected
    assert summary["best"]["lam"] == summary["best"]["value"] == 0.050452066602388386
    # Its summary keeps lambda's keys beside the neutral ones, and its dict the shape that names notebook 04's cache.
    assert summary["param"] == "lam" and summary["scale"] == "log"
    assert summary["per_lambda"] == summary["per_value"] and len(summary["per_value"]) == 30
    for stage in summary["stages"]:
        assert stage["lam_range"] == stage["range"] == [10.0**u for u in stage["log10_range"]]
        assert stage["lams"] == stage["values"]
    assert summary["config"] == SearchConfig().to_dict()
    assert set(summary["config"]) == {"lam_range", "coarse", "fine", "stages", "shrink", "cycles", "seed", "seeds",
                                      "base", "n_train"}
    assert summary["config"]["lam_range"] == [1e-5, 1e-1]


@pytest.fixture(scope="module")
def fake_dir(tmp_path_factory):
    """5,100 fake images: the report split keeps 5,000 for validation, 100 to train."""
    return write_fake_cifar(tmp_path_factory.mktemp("fake"), n_per_batch=1020)


FAKE = SearchConfig(coarse=3, fine=2, stages=2, cycles=1, n_train=100,
                    base=TrainConfig(hidden=(8,), n_s=2, evals_per_cycle=1))
"""A search of 5 values on the fake data, each run 4 steps."""


def check_a_search_of(param, summary, folder):
    """Assert what every search of param (not lambda) gives: records and summary in terms of param's value."""
    records = list(results(folder).values())
    assert len(records) == summary["runs"] == summary["trained"] == 5
    assert summary["param"] == param and "per_lambda" not in summary
    assert [j["value"] for j in summary["per_value"]] == [v for s in summary["stages"] for v in s["values"]]
    for r in records:
        assert r["param"] == param and r["config"][param] == r["value"]
        assert r["lam"] == r["config"]["lam"] == FAKE.base.lam  # lambda kept for old readers, and left alone
        assert 0 <= r["val_accuracy"] <= 1 and r["steps"] == 4
    by_value = {r["value"]: r for r in records}
    first, second = summary["stages"]
    assert first["best"]["value"] == max(first["values"], key=lambda v: (by_value[v]["val_accuracy"],
                                                                         -by_value[v]["val_cost"]))
    assert "lam_range" not in first and "lams" not in first
    return first, second


def test_a_search_of_eta_max_on_a_log_scale(pool, fake_dir, tmp_path):
    config = replace(FAKE, param="eta_max", value_range=(1e-3, 1e-1))
    summary = run_search(config, tmp_path, pool, data_dir=fake_dir, progress=False)
    first, second = check_a_search_of("eta_max", summary, tmp_path)
    assert first["values"] == sample_values((-3, -1), 3, seed=0, stage=1)
    assert first["log10_range"] == [-3, -1] and first["range"] == pytest.approx([1e-3, 1e-1])
    assert np.mean(second["log10_range"]) == pytest.approx(math.log10(first["best"]["value"]))
    assert np.diff(second["log10_range"])[0] == pytest.approx(0.5)  # 2 decades / shrink 4
    assert summary["config"]["param"] == "eta_max" and summary["config"]["value_range"] == [1e-3, 1e-1]


def test_a_search_on_a_linear_scale(pool, fake_dir, tmp_path):
    config = replace(FAKE, param="alpha", scale="linear", value_range=(0.3, 0.7))
    summary = run_search(config, tmp_path, pool, data_dir=fake_dir, progress=False)
    first, second = check_a_search_of("alpha", summary, tmp_path)
    assert summary["scale"] == "linear" and "log10_range" not in first
    assert first["range"] == [0.3, 0.7] and first["values"] == sample_values((0.3, 0.7), 3, 0, 1, "linear")
    assert np.mean(second["range"]) == pytest.approx(first["best"]["value"])
    assert np.diff(second["range"])[0] == pytest.approx(0.1)  # 0.4 / shrink 4
    assert all(second["range"][0] <= v <= second["range"][1] for v in second["values"])


def test_a_whole_number_setting_trains_each_rounded_value_once(tmp_path):
    # 20 draws from [9.6, 12.4] round to 10, 11 or 12: each trains once, as the first draw that gave it.
    config = replace(FAKE, param="n_batch", scale="linear", value_range=(9.6, 12.4), coarse=20, fine=20)
    drawn = [round(v) for v in sample_values((9.6, 12.4), 20, seed=0, stage=1, scale="linear")]
    summary = run_search(config, tmp_path, ByValue(lambda n_batch: n_batch / 100), progress=False)
    first, second = summary["stages"]
    assert first["values"] == list(dict.fromkeys(drawn)) and sorted(first["values"]) == [10, 11, 12]
    assert all(isinstance(v, int) for s in summary["stages"] for v in s["values"])
    assert first["best"]["value"] == 12
    records = read_lines(tmp_path / RESULTS_FILE)
    assert sorted(r["index"] for r in records if r["stage"] == 1) == [0, 1, 2]
    assert all(r["config"]["n_batch"] == r["value"] for r in records)
    # Stage 2 narrows around 12; a value stage 1 trained is judged again from its record, not trained again.
    assert summary["runs"] == 3 + len(second["values"]) < config.run_count()
    assert summary["trained"] == len(records) == len({r["value"] for r in records})


def test_a_search_of_the_widths(tmp_path):
    base = TrainConfig(hidden=(20, 30))
    width = replace(FAKE, param="width", value_range=(10, 100), base=base)
    assert run_config(width, 42, seed=0).hidden == (42, 42)
    scaled = replace(width, param="width_scale", value_range=(0.5, 2))
    assert run_config(scaled, 1.5, seed=0).hidden == (30, 45)
    assert run_config(scaled, 0.52, seed=0).hidden == (10, 16)  # each width rounded

    (runs,) = plan_stage(replace(width, coarse=1), 1, stage_range(width, 1))
    assert isinstance(runs[0].value, int) and runs[0].config.hidden == (runs[0].value,) * 2
    # Scales that give the same widths train once: 0.99 to 1.01 all give 20 and 30.
    narrow = replace(scaled, value_range=(0.99, 1.01), coarse=5)
    (runs,) = plan_stage(narrow, 1, stage_range(narrow, 1))
    assert runs[0].value == sample_values(stage_range(narrow, 1), 5, 0, 1)[0] and runs[0].config.hidden == (20, 30)

    summary = run_search(replace(scaled, stages=1), tmp_path, ByValue(lambda scale: scale / 10), progress=False)
    assert summary["best"]["value"] == max(summary["stages"][0]["values"])
    for r in read_lines(tmp_path / RESULTS_FILE):
        assert r["param"] == "width_scale" and r["config"]["hidden"] == [round(20 * r["value"]), round(30 * r["value"])]


def test_every_numeric_field_of_trainconfig_is_searchable_even_one_added_later(monkeypatch):
    found = searchable()
    assert {"lam": float, "eta_max": float, "n_batch": int, "cycles": int, "n_s": int, "width": int,
            "width_scale": float}.items() <= found.items()
    assert not {"hidden", "norm", "init", "textbook", "seed"} & found.keys()

    @dataclass
    class Wider(TrainConfig):
        dropout_rate: float = setting(0.0, "model", "a rate", at_least=0, below=1)
        patience: int | None = setting(None, "schedule", "evaluations without progress before stopping")
        note: str = setting("", "run", "a note", choices=("",))
        shuffle: bool = setting(True, "run", "shuffle")

    monkeypatch.setattr(search, "SETTINGS", declared(Wider))  # the declaration searchable() reads
    found = searchable()
    assert found["dropout_rate"] is float and found["patience"] is int
    assert "note" not in found and "shuffle" not in found


@pytest.mark.parametrize("param", ["hidden", "norm", "init", "textbook", "seed", "dropout_rate"])
def test_a_setting_that_is_not_a_number_of_trainconfig_is_refused_with_the_list(param, tmp_path):
    listed = "lam, n_batch, label_smoothing, eta_min, .*, width, width_scale"
    with pytest.raises(ConfigError, match=f"'{param}' cannot be searched.* {listed}"):
        run_search(replace(QUICK, param=param), tmp_path / "out", NoExecutor(), progress=False)
    assert not (tmp_path / "out").exists()


def test_a_search_of_another_setting_on_the_command_line_from_start_to_end(fake_dir, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["search", "--param", "n_batch", "--range", "9.6", "30.4", "--scale", "linear", "--coarse", "4",
            "--fine", "3", "--stages", "2", "--cycles", "1", "--hidden", "8", "--n-s", "2", "--n-train", "100",
            "--workers", "2", "--data-dir", str(fake_dir), "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / SUMMARY_FILE).read_text())
    assert summary["param"] == "n_batch" and summary["scale"] == "linear"
    assert summary["config"]["value_range"] == [9.6, 30.4] and summary["config"]["scale"] == "linear"
    records = list(results(out).values())
    assert len(records) == summary["trained"] == summary["runs"]
    assert all(r["param"] == "n_batch" and r["config"]["n_batch"] == r["value"] for r in records)
    assert all(isinstance(r["value"], int) and 10 <= r["value"] <= 30 for r in records if r["stage"] == 1)
    first = summary["stages"][0]
    assert f"n_batch in [9.6, 30.4]: best n_batch {first['best']['value']}" in printed
    assert f"best n_batch {summary['best']['value']}: validation accuracy" in printed

    assert main(argv) == 0  # again: every run is recorded
    assert f"trained 0 runs, reused {summary['runs']}" in capsys.readouterr().out


# --- Executors -----------------------------------------------------------------


def test_a_dask_cluster_gives_the_same_results_as_the_process_pool(reference, cifar_dir, tmp_path, capsys):
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        code = main(["search", *cli_args(), "--scheduler", cluster.scheduler_address,
                     "--data-dir", str(cifar_dir), "--out", str(tmp_path)])
    assert code == 0
    ref_out, ref_summary = reference
    same_results(results(tmp_path), results(ref_out))
    summary = json.loads((tmp_path / SUMMARY_FILE).read_text())
    assert summary["stages"] == ref_summary["stages"] and summary["best"] == ref_summary["best"]
    # Dask gives its workers one BLAS thread too, which keeps the arithmetic identical.
    assert {r["blas_threads"] for r in results(tmp_path).values()} == {1}
    printed = capsys.readouterr().out
    for s in ref_summary["stages"]:
        assert f"stage {s['stage']}: 3 runs" in printed and f"best lambda {s['best']['lam']:.4g}" in printed
    assert "trained 6 runs, reused 0" in printed


# --- Interruptions and restarts --------------------------------------------------


def test_a_search_whose_runs_fail_midway_finishes_when_started_again(reference, pool, cifar_dir, tmp_path):
    with pytest.raises(RuntimeError, match="worker lost"):
        run_search(QUICK, tmp_path, FailsAfter(pool, 3), data_dir=cifar_dir, progress=False)
    assert len(results(tmp_path)) == 3  # stage 1, recorded before stage 2 failed
    summary = run_search(QUICK, tmp_path, pool, data_dir=cifar_dir, progress=False)
    assert summary["trained"] == 3 and summary["reused"] == 3
    same_results(results(tmp_path), results(reference[0]))


def test_a_search_killed_midway_finishes_when_started_again(pool, cifar_dir, tmp_path):
    path = tmp_path / RESULTS_FILE
    proc = start_search([*cli_args(n_s=500), "--workers", "1", "--data-dir", str(cifar_dir)], tmp_path)
    wait_for_lines(path, 1, proc)
    os.killpg(proc.pid, signal.SIGKILL)  # the search and its worker, as a crash would
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    before = whole_lines(path)
    assert 1 <= len(before) < 6

    summary = run_search(SLOW, tmp_path, pool, data_dir=cifar_dir, progress=False)
    assert summary["reused"] == len(before) and summary["trained"] == 6 - len(before)
    assert whole_lines(path)[: len(before)] == before  # the runs done before the kill were kept as they were
    assert len(results(tmp_path)) == 6
    assert all(r["steps"] == 1000 for r in results(tmp_path).values())


def test_ctrl_c_stops_the_search_and_its_workers_cleanly(cifar_dir, tmp_path):
    path = tmp_path / RESULTS_FILE
    proc = start_search([*cli_args(n_s=500), "--workers", "2", "--data-dir", str(cifar_dir)], tmp_path)
    # After two runs, one worker trains the third and the other waits: both must stop quietly.
    wait_for_lines(path, 2, proc)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "interrupted" in err and "Traceback" not in err
    recorded = results(tmp_path).values()
    assert 2 <= len(recorded) < 6
    assert all(r["steps"] == 1000 for r in recorded)  # no interrupted run is recorded as finished


# --- The results file --------------------------------------------------------------


def test_a_torn_last_line_is_ignored_then_cut_off_by_the_next_append(tmp_path):
    path = tmp_path / RESULTS_FILE
    append_line(path, {"run": 1})
    append_line(path, {"run": 2})
    with open(path, "ab") as f:
        f.write(b'{"run": 3, "val_accur')  # a writer killed mid-line
    assert read_lines(path) == [{"run": 1}, {"run": 2}]
    append_line(path, {"run": 4})
    assert read_lines(path) == [{"run": 1}, {"run": 2}, {"run": 4}]
    assert path.read_bytes() == b'{"run": 1}\n{"run": 2}\n{"run": 4}\n'


def test_a_damaged_whole_line_is_reported_not_skipped(tmp_path):
    path = tmp_path / RESULTS_FILE
    path.write_bytes(b'{"run": 1}\nnot json\n{"run": 3}\n')
    with pytest.raises(HelpersError, match="line 2"):
        read_lines(path)


def append_many(path, writer, n):
    """Append n numbered lines of 20 kB, as one of several writers."""
    for i in range(n):
        append_line(path, {"writer": writer, "i": i, "padding": "x" * 20_000})


def test_two_processes_appending_at_once_mix_and_lose_no_line(tmp_path):
    path = tmp_path / RESULTS_FILE
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=append_many, args=(path, w, 150)) for w in ("a", "b")]
    for w in writers:
        w.start()
    for w in writers:
        w.join(timeout=60)
        assert w.exitcode == 0
    records = read_lines(path)
    assert len(records) == 300
    for w in ("a", "b"):
        assert [r["i"] for r in records if r["writer"] == w] == list(range(150))


# --- Bad settings ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"value_range": (0, 1e-1)}, "0 < low < high"),
        ({"value_range": (-1e-3, 1e-1)}, "0 < low < high"),
        ({"value_range": (1e-1, 1e-5)}, "0 < low < high"),
        ({"value_range": (1e-3, 1e-3)}, "0 < low < high"),
        ({"value_range": (1e-5, math.inf)}, "finite"),
        ({"value_range": (1e-5,)}, "two finite numbers"),
        ({"scale": "linear", "value_range": (0.1, -0.1)}, "low < high"),
        ({"scale": "linear", "value_range": (-1e-3, 1e-1)}, "its low end, lam = -0.001: lam.* must be >= 0"),
        ({"scale": "cubic"}, "scale must be 'log' or 'linear'"),
        ({"param": "eta_min", "value_range": (1e-6, 0.5)}, "its high end, eta_min = 0.5: Need 0 < eta_min"),
        ({"param": "n_batch", "value_range": (0.4, 50)}, "its low end, n_batch = 0.4: n_batch must be a whole number >= 1, got 0"),
        ({"param": "n_batch", "value_range": (50, 3000)}, r"its high end, n_batch = 3000: .* larger than .* \(2000\)"),
        ({"param": "width", "value_range": (0.2, 10)}, "hidden must each be a whole number >= 1, got \\[0\\]"),
        ({"param": "width", "base": TrainConfig(hidden=())}, "width sets the widths .* the network has none"),
        ({"param": "width_scale", "base": TrainConfig(hidden=())}, "width_scale sets the widths"),
        ({"coarse": 0}, "coarse"),
        ({"fine": 0}, "fine"),
        ({"stages": 0}, "stages"),
        ({"stages": 2.5}, "stages"),
        ({"shrink": 0.5}, "shrink"),
        ({"cycles": 0}, "cycles"),
        ({"n_train": 0}, "n_train"),
        ({"seeds": 0}, "seeds must be a whole number >= 1, got 0"),
        ({"seeds": -1}, "seeds must be a whole number >= 1, got -1"),
        ({"seeds": 1.5}, "seeds must be a whole number >= 1, got 1.5"),
        ({"seeds": True}, "seeds must be a whole number >= 1, got True"),
    ],
)
def test_bad_settings_raise_config_error_before_any_work(changes, words, tmp_path):
    with pytest.raises(ConfigError, match=words):
        run_search(replace(QUICK, **changes), tmp_path / "out", NoExecutor(), progress=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--lam-range", "1e-1", "1e-5"], "--lam-range: value_range must satisfy 0 < low < high"),
        (["--param", "dropout_rate"], "--param: 'dropout_rate' cannot be searched"),
        (["--param", "eta_max"], "--param: eta_max has no default range: give one with --range LOW HIGH"),
        (["--param", "eta_max", "--range", "0", "1"], "--range: value_range must satisfy 0 < low < high"),
        (["--scale", "linear", "--range", "-1", "1"], "--range: value_range cannot train at its low end"),
        (["--coarse", "0"], "coarse"),
        (["--stages", "0"], "stages"),
        (["--workers", "0"], "--workers"),
    ],
)
def test_the_command_line_refuses_bad_settings_with_a_message(argv, words, tmp_path, capsys):
    assert main(["search", *argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and words in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
