"""The pieces of the main job that need no kernel: report numbers, tables, gradient-check cases."""

import json
import os

import pytest

from helpers.report import checks, job, settings, summary, verdicts, writeup
from helpers.core.data import load_cifar10
from helpers.report.cache import DEFAULT_CACHE_DIR
from helpers.report.tables import Table


def test_the_report_numbers_are_all_there_once():
    keys = [claim.key for claim in summary.REPORT]
    assert len(keys) == len(set(keys)) == 17
    values = {claim.key: claim.value for claim in summary.REPORT}
    assert values["three_layer/no_bn"] == 53.37 and values["nine_layer/bn"] == 49.77
    assert values["lambda/best"] == 0.000715 and values["lambda/final"] == 50.37
    assert values["sigma/1e-4/bn"] == 48.03
    assert values["gradcheck/forward_seconds"] == 480


def test_compare_shows_report_ours_and_difference_and_writes_the_rows(tmp_path):
    table = summary.compare("02_three_layer", {"three_layer/no_bn": 0.5261, "three_layer/bn": 0.5310}, tmp_path)
    assert table.header == ["experiment", "quantity", "report", "ours", "difference", "report inside our seeds' range"]
    assert table.rows == [
        ["3-layer [50, 50], no BN", "test accuracy", "53.37 %", "52.61 %", "-0.76 pp", "-"],
        ["3-layer [50, 50], BN", "test accuracy", "49.71 %", "53.10 %", "+3.39 pp", "-"],
    ]
    record = json.loads((tmp_path / "02_three_layer.rows.json").read_text())
    assert record["ours"] == {"three_layer/no_bn": 0.5261, "three_layer/bn": 0.5310}


def test_compare_formats_times_lambdas_and_text():
    table = summary.compare("x", {"gradcheck/forward_seconds": 4.8, "lambda/best": 0.00143,
                                  "gradcheck/forward_errors": "1e-07 to 4e-07"})
    assert table.rows == [
        [summary.GRADCHECK, "time", "8.0 min", "4.8 s", "x 0.01", "-"],
        ["lambda search, all stages", "best lambda", "0.000715", "0.00143", "x 2", "-"],
        [summary.GRADCHECK, "relative errors of W and gamma", "1e-5 to 5e-4", "1e-07 to 4e-07", "-", "-"],
    ]


def test_over_seeds_compare_gives_mean_and_std_and_whether_the_report_is_inside_our_range(tmp_path):
    ours = {"three_layer/no_bn": [0.5300, 0.5340, 0.5380], "three_layer/bn": [0.5300, 0.5320, 0.5340],
            "sigma/1e-3/no_bn": [0.1, 0.1]}
    table = summary.compare("x", ours, tmp_path)
    assert table.rows[0][3:] == ["53.40 ± 0.40 %", "+0.03 pp", "yes (3 seeds)"]
    # 49.71 % lies (53.20 - 49.71) / 0.20 = 17.45 std below our mean.
    assert table.rows[1][3:] == ["53.20 ± 0.20 %", "+3.49 pp", "no: 17.5 std below our mean"]
    assert table.rows[2][3:] == ["10.00 ± 0.00 %", "+0.00 pp", "yes (2 seeds)"]
    assert json.loads((tmp_path / "x.rows.json").read_text())["ours"] == ours
    again = summary.gather(tmp_path, ["x"])
    assert [row[1:] for row in again.rows[:3]] == table.rows[:3]


def test_a_report_number_outside_seeds_that_do_not_vary_is_said_so():
    table = summary.compare("x", {"sigma/1e-1/bn": [0.5, 0.5]})
    assert table.rows[0][-1] == "no (all 2 seeds give 50.00 %)"


def test_compare_refuses_a_number_the_report_does_not_give():
    with pytest.raises(KeyError, match="three_layer/bm"):
        summary.compare("x", {"three_layer/bm": 0.5})


