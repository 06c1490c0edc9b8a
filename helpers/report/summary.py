"""The report's numbers beside ours: one table per notebook, and the summary of them all.

REPORT lists every number the 2019 report gives. Each notebook ends with
`compare(notebook, ours, folder)`, which shows the report's number, ours and
the difference for the numbers it measured, and writes them to
<folder>/<notebook>.rows.json. The main job (helpers.report) then gathers
those files into one table, summary.md, in which a number the report gives
but no notebook measured still has its row, marked "not run".
"""

import json
import re
from dataclasses import dataclass
from pathlib import Path

from ..files import write_atomically
from .tables import Table


@dataclass(frozen=True)
class Claim:
    """A number the report gives.

    unit: "%" (an accuracy, given in percent), "s" (seconds), "" (a plain
    number, such as lambda) or "text" (a statement that is not one number).
    """

    key: str
    experiment: str
    quantity: str
    value: float | str
    unit: str


GRADCHECK = "gradient check, 3072 features, 100 images, forward differences"
REPORT = (
    Claim("gradcheck/forward_errors", GRADCHECK, "relative errors of W and gamma", "1e-5 to 5e-4", "text"),
    Claim("gradcheck/forward_seconds", GRADCHECK, "time", 480.0, "s"),
    Claim("three_layer/no_bn", "3-layer [50, 50], no BN", "test accuracy", 53.37, "%"),
    Claim("three_layer/bn", "3-layer [50, 50], BN", "test accuracy", 49.71, "%"),
    Claim("nine_layer/no_bn", "9-layer, no BN", "test accuracy", 45.92, "%"),
    Claim("nine_layer/bn", "9-layer, BN", "test accuracy", 49.77, "%"),
    Claim("lambda/stage_1", "lambda search, stage 1 (coarse)", "best validation accuracy", 50.17, "%"),
    Claim("lambda/stage_2", "lambda search, stage 2", "best validation accuracy", 50.49, "%"),
    Claim("lambda/stage_3", "lambda search, stage 3", "best validation accuracy", 50.81, "%"),
    Claim("lambda/best", "lambda search, all stages", "best lambda", 0.000715, ""),
    Claim("lambda/final", "best lambda, 3 cycles", "test accuracy", 50.37, "%"),
    Claim("sigma/1e-1/no_bn", "sigma 1e-1, no BN", "test accuracy", 52.60, "%"),
    Claim("sigma/1e-1/bn", "sigma 1e-1, BN", "test accuracy", 51.66, "%"),
    Claim("sigma/1e-3/no_bn", "sigma 1e-3, no BN", "test accuracy", 10.00, "%"),
    Claim("sigma/1e-3/bn", "sigma 1e-3, BN", "test accuracy", 50.63, "%"),
    Claim("sigma/1e-4/no_bn", "sigma 1e-4, no BN", "test accuracy", 10.00, "%"),
    Claim("sigma/1e-4/bn", "sigma 1e-4, BN", "test accuracy", 48.03, "%"),
)
CLAIMS = {claim.key: claim for claim in REPORT}
HEADER = ["experiment", "quantity", "report", "ours", "difference"]
ROWS_SUFFIX = ".rows.json"


def format_value(value, unit):
    """A number as the tables show it. Accuracies come as fractions (0.5337 -> "53.37 %")."""
    if unit == "%":
        return f"{100 * value:.2f} %"
    if unit == "s":
        return f"{value:.1f} s" if value < 60 else f"{value / 60:.1f} min"
    if unit == "":
        return f"{value:.3g}"
    return str(value)


def difference(claim, ours):
    """Ours against the report's: in percentage points for accuracies, as a ratio otherwise."""
    if claim.unit == "%":
        return f"{100 * ours - claim.value:+.2f} pp"
    if claim.unit in ("s", ""):
        return f"x {ours / claim.value:.3g}"
    return "-"


def report_value(claim):
    """The report's number, formatted like ours (the report gives accuracies in percent)."""
    return format_value(claim.value / 100 if claim.unit == "%" else claim.value, claim.unit)


def row(claim, ours):
    """One row of HEADER: the report's number beside ours (None: not measured)."""
    if ours is None:
        return [claim.experiment, claim.quantity, report_value(claim), "not run", "-"]
    return [claim.experiment, claim.quantity, report_value(claim), format_value(ours, claim.unit),
            difference(claim, ours)]


def compare(notebook, ours, folder=None):
    """The table of the report's numbers against ours, written to folder if given.

    ours: {claim key: our value}, accuracies as fractions, times in seconds,
    relative-error ranges as text. Returns a Table.
    """
    unknown = set(ours) - set(CLAIMS)
    if unknown:
        raise KeyError(f"The report gives no number for {sorted(unknown)}; known: {sorted(CLAIMS)}.")
    rows = [row(CLAIMS[key], value) for key, value in ours.items()]
    if folder is not None:
        record = {"notebook": notebook, "ours": ours, "rows": rows}
        write_atomically(Path(folder) / f"{notebook}{ROWS_SUFFIX}", json.dumps(record, indent=1).encode())
    return Table(HEADER, rows)


