"""The main job: run every notebook headless, then gather the results summary.

    python -m helpers.report            # full mode: notebooks/, figures/, REPORT.md, the README's headline
    python -m helpers.report --quick    # NB_QUICK=1: small runs; all of it in results/quick/
    python -m helpers.report --quick 01_gradient_check    # one notebook

Each notebook runs top to bottom on a fresh kernel, in its own folder, as it
would in JupyterLab (nbclient, with the "python3" kernel of this Python's
environment, which imports helpers as installed there: `make` installs this
folder with pip install -e). The notebooks read their settings from the
environment (helpers.report.settings): NB_QUICK, NB_FIGURES_DIR (where
figures and rows go), NB_CACHE_DIR (the cache of finished runs,
results/cache/ unless told) and NB_SCHEDULER (a Dask cluster to train the
runs on, instead of worker processes beside the kernel). Finished runs are
recalled from the cache; delete it to train everything again.

In full mode, each executed notebook is written back into notebooks/, with
its outputs, so that a reader sees every figure, table and paragraph without
running anything (on a code host, in nbviewer, or in JupyterLab before a kernel
starts). The outputs are cleaned first (clean_outputs): no execution
timestamps, no widget state, no live-widget views (a slider shows the static
image of its figure instead), no absolute paths; so a re-run with a warm cache
and unchanged code rewrites every notebook byte for byte. Quick runs, and runs
whose figures go elsewhere, write their executed copies to <figures>/notebooks/.
A failing cell stops the job with the notebook's name and the error; the copy
executed up to that cell goes to results/failed/, and the committed notebook
is left as it was.
"""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from traitlets.config import Config

from . import summary, writeup
from .cache import DEFAULT_CACHE_DIR
from .settings import FIGURES_DIR, REPO, notebook_settings
from ..core.data import find_batches_dir
from ..errors import ConfigError, NotebookError, OutputError
from ..files import check_writable_file, check_writable_folder, shown_path, write_atomically
from ..pool import check_scheduler

PACKAGE_DIR = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = REPO / "notebooks"
FAILED_DIR = REPO / "results" / "failed"
"""Where a notebook that failed is saved, executed up to its failing cell."""
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
MAX_NOTEBOOK_BYTES = 3_000_000
"""A committed notebook larger than this is refused: it would be slow to open on a code host."""
CELL_TIMEOUT = 3600
"""Seconds a cell may run before the job gives up on it (the lambda search takes minutes)."""
KERNEL_CONFIG = Config({"KernelManager": {"transport_encryption": "required"}})
"""The kernel's sockets are encrypted with keys its manager makes (CurveZMQ). Over
plain TCP, ipykernel warns at every start that other processes of this machine
could read the traffic."""


def notebook_paths(folder=NOTEBOOKS_DIR):
    """The numbered notebooks, in order: 01_*.ipynb, 02_*.ipynb, ..."""
    return sorted(Path(folder).glob("[0-9][0-9]_*.ipynb"))


def find_notebook(name):
    """The notebook a command line names: a path, or a notebook of notebooks/ with or without .ipynb."""
    for path in (Path(name), NOTEBOOKS_DIR / name, NOTEBOOKS_DIR / f"{name}.ipynb"):
        if path.is_file():
            if path.suffix != ".ipynb":
                raise NotebookError(f"{name} is not an .ipynb file: give a notebook, such as 01_gradient_check.")
            return path
    raise NotebookError(f"There is no notebook {name}: give a path, or one of "
                        f"{', '.join(p.stem for p in notebook_paths())}")


def notebook_env(settings):
    """The environment of a headless kernel: the parent's, plus the notebooks' settings.

    Progress bars are turned off: in a saved notebook they are only noise.
    """
    return {**os.environ, **settings.environ(), "TQDM_DISABLE": "1"}


