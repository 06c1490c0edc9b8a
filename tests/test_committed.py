"""Results made once by their own command and committed: notebook 04's searches of lambda, notebook 06's ablation,
and the reader and command they share with notebook 06's comparison of update rules."""

import json
from types import SimpleNamespace
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest

from helpers.core.config import TrainConfig
from helpers.core.data import load_cifar10
from helpers.errors import HelpersError
from helpers.report import ablation, committed, lambda_search, rules
from helpers.report.committed import differing, read_committed
from helpers.report.lambda_search import SEARCH_FILE, lambda_searches, run_searches, search_configs
from helpers.report.settings import NotebookSettings
from helpers.search import SearchConfig
from tests.conftest import write_fake_cifar

FULL = NotebookSettings(quick=False, figures="figures", cache="unused")
"""The main job's settings in full mode: the committed files are read, nothing trains."""


class NoExecutor:
    """An executor that refuses work: whatever reaches it was not recalled."""

    def submit(self, *args, **kwargs):
        raise AssertionError("a run was trained instead of recalled")


def test_the_first_search_is_the_reports_the_search_command_runs_by_default():
    configs = search_configs(FULL)
    single, averaged = configs.values()
    assert list(configs) == ["one seed per lambda", "3 seeds per lambda"]
    assert single == SearchConfig()  # `python -m helpers search` with no flags
    assert averaged == replace(single, seeds=3, coarse=3, fine=3)
    assert averaged.run_count() <= single.run_count()


def test_notebook_04_reads_the_committed_searches_in_full_mode():
    stored = json.loads(SEARCH_FILE.read_text())
    found = lambda_searches(FULL, cifar=None)  # no data: nothing may train
    assert found == stored["searches"]
    for label, config in search_configs(FULL).items():
        assert differing(found[label]["config"], config.to_dict()) == []  # newer fields forgiven at their defaults
        assert found[label]["runs"] == config.run_count()
        assert found[label]["best"]["value"] == found[label]["best"]["lam"] > 0


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    """5,100 fake images per the report split: 5,000 validate, the first 100 of the rest train."""
    folder = write_fake_cifar(tmp_path_factory.mktemp("fake"), n_per_batch=1020)
    return load_cifar10(folder, split="report", n_train=100)


def tiny_configs():
    base = SearchConfig(coarse=2, fine=2, n_train=100, base=TrainConfig(hidden=(8,), n_s=2, evals_per_cycle=1))
    return {"one seed per lambda": base, "2 seeds per lambda": replace(base, seeds=2, coarse=1, fine=1)}


def test_both_searches_run_then_are_recalled_from_the_cache(fake, tmp_path):
    configs = tiny_configs()
    with ThreadPoolExecutor(1) as executor:  # no worker processes to start: the runs take milliseconds
        found = run_searches(fake, configs, tmp_path, executor, progress=False)
    assert found["settings"] == {label: config.to_dict() for label, config in configs.items()}
    for label, config in configs.items():
        summary = found["searches"][label]
        assert summary["runs"] == config.run_count() and "trained" not in summary
        assert len(summary["stages"]) == config.stages
        assert summary["best"]["val_accuracy"] == max(j["val_accuracy"] for j in summary["per_value"])
    assert run_searches(fake, configs, tmp_path, NoExecutor(), progress=False) == found


def test_a_stale_or_missing_file_is_refused_with_the_command_that_makes_it(monkeypatch, tmp_path):
    path = tmp_path / "searches.json"
    stored = json.loads(SEARCH_FILE.read_text())
    stored["settings"]["one seed per lambda"]["coarse"] = 5
    path.write_text(json.dumps(stored))
    monkeypatch.setattr(lambda_search, "SEARCH_FILE", path)
    with pytest.raises(HelpersError, match=r"one seed per lambda\.coarse differ\): it is stale; make it again with "
                                           r"`python -m helpers\.report\.lambda_search` \(about 7 minutes"):
        lambda_searches(FULL, cifar=None)
    monkeypatch.setattr(lambda_search, "SEARCH_FILE", tmp_path / "none.json")
    with pytest.raises(HelpersError, match=r"none\.json is missing: make it with `python -m helpers\.report\.lambda"):
        lambda_searches(FULL, cifar=None)


