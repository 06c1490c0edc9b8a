"""The settings every notebook shares: quick mode, where figures go, where finished runs are kept, where runs train.

A notebook's cell tagged "parameters" assigns them plainly, None meaning "not
given", so that a tool like papermill can override them; its next cell calls
notebook_settings, which fills in what was not given from the environment,
then from the defaults:

    quick     NB_QUICK (1 or 0)   small, fast runs, as in CI; default: no
    figures   NB_FIGURES_DIR      figures and comparison rows; default: figures/, or results/quick/ when quick
    cache     NB_CACHE_DIR        finished runs; default: results/cache/
    scheduler NB_SCHEDULER        a Dask scheduler, tcp://HOST:PORT, whose cluster trains the runs;
                                  default: worker processes of the kernel's computer (helpers.pool)

The main job (helpers.report.job) sets the four variables for its kernels
with NotebookSettings.environ().
"""

import os
from dataclasses import dataclass
from pathlib import Path

from .cache import DEFAULT_CACHE_DIR

REPO = Path(__file__).resolve().parents[2]
FIGURES_DIR = REPO / "figures"
QUICK_FIGURES_DIR = REPO / "results" / "quick"
"""Quick runs are not comparable with the report, so their figures stay out of figures/."""

TRUE, FALSE = ("1", "true", "yes"), ("", "0", "false", "no")


QUICK_N_TRAIN = 5000
"""Training images of a quick run (a full run has all 45,000)."""
QUICK_N_S = 100
"""Steps per half cycle of a quick run (a full run has five epochs: 2250)."""
SEEDS, QUICK_SEEDS = 5, 2
"""Seeds per setting of the notebooks' tables and claims, in full and in quick mode."""


@dataclass(frozen=True)
class NotebookSettings:
    quick: bool
    figures: Path
    cache: Path
    scheduler: str | None = None

    @property
    def n_train(self):
        """Training images for load_cifar10: QUICK_N_TRAIN in quick mode, else None (all of them)."""
        return QUICK_N_TRAIN if self.quick else None

    @property
    def n_s(self):
        """Steps per half cycle for TrainConfig: QUICK_N_S in quick mode, else None (five epochs)."""
        return QUICK_N_S if self.quick else None

    @property
    def seeds(self):
        """How many seeds each setting trains: SEEDS, or QUICK_SEEDS in quick mode."""
        return QUICK_SEEDS if self.quick else SEEDS

    def environ(self):
        """The environment variables that give these settings to a notebook's kernel."""
        return {"NB_QUICK": "1" if self.quick else "0", "NB_FIGURES_DIR": str(self.figures),
                "NB_CACHE_DIR": str(self.cache), "NB_SCHEDULER": self.scheduler or ""}


def notebook_settings(quick=None, figures=None, cache=None, environ=os.environ, scheduler=None):
    """The settings given, the rest from environ (NB_QUICK, NB_FIGURES_DIR, NB_CACHE_DIR, NB_SCHEDULER) or the defaults.

    Folders are made absolute, relative to the current folder: a kernel runs
    in the notebook's folder, the main job wherever it was started.
    """
    if quick is None:
        quick = parse_flag("NB_QUICK", environ.get("NB_QUICK", ""))
    figures = figures or environ.get("NB_FIGURES_DIR") or (QUICK_FIGURES_DIR if quick else FIGURES_DIR)
    cache = cache or environ.get("NB_CACHE_DIR") or DEFAULT_CACHE_DIR
    scheduler = scheduler or environ.get("NB_SCHEDULER") or None
    return NotebookSettings(bool(quick), Path(figures).absolute(), Path(cache).absolute(), scheduler)


def parse_flag(name, value):
    if value.strip().lower() in TRUE:
        return True
    if value.strip().lower() in FALSE:
        return False
    raise ValueError(f"{name}={value!r}: use 1 (yes) or 0 (no)")
