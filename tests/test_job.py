"""The main job's executed notebooks: where they go, and what of their outputs is kept."""

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from helpers.errors import ConfigError, NotebookError
from helpers.report import job
from helpers.report.settings import FIGURES_DIR, QUICK_FIGURES_DIR


def executed_notebook():
    """A notebook as nbclient leaves it: timing metadata, widget state, a slider's view beside its image."""
    slider = new_output("display_data", data={job.WIDGET_VIEW: {"model_id": "a1b2", "version_major": 2},
                                              "text/plain": "VBox(children=(...))", "image/png": "iVBORw0KGgo="})
    bare = new_output("display_data", data={job.WIDGET_VIEW: {"model_id": "c3d4"}, "text/plain": "IntSlider()"})
    figure = new_output("execute_result", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"},
                        execution_count=2)
    printed = new_output("stream", name="stdout", text=f"figures in {job.REPO}/figures/x.png\n")
    nb = new_notebook(cells=[
        new_markdown_cell("# Title"),
        new_code_cell("slider", outputs=[slider, bare], execution_count=1,
                      metadata={"execution": {"iopub.execute_input": "2026-12-02T10:00:00Z"}, "tags": ["a"]}),
        new_code_cell("fig", outputs=[figure, printed], execution_count=2),
    ])
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {"a1b2": {}}}}
    return nb


def test_full_mode_writes_the_executed_notebooks_back_and_other_runs_keep_theirs_apart(tmp_path):
    assert job.executed_folder(False, FIGURES_DIR) == job.NOTEBOOKS_DIR
    assert job.executed_folder(True, QUICK_FIGURES_DIR) == QUICK_FIGURES_DIR.resolve() / "notebooks"
    assert job.executed_folder(False, tmp_path) == tmp_path.resolve() / "notebooks"


def test_cleaning_drops_timings_widget_state_and_live_views_and_keeps_the_static_images():
    nb = job.clean_outputs(executed_notebook())
    assert "widgets" not in nb.metadata
    slider, fig = nb.cells[1], nb.cells[2]
    assert slider.metadata == {"tags": ["a"]}
    assert [o["data"] for o in slider.outputs] == [{"image/png": "iVBORw0KGgo="}]
    assert [o.output_type for o in fig.outputs] == ["execute_result", "stream"]
    nbformat.validate(nb)


def test_the_committed_text_holds_no_path_of_the_repository_and_ends_with_a_newline():
    text = job.notebook_text(job.clean_outputs(executed_notebook()), "x.ipynb")
    assert str(job.REPO) not in text and "figures in figures/x.png" in text
    assert text.endswith("}\n")
    assert nbformat.reads(text, as_version=4).cells[2].outputs[1]["text"] == "figures in figures/x.png\n"


def test_a_notebook_too_large_to_commit_is_refused_with_its_name(monkeypatch):
    monkeypatch.setattr(job, "MAX_NOTEBOOK_BYTES", 100)
    with pytest.raises(NotebookError, match=r"x\.ipynb would be .* MB with its outputs"):
        job.notebook_text(executed_notebook(), "x.ipynb")


def test_a_path_of_the_home_folder_is_refused(monkeypatch, tmp_path):
    monkeypatch.setattr(job.Path, "home", classmethod(lambda cls: tmp_path))
    nb = executed_notebook()
    nb.cells[2].outputs[1]["text"] = f"read {tmp_path}/data\n"
    with pytest.raises(NotebookError, match="path of the home folder"):
        job.notebook_text(nb, "x.ipynb")


def test_a_failing_notebook_leaves_the_committed_copy_alone_and_saves_where_it_failed(tmp_path, monkeypatch):
    monkeypatch.setattr(job, "FAILED_DIR", tmp_path / "failed")
    path = tmp_path / "09_fails.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("1 / 0")],
                                metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                         "language": "python"}}), path)
    before = path.read_bytes()
    with pytest.raises(NotebookError, match=r"(?s)09_fails\.ipynb failed .*ZeroDivisionError"):
        job.run_notebook(path, job.notebook_env(job.notebook_settings(True, tmp_path, tmp_path, {})), tmp_path / "out")
    assert path.read_bytes() == before and not (tmp_path / "out").exists()
    failed = nbformat.read(tmp_path / "failed" / path.name, as_version=4)
    assert failed.cells[0].outputs[0].output_type == "error"


@pytest.mark.parametrize("folder", [FIGURES_DIR, FIGURES_DIR / "sub", job.NOTEBOOKS_DIR, job.REPO])
def test_a_quick_run_into_the_committed_folders_is_refused_before_any_work(folder):
    with pytest.raises(ConfigError, match="a quick run would overwrite committed results"):
        job.run_report(quick=True, figures_dir=folder, log=pytest.fail)
    job.check_output_folder(False, FIGURES_DIR)


def test_the_report_goes_beside_the_committed_notebooks_only_from_a_full_run_into_figures(tmp_path):
    assert job.report_path(False, FIGURES_DIR) == job.REPO / "REPORT.md"
    assert job.report_path(True, tmp_path) == tmp_path / "REPORT.md"


def test_a_sibling_folder_whose_name_starts_with_the_repositorys_is_left_alone():
    nb = executed_notebook()
    nb.cells[2].outputs[1]["text"] = f"{job.REPO}2/data and {job.REPO}\n"
    assert job.notebook_text(nb, "x.ipynb").count(f"{job.REPO}2/data and .") == 1


def test_a_notebook_refused_after_running_is_kept_where_it_can_be_read(tmp_path, monkeypatch):
    monkeypatch.setattr(job, "FAILED_DIR", tmp_path / "failed")
    monkeypatch.setattr(job, "MAX_NOTEBOOK_BYTES", 10)
    path = tmp_path / "09_big.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("print('x' * 100)")],
                                metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                         "language": "python"}}), path)
    with pytest.raises(NotebookError, match=r"09_big\.ipynb would be .* \(executed copy: "):
        job.run_notebook(path, job.notebook_env(job.notebook_settings(True, tmp_path, tmp_path, {})), tmp_path / "out")
    assert (tmp_path / "failed" / path.name).is_file() and not (tmp_path / "out").exists()
