"""Notebook 06's comparison of update rules and schedules: its runs, table, paragraph, figure and recalled file."""

import json
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest

from helpers.core.data import load_cifar10
from helpers.core.config import TrainConfig
from helpers.errors import ConfigError, HelpersError
from helpers.report import rules
from helpers.report.rules import (CONTENDERS, REPORT, comparison_settings, read_comparison, rules_figure, rules_table,
                                  rules_text, run_comparison, search_config)
from helpers.search import check_search_config
from tests.conftest import write_fake_cifar

BASE = TrainConfig(hidden=(8,), n_s=2, evals_per_cycle=1)
"""A tiny network, 8 steps per run: the comparison's machinery, not its numbers."""


class NoExecutor:
    """An executor that refuses work: whatever reaches it was not recalled."""

    def submit(self, *args, **kwargs):
        raise AssertionError("a run was trained instead of recalled")


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    """5,100 fake images per the report split: 5,000 validate, the first 100 of the rest train."""
    folder = write_fake_cifar(tmp_path_factory.mktemp("fake"), n_per_batch=1020)
    return load_cifar10(folder, split="report", n_train=100)


@pytest.fixture(scope="module")
def compared(fake, tmp_path_factory):
    """The whole comparison on the fake data, 2 learning rates per search, 2 seeds: (found, cache folder)."""
    cache = tmp_path_factory.mktemp("cache")
    with ThreadPoolExecutor(1) as executor:  # no worker processes to start: the runs take milliseconds
        found = run_comparison(fake, BASE, 2, 2, cache, executor, progress=False)
    return found, cache


def test_the_comparison_searches_each_contender_in_its_range_then_trains_its_best_over_seeds(compared):
    found, _ = compared
    assert list(found["searches"]) == [c.name for c in CONTENDERS]
    assert list(found["runs"]) == [REPORT, *(c.name for c in CONTENDERS)]
    for c in CONTENDERS:
        search = found["searches"][c.name]
        values = [j["value"] for j in search["per_value"]]
        assert len(values) == 2 and all(c.eta_range[0] <= v <= c.eta_range[1] for v in values)
        best = max(search["per_value"], key=lambda j: (j["val_accuracy"], -j["val_cost"]))
        assert search["best"] == best["value"]
        seeded = found["runs"][c.name]
        assert [run["config"]["seed"] for run in seeded] == [0, 1]
        for run in seeded:
            assert (run["config"]["optimizer"], run["config"]["schedule"]) == (c.optimizer, c.schedule)
            assert run["config"]["eta_max"] == search["best"] and run["steps"] == 8 and "history" not in run
    report = found["runs"][REPORT][0]["config"]
    assert (report["optimizer"], report["schedule"], report["eta_max"]) == ("sgd", "cyclical", 0.1)
    assert found["settings"] == comparison_settings(BASE, 2, 2, 100)


def test_a_comparison_run_again_recalls_every_run_from_the_cache(compared, fake):
    found, cache = compared
    assert run_comparison(fake, BASE, 2, 2, cache, NoExecutor(), progress=False) == json.loads(json.dumps(found))


def test_the_table_has_every_rule_and_schedule_with_its_gain_over_the_report(compared):
    found, _ = compared
    table = rules_table(found)
    assert [row[0] for row in table.rows] == [REPORT, *(c.name for c in CONTENDERS)]
    assert table.rows[0][1:3] == ["-", "0.1"] and table.rows[0][4:] == ["-", "-"]
    for row, c in zip(table.rows[1:], CONTENDERS):
        assert float(row[2]) == pytest.approx(found["searches"][c.name]["best"], rel=1e-2)
        assert row[3].endswith(" %") and row[4][0] in "+-" and row[5].startswith("p ")


def test_the_figure_shows_the_rules_beside_the_schedules(compared):
    fig = rules_figure(compared[0])
    rules_panel, schedules_panel = fig.axes

    def searched(ax):  # the colours of the panel's search lines, one per contender, dots joined
        return [line.get_color() for line in ax.lines if line.get_marker() == "o" and line.get_linestyle() == "-"]

    assert searched(rules_panel) == ["C0", "C1", "C2", "C3", "C4"] and searched(schedules_panel) == ["C0", "C5", "C6"]
    diamonds = [line for line in schedules_panel.lines if line.get_marker() == "D"]
    assert [line.get_xdata()[0] for line in diamonds] == [compared[0]["searches"][c.name]["best"]
                                                          for c in (CONTENDERS[0], *CONTENDERS[5:])]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [c.name for c in CONTENDERS]
    assert rules_panel.get_xscale() == "log" and fig.get_size_inches()[0] == pytest.approx(6.5)


