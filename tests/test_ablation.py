"""The ablation of notebook 06: its runs, its table, and the paragraph written from it."""

from dataclasses import replace

import pytest

from helpers.core.config import TrainConfig
from helpers.report.ablation import ablation_configs, ablation_table, change, gains_text

CHANGES = (change("wider", hidden=(100, 100)), change("4 cycles", cycles=4), change("lower eta", eta_max=0.01))


def test_each_change_alone_then_added_one_by_one():
    configs = ablation_configs(TrainConfig(), CHANGES)
    assert list(configs) == ["base", "+ wider", "+ 4 cycles", "+ lower eta", "base + wider + 4 cycles",
                             "base + wider + 4 cycles + lower eta"]
    assert configs["+ 4 cycles"] == TrainConfig(cycles=4)
    assert configs["base + wider + 4 cycles + lower eta"] == TrainConfig(hidden=(100, 100), cycles=4, eta_max=0.01)


def seeds(*tests, seconds=10.0):
    return [{"test_accuracy": t, "train_seconds": seconds} for t in tests]


RUNS = {
    "base": seeds(0.530, 0.532, 0.531),
    "+ wider": seeds(0.560, 0.562, 0.561, seconds=30),
    "+ 4 cycles": seeds(0.541, 0.543, 0.542),
    "+ lower eta": seeds(0.529, 0.533, 0.531),
    "base + wider + 4 cycles": seeds(0.570, 0.571, 0.572),
    "base + wider + 4 cycles + lower eta": seeds(0.575, 0.574, 0.576),
}


def test_the_table_gives_each_row_its_gain_over_the_base():
    table = ablation_table(RUNS)
    assert table.rows[0] == ["base", 3, "53.10 ± 0.10 %", "-", "-", "10 s"]
    assert table.rows[1][:4] == ["+ wider", 3, "56.10 ± 0.10 %", "+3.00"]
    assert table.rows[1][4].startswith("p = ") and table.rows[1][5] == "30 s"
    assert table.rows[3][3] == "+0.00"


def test_the_paragraph_ranks_the_gains_and_says_what_made_no_difference():
    text = gains_text(RUNS, CHANGES)
    assert text.startswith("Alone on the report's network, the largest gains came from wider (+3.00 points, p = ")
    assert text.index("wider (") < text.index("4 cycles (")
    assert "Lower eta made no difference the seeds could tell from noise." in text
    assert text.endswith("reach 57.50 ± 0.10 %, +4.40 points over the base.")


def test_a_change_that_hurts_is_said_to():
    runs = {**RUNS, "+ lower eta": seeds(0.50, 0.501, 0.499)}
    assert "Alone, lower eta (-3.10 points) lowered the accuracy." in gains_text(runs, CHANGES)


def test_a_change_that_hurts_alone_and_helps_added_to_the_others_is_said_to():
    runs = {**RUNS, "+ 4 cycles": seeds(0.520, 0.521, 0.519), "base + wider + 4 cycles": seeds(0.580, 0.581, 0.582)}
    text = gains_text(runs, CHANGES)
    assert "Yet 4 cycles, -1.10 points alone, moved the network of the changes before it by +2.00 points (p = " in text
    assert "what a change buys depends on the network it joins." in text
    assert "Yet" not in gains_text(RUNS, CHANGES)  # 4 cycles helps alone and added; lower eta is not significant


@pytest.mark.parametrize("missing", ["base", "+ wider"])
def test_a_missing_run_is_a_key_error(missing):
    runs = {k: v for k, v in RUNS.items() if k != missing}
    with pytest.raises(KeyError):
        gains_text(runs, CHANGES)


def test_the_runs_of_a_seeds_json_are_read_and_a_missing_file_names_its_command(tmp_path):
    import json

    from helpers.errors import HelpersError
    from helpers.report.ablation import read_seed_runs

    path = tmp_path / "best.json"
    path.write_text(json.dumps({"seeds": [0, 1], "summaries": [{"test_accuracy": 0.6}, {"test_accuracy": 0.61}]}))
    assert read_seed_runs(path) == [{"test_accuracy": 0.6}, {"test_accuracy": 0.61}]
    with pytest.raises(HelpersError, match="--preset best --seeds 3 --json .*missing.json"):
        read_seed_runs(tmp_path / "missing.json")


def test_every_change_of_the_notebook_is_a_valid_training_configuration():
    from helpers.core.config import check_config
    from helpers.report.ablation import CHANGES

    for config in ablation_configs(TrainConfig(), CHANGES).values():
        check_config(config)