def check_kernels_import_this_package(env, cwd=NOTEBOOKS_DIR):
    """Refuse to run if the kernels would import another copy of helpers than this job's.

    A kernel (this Python, as the "python3" kernel) imports helpers as
    installed in its environment. A venv shared by two checkouts has one of
    them installed, and the other's notebooks would run its code without a word.
    """
    found = subprocess.run([sys.executable, "-c", "import helpers; print(helpers.__path__[0])"],
                           cwd=cwd, env=env, capture_output=True, text=True)
    install = (f"use the venv of {REPO} (`make report` makes it), or install this folder into this one: "
               f"`{sys.executable} -m pip install -e {REPO}`")
    if found.returncode != 0:
        error = (found.stderr.strip().splitlines() or [f"exit code {found.returncode}"])[-1]
        raise NotebookError(f"The notebooks' kernels cannot import helpers ({error}): {install}")
    imported = Path(found.stdout.strip()).resolve()
    if imported != PACKAGE_DIR:
        raise NotebookError(f"The notebooks' kernels would import helpers from {imported}, not {PACKAGE_DIR} "
                            f"as this job does: {install}")


def executed_folder(quick, figures_dir):
    """Where the executed notebooks go: back into notebooks/ when the figures go to figures/ in full mode.

    Only then do the outputs belong beside the committed figures; a quick
    run, or a run into another folder, keeps its copies in <figures_dir>/notebooks/.
    """
    figures_dir = Path(figures_dir).resolve()
    return NOTEBOOKS_DIR if not quick and figures_dir == FIGURES_DIR.resolve() else figures_dir / "notebooks"


def check_output_folder(quick, figures_dir):
    """Refuse, before any work, a quick run whose results would land among the committed ones.

    Quick runs are not comparable with the report: their figures, notebooks
    and REPORT.md stay out of figures/, notebooks/ and the repository's root.
    """
    folder = Path(figures_dir).resolve()
    committed = [FIGURES_DIR.resolve(), NOTEBOOKS_DIR.resolve()]
    if quick and (folder == REPO or any(folder == c or folder.is_relative_to(c) for c in committed)):
        raise ConfigError(f"--figures-dir {shown_path(folder)}: a quick run would overwrite committed results there; "
                          "give another folder (the default is results/quick/).")


def report_path(quick, figures_dir):
    """Where REPORT.md goes: the repository's, beside the committed notebooks, or <figures_dir>/REPORT.md."""
    if executed_folder(quick, figures_dir) == NOTEBOOKS_DIR:
        return REPO / "REPORT.md"
    return Path(figures_dir) / "REPORT.md"


def run_notebook(path, env, executed_dir):
    """Execute the notebook at path on a fresh kernel; save the cleaned, executed copy in executed_dir; return it.

    Raises NotebookError, naming the notebook, if a cell fails; the copy,
    saved up to the failing cell in FAILED_DIR, shows where.
    """
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, kernel_name="python3", timeout=CELL_TIMEOUT, config=KERNEL_CONFIG,
                            record_timing=False, store_widget_state=False,
                            resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute(env=env)
    except CellExecutionError as err:
        write_atomically(FAILED_DIR / path.name, nbformat.writes(nb).encode())
        raise NotebookError(f"{path.name} failed (executed copy: {shown_path(FAILED_DIR / path.name)}):\n{err}") from err
    try:
        text = notebook_text(clean_outputs(nb), path.name)
    except NotebookError as err:
        write_atomically(FAILED_DIR / path.name, nbformat.writes(nb).encode())
        raise NotebookError(f"{err} (executed copy: {shown_path(FAILED_DIR / path.name)})") from err
    write_atomically(Path(executed_dir) / path.name, text.encode())
    return nb


def clean_outputs(nb):
    """nb with its outputs made fit to commit, in place; returns nb.

    A live widget's view needs a running kernel: opened without one it shows
    an error, so the view is dropped, and what the widget put beside it (a
    slider's static image of its figure) stays.
    """
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.metadata.pop("execution", None)
        kept = []
        for output in cell.outputs:
            data = output.get("data", {})
            if WIDGET_VIEW in data:
                del data[WIDGET_VIEW]
                data.pop("text/plain", None)
                if not data:
                    continue
            kept.append(output)
        cell.outputs = kept
    return nb


def notebook_text(nb, name):
    """The notebook as committed: nbformat's JSON with the repository's absolute path taken out.

    Raises NotebookError if the text is still larger than MAX_NOTEBOOK_BYTES
    or holds another absolute path of this computer (the home folder).
    """
    # The repository's path, but not a longer name that starts with it (a sibling folder such as main2).
    text = re.sub(re.escape(str(REPO)) + r"(/|(?![\w.-]))", lambda m: "" if m.group(1) else ".", nbformat.writes(nb))
    if str(Path.home()) != "/" and re.search(re.escape(str(Path.home())) + r"\b", text):
        raise NotebookError(f"{name} would be saved with a path of the home folder {Path.home()} in its outputs: "
                            "print paths relative to the repository.")
    if len(text.encode()) > MAX_NOTEBOOK_BYTES:
        raise NotebookError(f"{name} would be {len(text.encode()) / 1e6:.1f} MB with its outputs, more than "
                            f"{MAX_NOTEBOOK_BYTES / 1e6:.0f} MB: show fewer or smaller figures.")
    return text if text.endswith("\n") else text + "\n"


