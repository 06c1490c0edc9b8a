"""The notebooks: committed clean, paired with their py:percent twins, and running in quick mode.

The quick run executes every notebook once, as the main job does
(helpers.report.job, NB_QUICK=1), into temporary folders: a fresh cache, so that
every run is really trained, and no committed figure is touched.
"""

import ast
import json
import re
import shutil

import jupytext
import nbformat
import pytest
from traitlets.config import Config

from helpers.report import job, summary, writeup
from helpers.report.settings import notebook_settings

NOTEBOOKS = job.notebook_paths()
FIGURES = {
    "00_batch_norm_layer": ["00_batch_norm_running_averages"],
    "01_gradient_check": ["01_gradient_check"],
    "02_three_layer": ["02_three_layer_curves"],
    "03_nine_layer": ["03_nine_layer_curves"],
    "04_lambda_search": ["04_lambda_search", "04_lambda_search_averaged", "04_final_model_curves"],
    "05_init_sensitivity": ["05_init_sensitivity"],
    "06_beyond_the_report": ["06_best_model_curves", "06_rules"],
    "07_inside_batch_norm": ["07_weight_scale_sweep", "07_batch_size", "07_first_layer_weights",
                             "07_confusion_matrix", "07_confident_mistakes", "07_activation_std",
                             "07_gradient_norm", "07_nine_layer_activation_std", "07_nine_layer_gradient_norm",
                             "07_histograms"],
}
COMPARED = [notebook for notebook in FIGURES
            if notebook not in ("00_batch_norm_layer", "06_beyond_the_report", "07_inside_batch_norm")]
"""The notebooks that end with the report's numbers beside ours (the report gives none for the layer alone,
for the bonus exercise, nor for what happens inside the network)."""
WIDGET = "application/vnd.jupyter.widget-view+json"
SLIDERS = ["04_lambda_search", "05_init_sensitivity", "07_inside_batch_norm"]
CLOSED = [notebook for notebook in FIGURES if notebook not in ("00_batch_norm_layer", "01_gradient_check")]
"""The notebooks that end with a paragraph on what they found, written from their own numbers."""


def cells(notebook):
    """What a reader sees of each cell: its type, its source, and its tags."""
    return [(c.cell_type, c.source.strip(), c.metadata.get("tags", [])) for c in notebook.cells]