def test_the_best_model_trains_short_in_quick_mode_and_is_read_from_its_file_in_full_mode(tmp_path, monkeypatch):
    from conftest import write_fake_cifar
    from helpers.core.data import load_cifar10
    from helpers.report import ablation
    from helpers.report.settings import notebook_settings

    cifar = load_cifar10(write_fake_cifar(tmp_path / "data", n_per_batch=100), split="small")
    quick = notebook_settings(quick=True, cache=tmp_path / "cache", environ={})
    runs = ablation.best_model_runs(quick, cifar, quick.cache)
    assert [run["config"]["seed"] for run in runs] == [0, 1]
    assert runs[0]["config"]["hidden"] == list(ablation.PRESETS["best"].hidden) and runs[0]["steps"] == 200
    rows = ablation.tta_rows(runs)  # measured with and without mirror TTA
    assert [run["test_accuracy"] for run in rows[ablation.BEST]] == [run["without_tta"]["test_accuracy"]
                                                                     for run in runs]
    assert [run["test_accuracy"] for run in rows[ablation.BEST_TTA]] == [run["test_accuracy"] for run in runs]
    monkeypatch.setattr(ablation, "BEST_MODEL_FILE", tmp_path / "best.json")
    (tmp_path / "best.json").write_text('{"summaries": [{"test_accuracy": 0.6}]}')
    full = notebook_settings(quick=False, cache=tmp_path / "cache", environ={})
    assert ablation.best_model_runs(full, cifar, full.cache) == [{"test_accuracy": 0.6}]


def test_a_change_measured_alone_only_is_not_added_up():
    changes = (*CHANGES[:2], change("smoothing", added_up=False, label_smoothing=0.1), CHANGES[2])
    configs = ablation_configs(TrainConfig(), changes)
    assert list(configs) == ["base", "+ wider", "+ 4 cycles", "+ smoothing", "+ lower eta", "base + wider + 4 cycles",
                             "base + wider + 4 cycles + lower eta"]
    assert configs["+ smoothing"] == TrainConfig(label_smoothing=0.1)
    assert configs["base + wider + 4 cycles + lower eta"].label_smoothing == 0.0
    runs = {**RUNS, "+ smoothing": seeds(0.540, 0.541, 0.542)}
    text = gains_text(runs, changes)
    assert "smoothing (+1.00 points, p = " in text and text.endswith("reach 57.50 ± 0.10 %, +4.40 points over the base.")


def test_with_a_single_change_added_up_its_own_row_is_the_changes_together():
    changes = (CHANGES[0], change("smoothing", added_up=False, label_smoothing=0.1))
    assert list(ablation_configs(TrainConfig(), changes)) == ["base", "+ wider", "+ smoothing"]
    runs = {"base": RUNS["base"], "+ wider": RUNS["+ wider"], "+ smoothing": seeds(0.530, 0.531, 0.532)}
    assert gains_text(runs, changes).endswith("The changes added up (+ wider) reach 56.10 ± 0.10 %, "
                                              "+3.00 points over the base.")


def best_runs(plain, mirrored, tta=True):
    """Summaries of the best model as `train --tta --seeds` writes them: test accuracy with TTA, without beside."""
    return [{"config": {"precise_bn": 0, "tta": tta}, "train_seconds": 900.0, "test_accuracy": m, "val_accuracy": m,
             "without_tta": {"test_accuracy": p, "val_accuracy": p}} for p, m in zip(plain, mirrored)]


def test_the_best_model_gets_a_row_without_and_one_with_mirror_tta_and_a_sentence_from_them():
    from helpers.report import ablation

    rows = ablation.tta_rows(best_runs([0.630, 0.631, 0.629], [0.650, 0.652, 0.648]))
    assert list(rows) == ["best model", "best model + mirror TTA"]
    assert [run["test_accuracy"] for run in rows["best model"]] == [0.630, 0.631, 0.629]
    assert all(not run["config"]["tta"] for run in rows["best model"])
    table = ablation_table({**RUNS, **rows})
    assert table.rows[-2][:4] == ["best model", 3, "63.00 ± 0.10 %", "+9.90"]
    assert table.rows[-1][:4] == ["best model + mirror TTA", 3, "65.00 ± 0.20 %", "+11.90"]
    text = gains_text({**RUNS, **rows}, CHANGES)
    # Welch's p of the two rows, as scipy.stats.ttest_ind(equal_var=False) gives it: 0.000651.
    assert text.endswith("On the best model, mirror TTA moves the test accuracy from 63.00 ± 0.10 % to "
                         "65.00 ± 0.20 % (+2.00 points, p = 0.00065).")
    assert gains_text(RUNS, CHANGES).endswith("over the base.")  # no best model, no sentence on it


