"""The staged lambda search: the draws, the narrowing rule, executors, the results file, restarts, the CLI.

The searches here are tiny (2,000 training images, hidden [20], 40 steps a
run, 3 + 3 lambdas, one or two seeds each) and share one process pool, so the
file runs in well under a minute.
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
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from helpers.cli import main
from helpers.errors import ConfigError, HelpersError
from helpers.search import (
    RESULTS_FILE,
    SUMMARY_FILE,
    SearchConfig,
    append_line,
    brief,
    process_pool,
    read_lines,
    run_key,
    run_search,
    sample_lambdas,
    stage_log10_range,
)
from helpers.core.training import TrainConfig

from conftest import write_fake_cifar

REPO = Path(__file__).resolve().parent.parent

QUICK = SearchConfig(
    lam_range=(1e-5, 1e-1), coarse=3, fine=3, stages=2, cycles=1, n_train=2000,
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
    lams = np.array(sample_lambdas((-5, -1), 40_000, seed=0, stage=1))
    assert lams.min() >= 1e-5 and lams.max() <= 1e-1
    # Log-uniform: each decade gets a quarter (a uniform draw would put 90 % in the last one).
    per_decade = np.histogram(np.log10(lams), bins=4, range=(-5, -1))[0] / len(lams)
    np.testing.assert_allclose(per_decade, 0.25, atol=0.01)
    assert sample_lambdas((-5, -1), 10, seed=0, stage=1) == sample_lambdas((-5, -1), 10, seed=0, stage=1)
    assert sample_lambdas((-5, -1), 10, seed=0, stage=2) != sample_lambdas((-5, -1), 10, seed=0, stage=1)
    assert sample_lambdas((-5, -1), 10, seed=1, stage=1) != sample_lambdas((-5, -1), 10, seed=0, stage=1)


def test_each_stage_is_centred_on_the_best_so_far_and_shrink_times_narrower():
    assert stage_log10_range((1e-5, 1e-1), 4, stage=1) == pytest.approx((-5, -1))
    # The report's second stage, [1e-4, 1e-3], after a best lambda of 10^-3.5.
    assert stage_log10_range((1e-5, 1e-1), 4, stage=2, best_lam=10**-3.5) == pytest.approx((-4, -3))
    # Width 4 / 4^2 decades; 4 / 20 would give the report's third stage, [10^-4.1, 10^-3.9].
    assert stage_log10_range((1e-5, 1e-1), 4, stage=3, best_lam=1e-4) == pytest.approx((-4.125, -3.875))
    assert stage_log10_range((1e-5, 1e-1), 20**0.5, stage=3, best_lam=1e-4) == pytest.approx((-4.1, -3.9))


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
                                                    "test_accuracy")}, "seeds": 1, "val_accuracy_std": None}
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
    assert first["lams"] == sample_lambdas((-5, -1), 3, seed=3, stage=1)
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
        future.set_result({"lam": run.config.lam, "stage": run.stage, "index": run.index, "seed": run.config.seed,
                           "val_accuracy": val_accuracy, "val_cost": val_cost, "test_accuracy": 0.5,
                           "n_train": run.n_train, "config": run.config.to_dict()})
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
    assert single["best"] == brief([first_run])
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
        ({"lam_range": (0, 1e-1)}, "0 < low < high"),
        ({"lam_range": (-1e-3, 1e-1)}, "0 < low < high"),
        ({"lam_range": (1e-1, 1e-5)}, "0 < low < high"),
        ({"lam_range": (1e-3, 1e-3)}, "0 < low < high"),
        ({"lam_range": (1e-5, math.inf)}, "finite"),
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
        (["--lam-range", "1e-1", "1e-5"], "lam_range"),
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