def test_gather_puts_every_claim_in_the_summary_in_notebook_order(tmp_path):
    summary.compare("05_init_sensitivity", {"sigma/1e-1/bn": 0.52}, tmp_path)
    summary.compare("02_three_layer", {"three_layer/bn": 0.53}, tmp_path)
    table = summary.gather(tmp_path, ["02_three_layer", "03_nine_layer", "05_init_sensitivity"])
    assert len(table.rows) == len(summary.REPORT)
    assert table.rows[0][:2] == ["02_three_layer", "3-layer [50, 50], BN"]
    assert table.rows[1][:2] == ["05_init_sensitivity", "sigma 1e-1, BN"]
    not_run = [row for row in table.rows if row[4] == "not run"]
    assert len(not_run) == len(summary.REPORT) - 2
    assert {row[1] for row in not_run} >= {"9-layer, BN", "lambda search, stage 1 (coarse)"}


def test_the_readme_block_is_replaced_and_the_rest_kept():
    readme = f"# Title\n\nbefore\n\n{summary.README_BEGIN}\nold table\n{summary.README_END}\n\nafter\n"
    new = summary.replace_readme_block(readme, "new table\n")
    assert new == f"# Title\n\nbefore\n\n{summary.README_BEGIN}\nnew table\n{summary.README_END}\n\nafter\n"
    assert summary.replace_readme_block(new, "new table") == new


@pytest.mark.parametrize("readme", ["no markers", f"{summary.README_END}\n{summary.README_BEGIN}\n",
                                    f"{summary.README_BEGIN}\na\n{summary.README_END}\n" * 2])
def test_a_readme_without_its_markers_is_refused(readme):
    with pytest.raises(ValueError, match="must hold"):
        summary.replace_readme_block(readme, "table")


def run(test, ensemble=0.52, snapshots=2, seconds=9.4):
    return {"test_accuracy": test, "ensemble_test_accuracy": ensemble, "snapshots": snapshots,
            "val_accuracy": 0.54, "steps": 9000, "n_train": 45000, "train_seconds": seconds}


def test_accuracy_table_one_row_per_run():
    table = summary.accuracy_table({"BN": run(0.531), "one cycle": run(0.5, None, 0)})
    assert table.rows[0] == ["BN", 1, "53.10 %", "52.00 % (2 snapshots)", "54.00 %", "9,000", "45,000", "9.4 s"]
    assert table.rows[1][3] == "-"


def test_accuracy_table_over_seeds_gives_mean_and_std():
    table = summary.accuracy_table({"BN": [run(0.53, 0.52, seconds=9), run(0.54, 0.54, seconds=10)]})
    assert table.rows[0] == ["BN", 2, "53.50 ± 0.71 %", "53.00 ± 1.41 % (2 snapshots)", "54.00 ± 0.00 %", "9,000",
                             "45,000", "9.5 s"]


def test_search_table_one_row_per_stage():
    best = {"lam": 0.000715, "val_accuracy": 0.5081, "test_accuracy": 0.5}
    search = {"config": {"seeds": 1},
              "stages": [{"stage": 3, "lam_range": [10 ** -4.1, 10 ** -3.9], "lams": [1] * 10, "best": best}]}
    assert summary.search_table(search).rows == [[3, "[7.94e-05, 1.26e-04]", 10, 1, "0.000715", "50.81 %", "50.00 %"]]
    over_seeds = {"config": {"seeds": 3}, "stages": [{**search["stages"][0], "best": {**best, "val_accuracy_std": 0.004}}]}
    assert summary.search_table(over_seeds).rows[0][3:6] == [3, "0.000715", "50.81 ± 0.40 %"]


def test_a_table_is_markdown_and_escapes_bars():
    table = Table(["a", "b"], [[1, "x | y"]], caption="**c**")
    assert str(table) == "**c**\n\n| a | b |\n| --- | --- |\n| 1 | x \\| y |\n"
    assert table._repr_markdown_() == str(table)