def test_there_are_the_eight_notebooks():
    assert [p.stem for p in NOTEBOOKS] == list(FIGURES)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_notebook_agrees_with_its_py_percent_twin(path):
    twin = path.with_suffix(".py")
    assert twin.is_file(), f"{twin.name} is missing: run `jupytext --sync {path}`"
    assert twin.read_text().startswith("# ---\n# jupyter:\n#   jupytext:")
    notebook, script = jupytext.read(path), jupytext.read(twin)
    assert cells(script) == cells(notebook), f"{path.name} and {twin.name} differ: run `jupytext --sync {path}`"
    assert notebook.metadata["jupytext"]["formats"] == "ipynb,py:percent"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_notebook_is_committed_clean(path):
    """What the main job keeps of an executed notebook: no errors, timings, widget state or live views, no paths."""
    text = path.read_text()
    notebook = nbformat.reads(text, as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata["kernelspec"]["name"] == "python3" and "widgets" not in notebook.metadata
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert "execution" not in cell.metadata
            assert not [o for o in cell.outputs if o.output_type == "error" or WIDGET in o.get("data", {})]
    assert str(job.REPO) not in text and len(text.encode()) <= job.MAX_NOTEBOOK_BYTES


def check_it_shows_its_results(name, notebook):
    """No error; each figure (and a slider's static image) shown; the report's numbers and the closing paragraph."""
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    sliders = name in SLIDERS
    assert sum("image/png" in o.get("data", {}) for o in outputs) == len(FIGURES[name]) + sliders
    markdown = [o["data"]["text/markdown"] for o in outputs if "text/markdown" in o.get("data", {})]
    if name in COMPARED:
        assert any("| report | ours | difference |" in text for text in markdown)
    if name in CLOSED:
        assert markdown[-1].startswith("**What this notebook found.**")
    return outputs


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_notebook_is_committed_with_the_outputs_of_a_full_run(path):
    """Read without a kernel, every cell has run, and every figure, table and paragraph shows."""
    notebook = nbformat.read(path, as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    outputs = check_it_shows_its_results(path.stem, notebook)
    text = "".join(o.get("text", "") + o.get("data", {}).get("text/markdown", "") for o in outputs)
    assert "NB_QUICK=1" not in text and "quick mode" not in text.lower()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_notebook_has_one_parameters_cell_first_and_resolves_it_next(path):
    """Plain assignments of literals, which papermill-style tools can override; the next cell resolves them."""
    notebook = nbformat.read(path, as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0] is code[0]
    statements = ast.parse(tagged[0].source).body
    assert all(isinstance(s, ast.Assign) and len(s.targets) == 1 and isinstance(s.targets[0], ast.Name)
               for s in statements), "the parameters cell holds only assignments NAME = literal"
    parameters = {s.targets[0].id: ast.literal_eval(s.value) for s in statements}
    assert "QUICK" in parameters and "FIGURES" in parameters
    given = ", ".join(f"{name.lower()}={name}" for name in parameters)
    assert f"settings = notebook_settings({given})" in code[1].source
    assert notebook.cells[0].cell_type == "markdown" and notebook.cells[0].source.startswith("# ")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_notebook_imports_the_installed_package_not_a_path(path):
    notebook = nbformat.read(path, as_version=4)
    assert not [c for c in notebook.cells if "sys.path" in c.source]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """Every notebook run once in quick mode by the main job, into temporary folders."""
    root = tmp_path_factory.mktemp("quick")
    readme = root / "README.md"
    shutil.copy(job.REPO / "README.md", readme)
    text = job.run_report(quick=True, figures_dir=root / "figures", cache_dir=root / "cache", readme=readme,
                             executed_dir=root / "executed", log=lambda message: None)
    return root, text


def test_the_quick_run_fills_every_row_of_the_summary(quick_run):
    root, text = quick_run
    assert (root / "figures" / "summary.md").read_text() == text
    assert "not run" not in text
    for claim in summary.REPORT:
        assert f"| {claim.experiment} | {claim.quantity} |" in text
    assert "NB_QUICK=1" in text


@pytest.mark.parametrize("notebook", FIGURES)
def test_the_quick_run_exports_each_figure_as_png_and_pdf(quick_run, notebook):
    root, _ = quick_run
    for name in FIGURES[notebook]:
        assert (root / "figures" / f"{name}.png").read_bytes().startswith(b"\x89PNG")
        assert (root / "figures" / f"{name}.pdf").read_bytes().startswith(b"%PDF")


@pytest.mark.parametrize("notebook", FIGURES)
def test_each_executed_notebook_shows_its_figures_tables_and_closing_paragraph(quick_run, notebook):
    root, _ = quick_run
    check_it_shows_its_results(notebook, nbformat.read(root / "executed" / f"{notebook}.ipynb", as_version=4))


@pytest.mark.parametrize("notebook, findings", [("02_three_layer", 1), ("03_nine_layer", 1), ("05_init_sensitivity", 5)])
def test_the_report_conclusions_are_tested_with_a_verdict_each(quick_run, notebook, findings):
    root, _ = quick_run
    executed = nbformat.read(root / "executed" / f"{notebook}.ipynb", as_version=4)
    tables = [o["data"]["text/markdown"] for c in executed.cells if c.cell_type == "code" for o in c.outputs
              if "| the report's conclusion |" in o.get("data", {}).get("text/markdown", "")]
    (table,) = tables
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == findings
    assert all(re.search(r"\| p [=<] [0-9.e-]+ \| (confirmed|contradicted|not confirmed|refuted|not refuted)", row)
               for row in rows)
    assert table.startswith("2 seeds per setting")


def test_the_ablation_has_its_rows_and_the_paragraph_written_from_them(quick_run):
    root, _ = quick_run
    executed = nbformat.read(root / "executed" / "06_beyond_the_report.ipynb", as_version=4)
    outputs = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs]
    (table,) = [o["data"]["text/markdown"] for o in outputs if "| gain over base" in o.get("data", {}).get("text/markdown", "")]
    # header, rule, 18 rows of the ablation, the best model without and with mirror TTA
    assert len([line for line in table.splitlines() if line.startswith("| ")]) == 2 + 18 + 2
    assert "| + label smoothing 0.1 |" in table and "| + layer normalization |" in table
    assert "| + ZCA whitening |" in table
    assert "| best model + mirror TTA |" in table
    (text,) = [o["text"] for o in outputs if o.output_type == "stream" and "The changes added up" in o["text"]]
    assert "points over the base" in text and "On the best model, mirror TTA moves the test accuracy" in text


def test_the_rules_comparison_has_every_rule_and_schedule_and_the_paragraph_written_from_it(quick_run):
    root, _ = quick_run
    executed = nbformat.read(root / "executed" / "06_beyond_the_report.ipynb", as_version=4)
    outputs = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs]
    markdown = [o["data"]["text/markdown"] for o in outputs if "text/markdown" in o.get("data", {})]
    (table,) = [text for text in markdown if "| update rule + schedule |" in text]
    assert len([line for line in table.splitlines() if line.startswith("| ")]) == 2 + 8  # header, rule, 8 rows
    streams = [o["text"] for o in outputs if o.output_type == "stream"]
    (text,) = [text for text in streams if "Each at its own best learning rate" in text]
    assert re.search(r"So the report's (plain SGD with cyclical rates was as good|choice was not the best)", text)


