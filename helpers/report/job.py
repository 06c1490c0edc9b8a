"""The main job: run every notebook headless, then gather the results summary.

    python -m helpers.report            # full mode: figures/, figures/summary.md, the README's table
    python -m helpers.report --quick    # NB_QUICK=1: small runs; figures and summary in results/quick/
    python -m helpers.report --quick 01_gradient_check    # one notebook

Each notebook runs top to bottom on a fresh kernel, in its own folder, as it
would in JupyterLab (nbclient, with the "python3" kernel of this Python's
environment, which imports helpers as installed there: `make` installs this
folder with pip install -e). The notebooks read their settings from the
environment (helpers.report.settings): NB_QUICK, NB_FIGURES_DIR (where
figures and rows go) and NB_CACHE_DIR (the cache of finished runs,
results/cache/ unless told). Finished runs are recalled from the cache;
delete it to train everything again.

The executed copies, with their outputs, are saved to results/notebooks/ to
be read. A failing cell stops the job with the notebook's name and the error.
"""

import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from traitlets.config import Config

from . import summary, verdicts
from .cache import DEFAULT_CACHE_DIR
from .settings import REPO, notebook_settings
from ..core.data import find_batches_dir
from ..errors import NotebookError
from ..files import shown_path, write_atomically

PACKAGE_DIR = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = REPO / "notebooks"
EXECUTED_DIR = REPO / "results" / "notebooks"
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


def run_notebook(path, env, executed_dir=EXECUTED_DIR):
    """Execute the notebook at path on a fresh kernel; save the executed copy; return it.

    Raises NotebookError, naming the notebook, if a cell fails; the copy,
    saved up to the failing cell, shows where.
    """
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, kernel_name="python3", timeout=CELL_TIMEOUT, config=KERNEL_CONFIG,
                            resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute(env=env)
    except CellExecutionError as err:
        raise NotebookError(f"{path.name} failed:\n{err}") from err
    finally:
        write_atomically(Path(executed_dir) / path.name, nbformat.writes(nb).encode())
    return nb


def summary_text(table, findings, seconds, quick):
    """summary.md: how the numbers were made, the table of the report's numbers against ours, and its conclusions tested.

    seconds: {notebook name: wall-clock seconds} of the notebooks just run.
    findings: verdicts.findings_table of the numbers gathered; left out
    when it has no row (no conclusion's two settings ran over seeds).
    """
    if quick:
        command = "`python -m helpers.report --quick` (NB_QUICK=1: small runs, not comparable with the report)"
    else:
        command = "`make report` (`python -m helpers.report`)"
    times = ", ".join(f"{name} {format_seconds(s)}" for name, s in seconds.items())
    return "\n".join([
        f"Made by {command} on `{shown_path(find_batches_dir())}`, {os.cpu_count()} cores,"
        f" Python {platform.python_version()}.",
        f"Wall time {format_seconds(sum(seconds.values()))}: {times}.",
        "",
        table.to_markdown(),
        *(["", "The report's conclusions, tested on our seeds (Welch's t-test):", "", findings.to_markdown()]
          if findings.rows else []),
    ])


def format_seconds(seconds):
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{seconds:.0f} s"


def run_report(quick=False, figures_dir=None, cache_dir=DEFAULT_CACHE_DIR, readme=None,
               notebooks=None, executed_dir=EXECUTED_DIR, log=print):
    """Run the notebooks, write <figures_dir>/summary.md, and put its table into readme if given.

    figures_dir: figures/ in full mode, results/quick/ in quick mode unless
    given. notebooks: paths, by default every numbered notebook.
    Returns the text of summary.md.
    """
    settings = notebook_settings(quick, figures_dir, cache_dir, environ={})
    figures_dir = settings.figures
    env = notebook_env(settings)
    check_kernels_import_this_package(env)
    paths = notebook_paths() if notebooks is None else [Path(p) for p in notebooks]
    seconds = {}
    for path in paths:
        log(f"running {path.name} ...")
        start = time.perf_counter()
        run_notebook(path, env, executed_dir)
        seconds[path.stem] = time.perf_counter() - start
        log(f"  {path.name}: {format_seconds(seconds[path.stem])}")
    # Rows left by earlier runs of the other notebooks still count.
    names = [p.stem for p in notebook_paths()]
    table = summary.gather(figures_dir, names)
    seeded = {key: value for _, key, value in summary.gathered(figures_dir, names) if isinstance(value, list)}
    text = summary_text(table, verdicts.findings_table(seeded), seconds, quick)
    write_atomically(figures_dir / "summary.md", text.encode())
    if readme is not None:
        readme = Path(readme)
        write_atomically(readme, summary.replace_readme_block(readme.read_text(), text).encode())
    log(f"summary in {figures_dir / 'summary.md'}; total {format_seconds(sum(seconds.values()))}")
    return text
