"""The report's sequence of gradient checks, with centered and forward differences.

The report built confidence in its gradients step by step: a tiny network on
a few features and images first, where a wrong gradient is cheap to find and
to debug, then larger ones up to the full input. Every case here is checked
with both finite differences, centered (this package's default, error
O(h^2)) and forward (the report's, error O(h)), so the tables show what the
choice of difference costs in precision and in time. A small case can also
be checked one entry at a time, the textbook way, to show that the fast
check computes the same numbers.
"""

from dataclasses import asdict, dataclass

import numpy as np

from ..core.data import N_CLASSES
from ..core.gradcheck import KINDS, check_gradients, per_layer_rows, split_name
from ..core.network import NORM_LABELS, init_network
from .cache import DEFAULT_CACHE_DIR, PACKAGE, cached_result, code_digest
from .tables import Table

METHODS = ("centered", "forward")


@dataclass(frozen=True)
class Case:
    """One check: the first n images, their first dim features, a network with these hidden widths."""

    n: int
    dim: int
    hidden: tuple
    lam: float
    norm: str = "batch"

    @property
    def title(self):
        norm = NORM_LABELS[self.norm]
        return f"{self.n} images, {self.dim} features, hidden {list(self.hidden)}, {norm}, lambda {self.lam:g}"


def report_cases(n_full=100):
    """The report's four checks, growing step by step; n_full images in the last one."""
    return (
        Case(n=3, dim=10, hidden=(50,), lam=0.0),
        Case(n=10, dim=10, hidden=(50,), lam=0.005),
        Case(n=10, dim=1000, hidden=(50, 50), lam=0.005),
        Case(n=n_full, dim=3072, hidden=(50, 50), lam=0.005),
    )


def run_case(case, X, y, seed=0, methods=METHODS):
    """Check the analytic gradients of case's network with each of methods.

    X: (N, >= dim) images, y: (N,) labels; the first case.n rows and case.dim
    features are used. The network is He-initialized from seed, in float64.
    methods: those of helpers.core.gradcheck.check_gradients, "centered",
    "forward" or "textbook" (centered, one entry at a time).
    Returns {"title", "errors": {method: {parameter: relative error}},
    "seconds": {method: time of the numerical gradients},
    "numerical": {method: {parameter: numerical gradient}}, "unused": names}.

    unused names the parameters the network leaves out, the b of every
    batch-normalized layer (the mean subtraction cancels it): their gradients
    are exactly zero, and their "errors" only compare rounding noise.
    """
    net = init_network([case.dim, *case.hidden, N_CLASSES], case.norm, "he", seed, np.float64)
    X, y = X[: case.n, : case.dim], y[: case.n]
    errors, seconds, numerical = {}, {}, {}
    for method in methods:
        check = check_gradients(net, X, y, case.lam, method=method)
        errors[method], seconds[method] = check["errors"], check["seconds"]
        numerical[method] = check["numerical"]
    unused = [f"b{l}" for l in range(1, len(case.hidden) + 1) if not net.has_bias(l)]
    return {"title": case.title, "errors": errors, "seconds": seconds, "numerical": numerical,
            "unused": unused}


def cached_checks(cifar, n_full=100, cache_dir=DEFAULT_CACHE_DIR):
    """Notebook 01's checks on cifar's training images, recalled if made before on the same data and code.

    The cases (report_cases(n_full)), the data and the code (the core's and
    this module's) key them (helpers.report.cache.cached_result), so a
    re-run shows the same errors and times instead of measuring them again.
    Returns {"first": the first case, "textbook" beside "centered", with
    its "largest_difference" (largest_difference); "cases": every case,
    centered beside forward}, each a run_case result without its numerical
    gradients, as JSON gives it back.
    """
    cases = report_cases(n_full)

    def compute():
        X, y = cifar.train.X, cifar.train.y
        first = run_case(cases[0], X, y, methods=("textbook", "centered"))
        first["largest_difference"] = largest_difference(first)
        return {"first": without_gradients(first), "cases": [without_gradients(run_case(c, X, y)) for c in cases]}

    settings = {"cases": [asdict(case) for case in cases], "checks": code_digest(PACKAGE, ("report/checks.py",))}
    return cached_result("gradient_check", settings, cifar, compute, cache_dir)


def without_gradients(result):
    """A run_case result without its numerical gradients: plain numbers and names, JSON-able."""
    return {key: value for key, value in result.items() if key != "numerical"}


def side_by_side(result):
    """The per-layer table of relative errors, "centered / forward" (run_case's methods) in each cell."""
    errors, seconds = result["errors"], result["seconds"]
    methods = list(errors)
    rows = per_layer_rows(errors[methods[0]], lambda name: _cell(errors, name, result["unused"]))
    caption = (
        f"**{result['title']}**: relative errors, {' / '.join(methods)} differences "
        f"({' / '.join(f'{seconds[method]:.2f} s' for method in methods)})"
    )
    return Table(["layer", *KINDS], rows, caption)


def _cell(errors, name, unused):
    if name in unused:
        return "unused"
    return " / ".join(f"{errors[method][name]:.1e}" for method in errors)


def largest_difference(result, first="textbook", second="centered"):
    """The largest difference between two methods' numerical gradients, over every entry of every parameter.

    result: from run_case with both methods.
    """
    a, b = result["numerical"][first], result["numerical"][second]
    return max(float(np.max(np.abs(a[name] - b[name]))) for name in a)


def error_range(result, method="forward", kinds=("W", "gamma")):
    """(smallest, largest) relative error of the parameters of these kinds."""
    errors = [e for name, e in result["errors"][method].items() if split_name(name)[0] in kinds]
    return min(errors), max(errors)