def test_best_model_runs_without_tta_give_one_row_and_the_paragraph_names_the_command_that_measures_it():
    from helpers.report import ablation

    rows = ablation.tta_rows(best_runs([0.63, 0.64], [0.63, 0.64], tta=False))
    assert list(rows) == [ablation.BEST]
    text = gains_text({**RUNS, **rows}, CHANGES)
    assert "hold no measurement with mirror TTA" in text
    assert "--preset best --seeds 3 --json figures/06_best_model.json" in text
    assert "mirror TTA moves" not in text


def test_names_keep_their_capitals_at_the_start_of_a_sentence():
    changes = (change("BN after the ReLU", norm_place="after"),)
    runs = {"base": seeds(0.53, 0.531, 0.532), "+ BN after the ReLU": seeds(0.531, 0.529, 0.532)}
    assert "BN after the ReLU made no difference" in gains_text(runs, changes)


def test_rows_that_differ_only_in_evaluation_share_one_training_and_read_their_own(tmp_path):
    from concurrent.futures import ThreadPoolExecutor
    from conftest import write_fake_cifar
    from helpers.core.data import load_cifar10
    from helpers.core.network import accuracy
    from helpers.core.training import train
    from helpers.experiments import tta_accuracy
    from helpers.report import ablation

    cifar = load_cifar10(write_fake_cifar(tmp_path / "data", n_per_batch=100), split="small")
    base = TrainConfig(hidden=(8,), n_batch=10, n_s=3, cycles=1, evals_per_cycle=1)
    changes = (ablation.change("wider", hidden=(12,)), ablation.change("PreciseBN", precise_bn=4),
               ablation.change("TTA", tta=True))
    configs = ablation.ablation_configs(base, changes)
    with ThreadPoolExecutor(2) as threads:
        runs = ablation.ablation_runs(configs, cifar, 2, tmp_path / "cache", threads)
    assert list(runs) == list(configs)
    assert len(list((tmp_path / "cache").glob("*.json"))) == 2 * 2  # the base and the wider network, 2 seeds each
    for label, config in configs.items():
        for seed, run in enumerate(runs[label]):
            assert run["config"]["precise_bn"] == config.precise_bn and run["config"]["tta"] == config.tta
            # Each row's accuracy is that of its own evaluation, computed here from scratch.
            result = train(replace(config, seed=seed), cifar.train, cifar.val, progress=False)
            final = tta_accuracy if config.tta else accuracy
            assert run["test_accuracy"] == final(result.net, cifar.test.X, cifar.test.y)
            assert run["val_accuracy"] == final(result.net, cifar.val.X, cifar.val.y)
    assert runs["+ PreciseBN"][0]["train_seconds"] == runs["base"][0]["train_seconds"]


def test_a_run_cannot_be_evaluated_with_what_it_did_not_compute():
    from helpers.experiments import evaluated

    run = {"config": {"precise_bn": 0, "tta": True}, "test_accuracy": 0.5, "val_accuracy": 0.4,
           "without_tta": {"test_accuracy": 0.45, "val_accuracy": 0.35}}
    assert evaluated(run, False, False) == {"test_accuracy": 0.45, "val_accuracy": 0.35}
    assert evaluated(run, False, True) == {"test_accuracy": 0.5, "val_accuracy": 0.4}
    with pytest.raises(ValueError, match="precise_bn=True"):
        evaluated(run, True, False)


def test_the_committed_best_model_file_is_the_best_preset_and_gives_its_rows():
    from helpers.core.config import PRESETS
    from helpers.report import ablation

    from helpers.report.committed import differing

    runs = ablation.read_seed_runs(ablation.BEST_MODEL_FILE)
    for seed, run in enumerate(runs):
        # A field newer than the file is forgiven at its default only, as the notebooks' committed files are.
        assert differing(run["config"], replace(PRESETS["best"], seed=seed, tta=run["config"]["tta"]).to_dict()) == []
    rows = ablation.tta_rows(runs)
    # Without TTA: the runs' own accuracies, or those kept beside the TTA ones (--tta).
    assert [r["test_accuracy"] for r in rows[ablation.BEST]] == [r.get("without_tta", r)["test_accuracy"] for r in runs]