def made_up(tests):
    """A comparison with the given test accuracies {label: [per seed]}, as read_comparison returns it."""
    return {
        "settings": comparison_settings(TrainConfig(), 6, 3, 45_000),
        "searches": {c.name: {"per_value": [], "best": 0.1} for c in CONTENDERS},
        "runs": {label: [{"test_accuracy": t, "steps": 9000, "config": {"eta_max": 0.1}} for t in seeded]
                 for label, seeded in tests.items()},
    }


SAME = [0.530, 0.532, 0.531]
TESTS = {REPORT: SAME, **{c.name: [0.531, 0.529, 0.532] for c in CONTENDERS}}


def test_the_paragraph_says_no_rule_beat_the_report_when_none_did():
    text = rules_text(made_up(TESTS))
    assert text.startswith("Each at its own best learning rate, against the report's SGD with cyclical rates "
                           "(eta_max 0.1, 53.10 ± 0.10 %, 9,000 steps):")
    assert "did better" not in text and "did worse" not in text
    assert "SGD + cosine did as well, as far as the seeds can tell from noise." in text
    assert text.endswith("So the report's plain SGD with cyclical rates was as good a choice as any of them for "
                         "this network and budget.")


def test_the_paragraph_follows_a_flipped_result():
    better = made_up({**TESTS, "Adam + cyclical": [0.560, 0.562, 0.561]})
    text = rules_text(better)
    assert "Adam + cyclical (+3.00 points, p = " in text and " did better." in text
    assert text.endswith("So the report's choice was not the best one for this network and budget: "
                         "Adam + cyclical reached 56.10 ± 0.10 %.")
    worse = made_up({**TESTS, "Adam + cyclical": [0.500, 0.502, 0.501]})
    text = rules_text(worse)
    assert "Adam + cyclical (-3.00 points, p = " in text and text.index("did worse") > text.index("did as well")
    assert "Adam + cyclical" not in text.split("did as well")[0]
    assert text.endswith("as good a choice as any of them for this network and budget.")


def test_the_stored_comparison_is_read_back_and_refused_when_stale_or_missing(tmp_path):
    path = tmp_path / "rules.json"
    stored = made_up(TESTS)
    path.write_text(json.dumps(stored))
    assert read_comparison(path, stored["settings"]) == stored
    with pytest.raises(HelpersError, match=r"values differ\): it is stale; make it again with `python -m helpers"):
        read_comparison(path, comparison_settings(TrainConfig(), 2, 3, 45_000))
    with pytest.raises(HelpersError, match=r"base\.lam differ"):
        read_comparison(path, comparison_settings(TrainConfig(lam=0.01), 6, 3, 45_000))
    moved = (replace(CONTENDERS[3], eta_range=(1e-5, 1e-3)), *CONTENDERS[4:])
    with pytest.raises(HelpersError, match="contenders differ"):
        read_comparison(path, comparison_settings(TrainConfig(), 6, 3, 45_000, CONTENDERS[:3] + moved))
    with pytest.raises(HelpersError, match=r"missing: make it with `python -m helpers.report.rules` \(10 to 25 minutes"):
        read_comparison(tmp_path / "none.json", stored["settings"])


def test_a_field_added_to_trainconfig_since_does_not_make_the_file_stale(tmp_path):
    stored = made_up(TESTS)
    del stored["settings"]["base"]["lam"]  # as if lam had been added to TrainConfig after the file was made
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(stored))
    assert read_comparison(path, comparison_settings(TrainConfig(), 6, 3, 45_000))["runs"] == stored["runs"]


def test_every_search_of_the_full_comparison_can_train_at_both_ends_of_its_range():
    for c in CONTENDERS:
        config = search_config(c, TrainConfig(), rules.VALUES, None)
        check_search_config(config)
        assert config.base.eta_min < c.eta_range[0] and config.cycles == 2 and config.stages == 1
        # The ranges are log-centred where each rule's step is about the report's: Adam's at 1e-3.
        assert math.log10(c.eta_range[1] / c.eta_range[0]) == 2
    assert rules.RUNS_FULL == 66


def test_data_of_another_split_is_refused_before_any_work(fake_cifar, tmp_path):
    small = load_cifar10(fake_cifar, split="small")
    with pytest.raises(ConfigError, match="split='report'"):
        run_comparison(small, BASE, 2, 2, tmp_path, NoExecutor(), progress=False)