def test_differing_names_each_difference_and_forgives_a_trainconfig_field_added_since_at_its_default():
    config = TrainConfig().to_dict()
    expected = {"values": 6, "base": config, "one": {"seeds": 3, "base": {**config, "lam": 0.01}}}
    assert differing(expected, expected) == []
    older = json.loads(json.dumps(expected))
    del older["base"]["norm"], older["one"]["base"]["rmsprop_rho"]  # fields added since, at their defaults
    assert differing(older, expected) == []
    del older["one"]["base"]["lam"]  # not at its default: the file cannot say it was 0.01
    del older["one"]["seeds"]  # not a TrainConfig field
    assert differing(older, expected) == ["one.seeds", "one.base.lam"]
    changed = {"values": 2, "base": {**config, "lam": 0.1}, "one": expected["one"]}
    assert differing(changed, expected) == ["values", "base.lam"]


def test_read_committed_returns_what_the_file_holds(tmp_path):
    path = tmp_path / "result.json"
    path.write_text(json.dumps({"settings": {"values": 6}, "numbers": [1, 2]}))
    assert read_committed(path, {"values": 6}, "`make it`") == {"settings": {"values": 6}, "numbers": [1, 2]}
    with pytest.raises(HelpersError, match=r"\(values differ\): it is stale; make it again with `make it`\."):
        read_committed(path, {"values": 2}, "`make it`")


@pytest.mark.parametrize("module", [lambda_search, rules, ablation])
def test_each_command_refuses_an_output_it_cannot_write_before_loading_any_data(module, tmp_path, monkeypatch,
                                                                                capsys):
    monkeypatch.setattr(committed, "load_cifar10", lambda *args, **kwargs: pytest.fail("the data was loaded"))
    (tmp_path / "file").write_text("")
    assert module.main(["--out", str(tmp_path / "file" / "out.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--out" in err and len(err.splitlines()) == 1, err


REPORT_SPLIT = SimpleNamespace(train=SimpleNamespace(y=range(45_000)))
"""Stands for the report split's data, of which notebook 06's reader needs the number of training images only."""


def test_notebook_06_reads_the_committed_ablation_in_full_mode_every_row_over_3_seeds():
    stored = json.loads(ablation.ABLATION_FILE.read_text())
    runs = ablation.notebook_ablation(FULL, REPORT_SPLIT)
    configs = ablation.ablation_configs(TrainConfig(), ablation.CHANGES)
    assert runs == stored["runs"] and list(runs) == list(configs)
    for label, config in configs.items():
        assert [run["config"] for run in runs[label]] == [replace(config, seed=s).to_dict() for s in range(3)]
        assert all("history" not in run for run in runs[label])


def test_the_ablation_runs_small_then_is_recalled_and_a_stale_file_is_refused(fake, tmp_path, monkeypatch):
    base = TrainConfig(hidden=(8,), n_s=2, evals_per_cycle=1)
    changes = (ablation.change("wider", hidden=(12,)), ablation.change("TTA", tta=True))
    with ThreadPoolExecutor(1) as executor:
        found = ablation.run_ablation(fake, base, changes, 2, tmp_path, executor)
    assert list(found["runs"]) == ["base", "+ wider", "+ TTA", "base + wider + TTA"]
    assert found["settings"]["seeds"] == 2 and found["settings"]["n_train"] == 100
    assert ablation.run_ablation(fake, base, changes, 2, tmp_path, NoExecutor()) == found
    path = tmp_path / "ablation.json"
    path.write_text(json.dumps(found))
    monkeypatch.setattr(ablation, "ABLATION_FILE", path)
    with pytest.raises(HelpersError, match=r"\(configs\.base\.hidden, .*seeds, n_train differ\): it is stale; make it "
                                           r"again with `python -m helpers\.report\.ablation` \(about 13 minutes"):
        ablation.notebook_ablation(FULL, REPORT_SPLIT)