def test_the_gradient_checks_follow_the_report_sequence():
    cases = checks.report_cases(n_full=100)
    assert [(c.n, c.dim, c.hidden, c.lam) for c in cases] == [
        (3, 10, (50,), 0.0), (10, 10, (50,), 0.005), (10, 1000, (50, 50), 0.005), (100, 3072, (50, 50), 0.005)]
    assert checks.report_cases(n_full=20)[-1].n == 20
    assert cases[0].title == "3 images, 10 features, hidden [50], BN, lambda 0"


def test_a_gradient_check_case_compares_both_differences(fake_cifar):
    cifar = load_cifar10(fake_cifar, split="small")
    result = checks.run_case(checks.Case(n=5, dim=12, hidden=(6, 4), lam=0.01), cifar.train.X, cifar.train.y)
    assert result["unused"] == ["b1", "b2"]
    for method in checks.METHODS:
        assert set(result["errors"][method]) == {"W1", "b1", "gamma1", "beta1", "W2", "b2", "gamma2", "beta2",
                                                 "W3", "b3"}
        assert result["seconds"][method] > 0
    used = [name for name in result["errors"]["centered"] if name not in result["unused"]]
    assert max(result["errors"]["centered"][n] for n in used) < 1e-6
    assert max(result["errors"]["forward"][n] for n in used) < 1e-3
    low, high = checks.error_range(result, "forward")
    assert 0 < low <= high < 1e-3
    table = checks.side_by_side(result)
    assert table.header == ["layer", "W", "b", "gamma", "beta"]
    assert [row[0] for row in table.rows] == [1, 2, 3]
    assert table.rows[0][2] == "unused" and table.rows[2][3] == "-"
    assert " / " in table.rows[2][2]


def test_the_summary_ends_with_the_conclusions_tested_over_seeds(tmp_path):
    summary.compare("02_three_layer", {"three_layer/no_bn": [0.52, 0.53, 0.525], "three_layer/bn": [0.53, 0.54, 0.535]},
                    tmp_path)
    summary.compare("04_lambda_search", {"lambda/best": 0.003}, tmp_path)
    names = ["02_three_layer", "04_lambda_search"]
    seeded = {key: value for _, key, value in summary.gathered(tmp_path, names) if isinstance(value, list)}
    assert list(seeded) == ["three_layer/no_bn", "three_layer/bn"]
    findings = verdicts.findings_table(seeded)
    text = writeup.summary_markdown(tmp_path, names, quick=False)
    assert text.endswith("(Welch's t-test):\n\n" + findings.to_markdown())
    assert "| 3-layer [50, 50], no BN beats 3-layer [50, 50], BN (53.37 % against 49.71 %) |" in text


def test_the_notebooks_are_found_in_order():
    assert [p.name for p in job.notebook_paths()] == [
        "00_batch_norm_layer.ipynb", "01_gradient_check.ipynb", "02_three_layer.ipynb", "03_nine_layer.ipynb",
        "04_lambda_search.ipynb", "05_init_sensitivity.ipynb", "06_beyond_the_report.ipynb",
        "07_inside_batch_norm.ipynb"]


def test_the_kernel_environment_carries_the_settings(tmp_path):
    env = job.notebook_env(settings.notebook_settings(True, tmp_path / "f", tmp_path / "c"))
    assert env["NB_QUICK"] == "1" and env["TQDM_DISABLE"] == "1"
    assert env["NB_FIGURES_DIR"] == str(tmp_path / "f") and env["NB_CACHE_DIR"] == str(tmp_path / "c")
    assert job.notebook_env(settings.notebook_settings(False, "f", "c"))["NB_QUICK"] == "0"


def test_a_notebook_reads_the_settings_the_job_gives_its_kernel(tmp_path):
    given = settings.notebook_settings(True, tmp_path / "f", tmp_path / "c")
    assert settings.notebook_settings(environ=job.notebook_env(given)) == given


def test_without_settings_a_notebook_uses_the_repository_folders():
    assert settings.notebook_settings(environ={}) == settings.NotebookSettings(
        False, job.REPO / "figures", DEFAULT_CACHE_DIR)
    quick = settings.notebook_settings(environ={"NB_QUICK": "1"})
    assert quick.quick and quick.figures == job.REPO / "results" / "quick"


