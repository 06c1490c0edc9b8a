"""The report's numbers beside ours: one table per notebook, and the summary of them all.

REPORT lists every number the 2019 report gives. Each notebook ends with
`compare(notebook, ours, folder)`, which shows the report's number, ours and
the difference for the numbers it measured, and writes them to
<folder>/<notebook>.rows.json. Where we trained several seeds, ours is their
mean +- standard deviation, and the table says whether the report's number
lies inside the range of our seeds (the report's is one run of one seed). The main job (helpers.report) then gathers
those files into one table, summary.md, in which a number the report gives
but no notebook measured still has its row, marked "not run".
"""

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..files import write_atomically
from ..search import field_label, neutral_summary, values_label
from ..seeds import seed_runs
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
REPORT_LAMBDA_STAGES = ((-5, -1), (-4, -3), (-4.1, -3.9))
"""The ranges the report's three stages searched lambda in, as log10 exponents: [1e-5, 1e-1],
[1e-4, 1e-3] and [10^-4.1, 10^-3.9] (the report chose the later two by hand; helpers/search.py)."""
HEADER = ["experiment", "quantity", "report", "ours", "difference", "report inside our seeds' range"]
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


def format_spread(values, unit="%"):
    """Several seeds' values as mean +- sample std ("53.21 +- 0.40 %"); a single value as format_value does.

    values: a number, or a list of numbers (accuracies as fractions).
    """
    if not isinstance(values, list):
        return format_value(values, unit)
    if len(values) == 1:
        return format_value(values[0], unit)
    return format_mean_std(float(np.mean(values)), float(np.std(values, ddof=1)), unit)


def format_mean_std(mean, std, unit="%"):
    """"53.21 ± 0.40 %"; a std of None (a single run) leaves the mean alone."""
    if std is None:
        return format_value(mean, unit)
    if unit == "%":
        return f"{100 * mean:.2f} ± {100 * std:.2f} %"
    return f"{format_value(mean, unit)} ± {format_value(std, unit)}"


def difference(claim, ours):
    """Ours (the mean over seeds) against the report's: in percentage points for accuracies, a ratio otherwise."""
    if isinstance(ours, list):
        ours = float(np.mean(ours))
    if claim.unit == "%":
        return f"{100 * ours - claim.value:+.2f} pp"
    if claim.unit in ("s", ""):
        return f"x {ours / claim.value:.3g}"
    return "-"


def inside_range(claim, ours):
    """Whether the report's number lies inside the range (min to max) of our seeds, in words.

    Outside it, how many of our standard deviations it lies from our mean.
    "-" for a single value or a text claim: one run has no spread.
    """
    if not isinstance(ours, list) or len(ours) < 2 or claim.unit == "text":
        return "-"
    theirs = report_number(claim)
    if min(ours) <= theirs <= max(ours):
        return f"yes ({len(ours)} seeds)"
    if min(ours) == max(ours):
        return f"no (all {len(ours)} seeds give {format_value(ours[0], claim.unit)})"
    z = (theirs - float(np.mean(ours))) / float(np.std(ours, ddof=1))
    return f"no: {abs(z):.1f} std {'above' if z > 0 else 'below'} our mean"


def report_number(claim):
    """The report's number on our scale (accuracies as fractions)."""
    return claim.value / 100 if claim.unit == "%" else claim.value


def report_value(claim):
    """The report's number, formatted like ours (the report gives accuracies in percent)."""
    return format_value(report_number(claim), claim.unit)


def row(claim, ours):
    """One row of HEADER: the report's number beside ours (None: not measured; a list: one value per seed)."""
    if ours is None:
        return [claim.experiment, claim.quantity, report_value(claim), "not run", "-", "-"]
    return [claim.experiment, claim.quantity, report_value(claim), format_spread(ours, claim.unit),
            difference(claim, ours), inside_range(claim, ours)]