def format_seconds(seconds):
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{seconds:.0f} s"


def run_report(quick=False, figures_dir=None, cache_dir=DEFAULT_CACHE_DIR, readme=None,
               notebooks=None, executed_dir=None, log=print, scheduler=None):
    """Run the notebooks; write <figures_dir>/summary.md and REPORT.md (report_path); put the headline into readme if given.

    figures_dir: figures/ in full mode, results/quick/ in quick mode unless
    given. notebooks: paths, by default every numbered notebook.
    executed_dir: where the executed notebooks go, by default executed_folder().
    scheduler: a Dask scheduler's address, "tcp://HOST:PORT", whose cluster
    trains the notebooks' runs (its workers read the data from the path the
    notebooks load it from); None trains them beside each kernel.
    Returns the text of summary.md.
    """
    settings = notebook_settings(quick, figures_dir, cache_dir, environ={}, scheduler=scheduler)
    figures_dir = settings.figures
    check_output_folder(quick, figures_dir)
    executed_dir = executed_folder(quick, figures_dir) if executed_dir is None else Path(executed_dir)
    env = notebook_env(settings)
    check_kernels_import_this_package(env)
    check_scheduler(scheduler)
    paths = notebook_paths() if notebooks is None else [Path(p) for p in notebooks]
    writeup.save_data_source(figures_dir, find_batches_dir())
    seconds = {}
    for path in paths:
        log(f"running {path.name} ...")
        start = time.perf_counter()
        run_notebook(path, env, executed_dir)
        seconds[path.stem] = time.perf_counter() - start
        log(f"  {path.name}: {format_seconds(seconds[path.stem])}")
    # Rows left by earlier runs of the other notebooks still count.
    names = [p.stem for p in notebook_paths()]
    text = writeup.summary_markdown(figures_dir, names, quick)
    write_atomically(figures_dir / "summary.md", text.encode())
    report = report_path(quick, figures_dir)
    writeup.write_report(figures_dir, report, quick)
    if readme is not None:
        readme = Path(readme)
        headline = writeup.headline_markdown(figures_dir, quick)
        write_atomically(readme, summary.replace_readme_block(readme.read_text(), headline).encode())
    log(f"summary in {figures_dir / 'summary.md'}, the report in {report}; "
        f"total {format_seconds(sum(seconds.values()))}")
    return text


def run_command(quick, figures_dir, cache_dir, no_readme, names, scheduler):
    """`python -m helpers report`: every folder and file it will write checked first, then run_report.

    names: the notebooks asked for (see find_notebook), or none for all.
    The README is rewritten only by a full run into figures/ (not with
    no_readme), as its headline links REPORT.md.
    """
    settings = notebook_settings(quick, figures_dir, cache_dir, environ={}, scheduler=scheduler)
    check_output_folder(quick, settings.figures)
    writes_back = executed_folder(quick, settings.figures) == NOTEBOOKS_DIR
    readme = REPO / "README.md" if writes_back and not no_readme else None
    notebooks = [find_notebook(name) for name in names] or None
    check_writable_folder(settings.figures, "--figures-dir")
    check_writable_folder(settings.cache, "--cache-dir")
    check_writable_folder(executed_folder(quick, settings.figures), "the executed notebooks' folder")
    if readme is not None:
        check_writable_file(readme, "README.md (--no-readme leaves it alone)")
    find_batches_dir()  # every notebook reads CIFAR-10: say now, not in the first notebook, if it is missing
    check_scheduler(scheduler)
    try:
        run_report(quick, settings.figures, settings.cache, readme, notebooks, scheduler=settings.scheduler)
    except OSError as err:
        raise OutputError(f"the main job stopped: {err}. Fix the cause (a full disk?) and run it again:"
                          " the cache recalls every run already finished.") from err