def test_quick_mode_shrinks_the_runs_and_full_mode_keeps_the_reports_sizes():
    full, quick = settings.notebook_settings(False, environ={}), settings.notebook_settings(True, environ={})
    assert (full.n_train, full.n_s) == (None, None)  # all 45,000 images, n_s of five epochs
    assert (quick.n_train, quick.n_s) == (5000, 100)


def test_a_setting_given_in_the_notebook_wins_over_the_environment(tmp_path):
    environ = {"NB_QUICK": "1", "NB_FIGURES_DIR": str(tmp_path / "env"), "NB_CACHE_DIR": str(tmp_path / "env")}
    given = settings.notebook_settings(False, tmp_path / "f", tmp_path / "c", environ=environ)
    assert given == settings.NotebookSettings(False, tmp_path / "f", tmp_path / "c")


def test_relative_folders_are_made_absolute_where_they_are_read(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    read = settings.notebook_settings(environ={"NB_FIGURES_DIR": "figs", "NB_CACHE_DIR": "../cache"})
    assert read.figures == tmp_path / "figs" and read.cache.resolve() == tmp_path.parent / "cache"


@pytest.mark.parametrize("value, quick", [("", False), ("0", False), ("no", False), ("1", True), ("True", True)])
def test_nb_quick_reads_yes_or_no(value, quick):
    assert settings.notebook_settings(environ={"NB_QUICK": value}).quick is quick


def test_nb_quick_refuses_anything_else():
    with pytest.raises(ValueError, match="NB_QUICK='quick': use 1"):
        settings.notebook_settings(environ={"NB_QUICK": "quick"})


def test_the_kernels_import_this_package():
    job.check_kernels_import_this_package(dict(os.environ))


def test_the_job_refuses_kernels_that_would_import_another_copy_of_helpers(tmp_path):
    other = tmp_path / "helpers"
    other.mkdir()
    (other / "__init__.py").write_text("")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    with pytest.raises(job.NotebookError, match=f"would import helpers from {other}, not {job.PACKAGE_DIR}"):
        job.check_kernels_import_this_package(env)
    (other / "__init__.py").write_text("raise ImportError('not here')")
    with pytest.raises(job.NotebookError, match=r"cannot import helpers \(ImportError: not here\): .* pip install -e"):
        job.check_kernels_import_this_package(env)


def test_notebooks_are_named_on_the_command_line_with_or_without_folder_and_suffix(tmp_path):
    path = job.NOTEBOOKS_DIR / "01_gradient_check.ipynb"
    assert job.find_notebook("01_gradient_check") == path
    assert job.find_notebook("01_gradient_check.ipynb") == path
    assert job.find_notebook(str(path)) == path
    with pytest.raises(job.NotebookError, match="no notebook 06_x: give a path, or one of .*01_gradient_check, 02_three_layer"):
        job.find_notebook("06_x")


def test_an_unknown_notebook_is_one_line_on_stderr(capsys):
    from helpers.cli import main

    assert main(["report", "--quick", "06_x"]) == 2
    assert capsys.readouterr().err.startswith("error: There is no notebook 06_x")


def test_search_comparison_gives_each_pick_and_its_ratio_to_the_first():
    def found(lam, seeds, std):
        best = {"lam": lam, "val_accuracy": 0.5081, "val_accuracy_std": std, "test_accuracy": 0.5}
        return {"best": best, "config": {"seeds": seeds}, "per_lambda": [best] * (30 // seeds)}

    table = summary.search_comparison({"one": found(0.002, 1, None), "three": found(0.003, 3, 0.004)})
    assert table.rows == [
        ["one", "30 x 1", "0.002", "50.81 %", "50.00 %", "same"],
        ["three", "10 x 3", "0.003", "50.81 ± 0.40 %", "50.00 %", "x 1.5"],
    ]