def gather(folder, notebooks):
    """Every claim of REPORT with our value, from the rows the notebooks wrote to folder.

    notebooks: names in the order their rows should appear. Returns a Table
    with a notebook column; claims no notebook measured come last, "not run".
    """
    rows, seen = [], set()
    for notebook in notebooks:
        path = Path(folder) / f"{notebook}{ROWS_SUFFIX}"
        if not path.is_file():
            continue
        record = json.loads(path.read_text())
        for key, value in record["ours"].items():
            rows.append([notebook, *row(CLAIMS[key], value)])
            seen.add(key)
    rows += [["-", *row(claim, None)] for claim in REPORT if claim.key not in seen]
    return Table(["notebook", *HEADER], rows)


def accuracy_table(runs):
    """Our runs side by side: test accuracy of the final model and of the snapshot ensemble, and more.

    runs: {label: summary of helpers.experiments.run_experiment}.
    """
    rows = []
    for label, run in runs.items():
        ensemble = run["ensemble_test_accuracy"]
        rows.append([
            label,
            format_value(run["test_accuracy"], "%"),
            "-" if ensemble is None else f"{format_value(ensemble, '%')} ({run['snapshots']} snapshots)",
            format_value(run["val_accuracy"], "%"),
            f"{run['steps']:,}",
            f"{run['n_train']:,}",
            f"{run['train_seconds']:.1f} s",
        ])
    header = ["run", "test accuracy", "ensemble", "validation accuracy", "update steps", "training images",
              "training time"]
    return Table(header, rows)


def search_table(search):
    """The stages of a lambda search: where each drew lambda, and its best run.

    search: the summary of helpers.search.run_search.
    """
    rows = []
    for stage in search["stages"]:
        low, high = stage["lam_range"]
        best = stage["best"]
        rows.append([
            stage["stage"],
            f"[{low:.2e}, {high:.2e}]",
            len(stage["lams"]),
            f"{best['lam']:.3g}",
            format_value(best["val_accuracy"], "%"),
            format_value(best["test_accuracy"], "%"),
        ])
    header = ["stage", "lambda drawn from", "runs", "best lambda", "its validation accuracy", "its test accuracy"]
    return Table(header, rows)


README_BEGIN = "<!-- results summary: written by python -m helpers.report -->"
README_END = "<!-- end of results summary -->"


def replace_readme_block(readme, text):
    """readme with the text between README_BEGIN and README_END replaced by text.

    Raises ValueError if the markers are not there (once each, in order):
    the README is then left for a person to fix.
    """
    pattern = re.compile(re.escape(README_BEGIN) + r"\n.*?" + re.escape(README_END), re.DOTALL)
    if len(pattern.findall(readme)) != 1:
        raise ValueError(f"The README must hold the lines {README_BEGIN!r} and {README_END!r} once, in this order.")
    return pattern.sub(lambda _: f"{README_BEGIN}\n{text.rstrip()}\n{README_END}", readme)


SIGMAS = {1e-1: "1e-1", 1e-3: "1e-3", 1e-4: "1e-4"}
"""The report's initial sigmas, and how its claim keys spell them."""


def sigma_key(sigma, batch_norm):
    """The claim key of a sensitivity run: sigma_key(1e-3, True) -> "sigma/1e-3/bn"."""
    return f"sigma/{SIGMAS[sigma]}/{'bn' if batch_norm else 'no_bn'}"


def sensitivity_conclusion(test_accuracy, chance=0.10):
    """The report's conclusion on the initial sigma, statement by statement, against our runs.

    test_accuracy: {(sigma, batch_norm): test accuracy as a fraction} for
    every sigma of SIGMAS. A run stays at chance if it is within 2 points of
    it, and learns if it reaches 40 %.
    """
    def at_chance(*runs):
        return all(test_accuracy[run] <= chance + 0.02 for run in runs)

    def learns(*runs):
        return all(test_accuracy[run] >= 0.40 for run in runs)

    def cells(*runs):
        report = ", ".join(report_value(CLAIMS[sigma_key(*run)]) for run in runs)
        return report, ", ".join(format_value(test_accuracy[run], "%") for run in runs)

    small_no_bn = ((1e-3, False), (1e-4, False))
    all_bn = tuple((sigma, True) for sigma in SIGMAS)
    large = ((1e-1, False), (1e-1, True))
    statements = [
        ("Without BN, sigma 1e-3 and 1e-4 stay at chance (10 %).", *cells(*small_no_bn), at_chance(*small_no_bn)),
        ("With BN, every sigma learns.", *cells(*all_bn), learns(*all_bn)),
        ("With sigma 1e-1 both learn, and BN gains nothing (within 1 point).", *cells(*large),
         learns(*large) and test_accuracy[1e-1, True] <= test_accuracy[1e-1, False] + 0.01),
    ]
    rows = [[text, report, ours, "yes" if holds else "no"] for text, report, ours, holds in statements]
    return Table(["the report's conclusion", "report", "ours", "holds for ours"], rows)