def compare(notebook, ours, folder=None):
    """The table of the report's numbers against ours, written to folder if given.

    ours: {claim key: our value, or a list of our values, one per seed},
    accuracies as fractions, times in seconds, relative-error ranges as
    text. Returns a Table.
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
    ours = list(gathered(folder, notebooks))
    rows = [[notebook, *row(CLAIMS[key], value)] for notebook, key, value in ours]
    seen = {key for _, key, _ in ours}
    rows += [["-", *row(claim, None)] for claim in REPORT if claim.key not in seen]
    return Table(["notebook", *HEADER], rows)


def gathered(folder, notebooks):
    """(notebook, claim key, our value) for every number the notebooks wrote to folder, in notebook order."""
    for notebook in notebooks:
        path = Path(folder) / f"{notebook}{ROWS_SUFFIX}"
        if path.is_file():
            for key, value in json.loads(path.read_text())["ours"].items():
                yield notebook, key, value


def test_accuracies(runs):
    """The final test accuracy of each seed's run, in seed order: [float]; runs: one summary or a list."""
    return [run["test_accuracy"] for run in seed_runs(runs)]


def plural(n, noun):
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def accuracy_table(runs):
    """Our runs side by side: test accuracy of the final model and of the snapshot ensemble, and more.

    runs: {label: a summary of helpers.experiments.run_experiment, or a list
    of them, one per seed}. Over several seeds, each accuracy is shown as
    mean +- sample std, and the time as the mean per run.
    """
    rows = []
    for label, seeded in runs.items():
        seeded = seed_runs(seeded)
        first = seeded[0]
        ensembles = [run["ensemble_test_accuracy"] for run in seeded]
        rows.append([
            label,
            len(seeded),
            format_spread([run["test_accuracy"] for run in seeded]),
            "-" if None in ensembles else f"{format_spread(ensembles)} ({plural(first['snapshots'], 'snapshot')})",
            format_spread([run["val_accuracy"] for run in seeded]),
            f"{first['steps']:,}",
            f"{first['n_train']:,}",
            f"{np.mean([run['train_seconds'] for run in seeded]):.1f} s",
        ])
    header = ["run", "seeds", "test accuracy", "ensemble", "validation accuracy", "update steps", "training images",
              "training time per run"]
    return Table(header, rows)


def search_table(search):
    """The stages of a search: where each drew the value searched, and its best value.

    search: the summary of helpers.search.run_search, of any age (see
    neutral_summary). With several seeds per value, the best is judged on
    their mean, shown +- their std.
    """
    search = neutral_summary(search)
    seeds = search["config"]["seeds"]
    name, log = field_label(search["param"]), search["scale"] == "log"
    rows = []
    for stage in search["stages"]:
        low, high = stage["range"]
        best = stage["best"]
        rows.append([
            stage["stage"],
            f"[{low:.2e}, {high:.2e}]" if log else f"[{low:.3g}, {high:.3g}]",
            len(stage["values"]),
            seeds,
            f"{best['value']:.3g}",
            format_mean_std(best["val_accuracy"], best.get("val_accuracy_std")),
            format_value(best["test_accuracy"], "%"),
        ])
    header = ["stage", f"{name} drawn from", values_label(search["param"]), "seeds each", f"best {name}",
              "its validation accuracy", "its test accuracy"]
    return Table(header, rows)


def search_comparison(searches):
    """Which value each search of one setting picked, and how far it lies from the first search's pick.

    searches: {label: the summary of helpers.search.run_search, of any age
    (see neutral_summary)}. Two picks are compared by their ratio on a log
    scale (lambda matters on a log scale), by their difference on a linear one.
    """
    searches = {label: neutral_summary(found) for label, found in searches.items()}
    first = next(iter(searches.values()))
    param, log = first["param"], first["scale"] == "log"
    name = field_label(param)
    rows = []
    for label, found in searches.items():
        best, seeds = found["best"], found["config"]["seeds"]
        if log:
            ratio = best["value"] / first["best"]["value"]
            against = "same" if ratio == 1 else f"x {ratio:.3g}"
        else:
            difference = best["value"] - first["best"]["value"]
            against = "same" if difference == 0 else f"{difference:+.3g}"
        rows.append([label, f"{len(found['per_value'])} x {seeds}", f"{best['value']:.3g}",
                     format_mean_std(best["val_accuracy"], best.get("val_accuracy_std")),
                     format_value(best["test_accuracy"], "%"), against])
    header = ["search", f"{values_label(param)} x seeds", f"best {name}", "its validation accuracy",
              "its test accuracy", f"against the first search's {name}"]
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