def test_the_inside_notebook_writes_each_conclusion_from_its_tables(quick_run):
    root, _ = quick_run
    executed = nbformat.read(root / "executed" / "07_inside_batch_norm.ipynb", as_version=4)
    outputs = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs]
    tables = [o["data"]["text/markdown"] for o in outputs if "text/markdown" in o.get("data", {})]
    texts = "".join(o["text"] for o in outputs if o.output_type == "stream")
    sweep, batches = tables[:2]
    assert sweep.startswith("Test accuracy, mean ± std over 2 seeds:") and "| 9-layer | no BN |" in sweep
    assert "| 10 | 1,000 |" in batches and "points |" in batches  # 5,000 images, one cycle of 2 epochs
    assert re.search(r"the 3-layer network's mean test accuracy over sigma from 1e-5 to 1 goes from [0-9.]+ %", texts)
    assert re.search(r"changes the BN network's accuracy by [-+][0-9.]+ ± [0-9.]+ points at n_batch 10", texts)
    assert "| LN |" in batches.splitlines()[2]  # the table's header: LN's column beside BN's
    assert re.search(r"At n_batch 10 the LN network reaches [0-9.]+ ± [0-9.]+ % against BN's [0-9.]+ ± [0-9.]+ % "
                     r"\([-+][0-9.]+ points, p [=<] [0-9.e-]+: (a real difference|within the seeds' noise)\)", texts)
    assert re.search(r"So (LN keeps|LN loses|BN loses no accuracy)", texts)
    assert re.search(r"The most frequent mistake: \d+ of the 1000 \w+ images taken for \w+\.", texts)
    assert re.search(r"Without BN, at sigma 1e-3, the hidden layers' outputs have standard deviations "
                     r"[0-9.e+-]+, [0-9.e+-]+ at step 0", texts)
    assert "| 9-layer, He, BN |" in tables[2]


@pytest.mark.parametrize("notebook", SLIDERS)
def test_each_slider_is_saved_as_the_static_image_of_its_figure(quick_run, notebook):
    root, _ = quick_run
    executed = nbformat.read(root / "executed" / f"{notebook}.ipynb", as_version=4)
    (slider,) = [c for c in executed.cells if c.cell_type == "code" and "widgets." in c.source]
    assert [list(o["data"]) for o in slider.outputs] == [["image/png"]]


def test_the_quick_run_puts_the_headline_into_the_readme_and_writes_its_report(quick_run):
    root, _ = quick_run
    readme = (root / "README.md").read_text()
    headline = writeup.headline_markdown(root / "figures", quick=True)
    assert f"{summary.README_BEGIN}\n{headline.rstrip()}\n{summary.README_END}" in readme
    original = (job.REPO / "README.md").read_text()
    assert readme.split(summary.README_BEGIN)[0] == original.split(summary.README_BEGIN)[0]
    assert readme.split(summary.README_END)[1] == original.split(summary.README_END)[1]
    report = (root / "figures" / "REPORT.md").read_text()
    assert report == writeup.report_markdown(root / "figures", quick=True, root=root / "figures")
    assert "## Sensitivity to initialization" in report


def test_running_a_notebook_again_recalls_its_runs_from_the_cache(quick_run):
    root, _ = quick_run
    entries = {p: p.stat().st_mtime_ns for p in (root / "cache").glob("*.json")}
    searches = {p: p.stat().st_mtime_ns for p in (root / "cache").glob("lambda-search-*/runs.jsonl")}
    assert entries and searches
    job.run_report(quick=True, figures_dir=root / "figures", cache_dir=root / "cache",
                      notebooks=[job.NOTEBOOKS_DIR / "04_lambda_search.ipynb"],
                      executed_dir=root / "again", log=lambda message: None)
    assert {p: p.stat().st_mtime_ns for p in (root / "cache").glob("*.json")} == entries
    assert {p: p.stat().st_mtime_ns for p in (root / "cache").glob("lambda-search-*/runs.jsonl")} == searches
    rows = json.loads((root / "figures" / "04_lambda_search.rows.json").read_text())
    assert set(rows["ours"]) == {"lambda/stage_1", "lambda/stage_2", "lambda/stage_3", "lambda/best", "lambda/final"}


def test_a_notebook_runs_without_the_kernel_warning_about_plain_tcp(tmp_path, capfd, monkeypatch):
    """ipykernel warns on stderr, at every start, that its sockets are not encrypted; the job encrypts them.

    The kernels inherit the job's stderr, which capfd reads. The same run with
    the kernel manager's default settings shows that the warning is still
    ipykernel's, so that its absence means something.
    """
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("from helpers.report.settings import notebook_settings\n"
                                                "notebook_settings()")]
    path = tmp_path / "01_settings.ipynb"
    nbformat.write(notebook, path)
    env = job.notebook_env(notebook_settings(True, tmp_path / "figures", tmp_path / "cache"))
    executed = job.run_notebook(path, env, tmp_path / "executed")
    assert "NotebookSettings(quick=True" in executed.cells[0].outputs[0]["data"]["text/plain"]
    assert capfd.readouterr().err == ""

    monkeypatch.setattr(job, "KERNEL_CONFIG", Config())
    job.run_notebook(path, env, tmp_path / "executed")
    assert "Kernel is running over TCP without encryption" in capfd.readouterr().err
