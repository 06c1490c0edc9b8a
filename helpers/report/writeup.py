"""REPORT.md (the report, reproduced), the README's headline table and each notebook's closing paragraph.

Everything here is written from the results the notebooks leave in their
figures folder: <notebook>.rows.json (summary.compare: the report's numbers
beside ours) and, for notebooks 06 and 07, whose numbers the report does not
have, <notebook>.results.json (save_results). No result is typed in by hand.
Each section of REPORT.md says what was run, gives the report's number beside
ours (mean ± std over the seeds, and their range), links its figures and says
in words what the verdicts of helpers.report.verdicts found; its closing
comments are written from the same verdicts, so they cannot disagree with
them. A notebook's closing paragraph is the same text as its section's
(closing), so a notebook and REPORT.md cannot disagree either.

    write_report(figures_dir, "REPORT.md")          # the whole report
    headline_markdown(figures_dir)                  # the README's short table
    summary_markdown(figures_dir, notebooks, quick) # figures/summary.md, without wall times

tests/test_writeup.py finds every number of the generated text in the results it came from.
"""

import hashlib
import json
import math
import os
import platform
from pathlib import Path

from ..core.data import find_batches_dir, split_sizes
from ..core.config import TrainConfig, half_cycle_steps
from ..errors import HelpersError
from ..files import shown_path, write_atomically
from . import inside, plots, summary, verdicts
from .ablation import gains_text
from .settings import QUICK_N_S, QUICK_N_TRAIN
from .summary import CLAIMS, format_spread, format_value, report_value

RESULTS_SUFFIX = ".results.json"
DATA_NOTE = "data.json"
"""Which copy of CIFAR-10 the results of a figures folder came from (save_data_source)."""
JPEG_COPY_SHA256 = "49b9ff85b853683b5a357190a8e493a66a8966b4379ef4bf4135471c5905cf34"
"""data_batch_1 of the JPEG re-encoded copy, as its make_batches.py writes it."""
NOTEBOOKS = {
    "01_gradient_check": "The gradient check",
    "02_three_layer": "Three layers, with and without batch normalization",
    "03_nine_layer": "Nine layers, with and without batch normalization",
    "04_lambda_search": "The lambda search and the final model",
    "05_init_sensitivity": "Sensitivity to initialization",
    "06_beyond_the_report": "Beyond the report: the bonus exercise",
    "07_inside_batch_norm": "Inside batch normalization",
}
"""Each notebook and the title of its section in REPORT.md, in the report's order."""
FIGURES = {
    "01_gradient_check": ["01_gradient_check"],
    "02_three_layer": ["02_three_layer_curves"],
    "03_nine_layer": ["03_nine_layer_curves"],
    "04_lambda_search": ["04_lambda_search", "04_lambda_search_averaged", "04_final_model_curves"],
    "05_init_sensitivity": ["05_init_sensitivity"],
    "06_beyond_the_report": ["06_best_model_curves"],
    "07_inside_batch_norm": ["07_weight_scale_sweep", "07_batch_size", "07_confusion_matrix",
                             "07_activation_std", "07_gradient_norm"],
}
"""The figures (PNG, in the figures folder) each section shows."""
ORIGINAL = "The 2019 report of KTH DD2424's assignment 3"
"""The report reproduced, as the introduction names it."""
HIDDEN = {"02_three_layer": (50, 50), "03_nine_layer": (50, 30, 20, 20, 10, 10, 10, 10)}
"""The hidden widths of the networks of notebooks 02 and 03 (05 and the final model of 04: notebook 02's)."""


class Markdown(str):
    """Text that a notebook shows as Markdown when a cell ends with it, and a plain str everywhere else."""

    def _repr_markdown_(self):
        return str(self)


# ---------------------------------------------------------------- the results


def save_results(notebook, results, folder):
    """Write results (plain JSON data) to <folder>/<notebook>.results.json; return them as read back.

    For notebooks whose numbers the report does not have (06, 07): the
    report's section is written from this file. What is returned is what
    REPORT.md will read (tuples become lists), so that the notebook's closing
    paragraph is made from the same data.
    """
    text = json.dumps({"notebook": notebook, "results": results}, indent=1)
    write_atomically(Path(folder) / f"{notebook}{RESULTS_SUFFIX}", text.encode())
    return json.loads(text)["results"]


def load_results(figures_dir):
    """Everything the notebooks measured: {"ours": {claim key: value}, "notebooks": {notebook: results}, "data": words}.

    ours: from every <notebook>.rows.json (a list per claim over seeds);
    notebooks: from every <notebook>.results.json. Raises HelpersError if
    the folder holds neither.
    """
    folder = Path(figures_dir)
    rows = sorted(folder.glob(f"*{summary.ROWS_SUFFIX}"))
    extra = sorted(folder.glob(f"*{RESULTS_SUFFIX}"))
    if not rows and not extra:
        raise HelpersError(f"No results in {folder} (no *{summary.ROWS_SUFFIX} files): run the notebooks first, "
                           f"e.g. `python -m helpers.report` (or --quick).")
    names = [path.name.removesuffix(summary.ROWS_SUFFIX) for path in rows]
    ours = {key: value for _, key, value in summary.gathered(folder, names)}
    notebooks = {}
    for path in extra:
        record = json.loads(path.read_text())
        notebooks[record["notebook"]] = record["results"]
    return {"ours": ours, "notebooks": notebooks, "data": recorded_source(folder)}


def ablation_results(runs, best, changes, best_settings):
    """Notebook 06's results as plain data, for save_results.

    runs: {label: [summary] * seeds} of the ablation (ablation.ablation_runs);
    best: [summary] * seeds of the best model; changes: the ablation's
    changes (ablation.CHANGES); best_settings: [(field, value)] in which the
    best model differs from the report's network (ablation.best_settings()).
    """
    return {
        "ablation": {label: summary.test_accuracies(seeded) for label, seeded in runs.items()},
        "gains_text": gains_text(runs, changes),
        "best_model": summary.test_accuracies(best),
        "best_settings": [[field, value] for field, value in best_settings],
    }


def inside_results(sweep, batches, matrix, class_names, traced):
    """Notebook 07's conclusions, each written by its helpers.report.inside function, for save_results."""
    return {
        "sweep_text": inside.sweep_text(sweep),
        "batch_size_text": inside.batch_size_text(batches),
        "layer_norm_text": inside.layer_norm_text(batches),
        "confusion_text": inside.confusion_text(matrix, class_names),
        "why_text": inside.why_text(traced, sigma=1e-3),
    }


# ---------------------------------------------------------------- numbers in words


def seeds_of(ours, keys):
    """How many seeds the lists of ours under keys hold: "5", or "2 or 5" if they differ; None if no list."""
    counts = sorted({len(ours[key]) for key in keys if isinstance(ours.get(key), list)})
    return " or ".join(str(n) for n in counts) or None


def spread(values, unit="%"):
    """Ours in words: "52.84 ± 0.41 % (52.27 to 53.43 %, 5 seeds)"; a single value as format_value gives it."""
    if not isinstance(values, list) or len(values) == 1:
        return format_spread(values, unit)
    return (f"{format_spread(values, unit)} ({format_value(min(values), unit)} to "
            f"{format_value(max(values), unit)}, {len(values)} seeds)")


def claims_table(ours, keys):
    """The report's number beside ours for each claim of keys that ours has, as Markdown."""
    rows = []
    for key in keys:
        if key not in ours:
            continue
        claim, value = CLAIMS[key], ours[key]
        if isinstance(value, list) and len(value) > 1:
            mean_std = format_spread(value, claim.unit)
            low_high = f"{format_value(min(value), claim.unit)} to {format_value(max(value), claim.unit)}"
        else:
            mean_std, low_high = format_spread(value, claim.unit), "-"
        rows.append([claim.experiment, claim.quantity, report_value(claim), mean_std, low_high,
                     summary.difference(claim, value), summary.inside_range(claim, value)])
    header = ["experiment", "quantity", "report", "ours, mean ± std", "ours, min to max", "difference",
              "report inside our seeds' range"]
    return summary.Table(header, rows).to_markdown()


def finding_verdicts(ours):
    """(finding, verdict in words) for each finding of verdicts.FINDINGS whose two groups ours has over seeds."""
    found = []
    for finding in verdicts.FINDINGS:
        a, b = ours.get(finding.a), ours.get(finding.b)
        if isinstance(a, list) and isinstance(b, list) and len(a) > 1 and len(b) > 1:
            found.append((finding, verdicts.verdict(finding, a, b)))
    return found


def finding_sentence(finding, verdict, ours):
    """"The report concludes that a beats b (53.37 % against 49.71 %). Ours: ...; verdict."."""
    return (f"The report concludes that {finding.text()}. Ours: {format_spread(ours[finding.a])} against "
            f"{format_spread(ours[finding.b])}; {verdict}.")


def outcome(verdict):
    """The first words of a verdict: "confirmed", "not confirmed", "not refuted", "refuted" or "contradicted"."""
    return verdict.split(":")[0]


def outside_detail(where):
    """What summary.inside_range says of a report's number outside our range, without its "no": "4.6 std below our mean"."""
    return where.removeprefix("no").lstrip(": ").removeprefix("(").removesuffix(")")


def inside_sentence(key, value):
    """Whether the report's single run lies inside the range of our seeds, in a sentence; "" for one value."""
    inside = summary.inside_range(CLAIMS[key], value)
    if inside == "-":
        return ""
    claim = CLAIMS[key]
    where = "inside the range of our seeds" if inside.startswith("yes") else f"outside the range of our seeds ({outside_detail(inside)})"
    return f"The report's {claim.experiment}, {report_value(claim)}, lies {where}."


def claims_closing(ours, keys):
    """A closing paragraph for claims of keys: each finding on them tested, then the report's runs against our range."""
    keys = [key for key in keys if key in ours]
    lines = [f"- {finding_sentence(finding, verdict, ours)}" for finding, verdict in finding_verdicts(ours)
             if finding.a in keys and finding.b in keys]
    inside, outside = [], []
    for key in keys:
        where = summary.inside_range(CLAIMS[key], ours[key])
        if where.startswith("yes"):
            inside.append(f"{CLAIMS[key].experiment} ({report_value(CLAIMS[key])})")
        elif where != "-":
            outside.append(f"{CLAIMS[key].experiment} ({report_value(CLAIMS[key])}, {outside_detail(where)})")
    if inside:
        lines.append("- The report's single run lies inside the range of our seeds for " + "; ".join(inside) + ".")
    if outside:
        lines.append("- The report's single run lies outside the range of our seeds for " + "; ".join(outside) + ".")
    return Markdown("**What this notebook found.**\n\n" + "\n".join(lines))


def exponent(value):
    """10^-3.15 for 0.000715: a positive number as a power of ten, the exponent to two decimals."""
    return f"10^{math.log10(value):.2f}"


def stage_range(low, high):
    return f"[10^{low:g}, 10^{high:g}]"


def lambda_inconsistency():
    """A note if the report's best lambda lies outside the range of the stage that gave its best validation accuracy."""
    stages = [CLAIMS[f"lambda/stage_{i}"] for i in (1, 2, 3)]
    best_stage = max(range(3), key=lambda i: stages[i].value)
    low, high = summary.REPORT_LAMBDA_STAGES[best_stage]
    best = CLAIMS["lambda/best"].value
    if low <= math.log10(best) <= high:
        return ""
    inside = [i for i, (lo, hi) in enumerate(summary.REPORT_LAMBDA_STAGES) if lo <= math.log10(best) <= hi]
    # The last stage that holds it is the narrowest.
    where = (f" (it lies in stage {inside[-1] + 1}'s, {stage_range(*summary.REPORT_LAMBDA_STAGES[inside[-1]])})"
             if inside else "")
    return (f"**A note on the report.** Its best validation accuracy, {report_value(stages[best_stage])}, comes "
            f"from stage {best_stage + 1}, which searched lambda in {stage_range(low, high)}; yet the best lambda "
            f"it gives, {format_value(best, '')} = {exponent(best)}, lies outside that range{where}. The report "
            f"does not say which lambda its final model used: both numbers are given here as the report prints them.")


def lambda_closing(ours):
    """Notebook 04's closing paragraph: the stages' best validation accuracies, the lambda found, the final model."""
    stages = [key for key in ("lambda/stage_1", "lambda/stage_2", "lambda/stage_3") if key in ours]
    sentences = []
    if stages:
        sentences.append("Best validation accuracy per stage, ours against the report's: " + ", ".join(
            f"stage {key[-1]} {format_spread(ours[key])} against {report_value(CLAIMS[key])}" for key in stages) + ".")
    if "lambda/best" in ours:
        lam, theirs = ours["lambda/best"], CLAIMS["lambda/best"].value
        sentences.append(f"Our search picks lambda {format_value(lam, '')} = {exponent(lam)}, the report's "
                         f"{format_value(theirs, '')} = {exponent(theirs)}.")
    if "lambda/final" in ours:
        sentences.append(f"The final model, trained with our lambda: {spread(ours['lambda/final'])}, against the "
                         f"report's {report_value(CLAIMS['lambda/final'])}. " + inside_sentence("lambda/final",
                                                                                              ours["lambda/final"]))
    note = lambda_inconsistency()
    return Markdown("**What this notebook found.** " + " ".join(sentences).strip() + (f"\n\n{note}" if note else ""))


def best_settings_text(settings):
    """The best model's settings [(TrainConfig field, value), ...] in words, as its figure's title gives them."""
    return ", ".join(plots.settings_words(settings))


def ablation_closing(results):
    """Notebook 06's closing paragraph: the ablation's gains, and the best model over its seeds."""
    return Markdown(f"**What this notebook found.** {results['gains_text']} The best model "
                    f"({best_settings_text(results['best_settings'])}) reaches {spread(results['best_model'])} "
                    f"on the test images.")


INSIDE_SECTIONS = (
    ("sweep_text", "The weight-scale sweep."),
    ("batch_size_text", "BN, LN and the batch size."),
    ("layer_norm_text", "Does LN keep its accuracy where BN loses it?"),
    ("confusion_text", "The report's 3-layer BN network, seed 0."),
    ("why_text", "Why a small sigma can stall training without BN."),
)
"""Notebook 07's conclusions in its closing paragraph: (key of inside_results, title)."""


def inside_closing(results):
    """Notebook 07's closing paragraph: the conclusions of its four studies, as each section wrote them.

    The batch-size study gives two: each network's best n_batch with BN's test-time statistics, and
    whether layer normalization keeps its accuracy where BN loses it (inside.layer_norm_text).
    Raises HelpersError if results, from an older run of the notebook, lack one.
    """
    missing = [key for key, _ in INSIDE_SECTIONS if key not in results]
    if missing:
        raise HelpersError(f"Notebook 07's results have no {', '.join(missing)}: they come from an older run of it. "
                           f"Run it again, e.g. `python -m helpers.report 07_inside_batch_norm`.")
    return Markdown("**What this notebook found.**\n\n"
                    + "\n".join(f"- **{title}** {results[key]}" for key, title in INSIDE_SECTIONS))


KEYS = {
    "02_three_layer": ("three_layer/no_bn", "three_layer/bn"),
    "03_nine_layer": ("nine_layer/no_bn", "nine_layer/bn"),
    "04_lambda_search": ("lambda/stage_1", "lambda/stage_2", "lambda/stage_3", "lambda/best", "lambda/final"),
    "05_init_sensitivity": tuple(summary.sigma_key(sigma, bn) for sigma in summary.SIGMAS for bn in (False, True)),
    "01_gradient_check": ("gradcheck/forward_errors", "gradcheck/forward_seconds"),
}
"""The claims each notebook measures, in table order."""


def closing(notebook, results):
    """The closing paragraph of a notebook, written from its own numbers and verdicts (Markdown).

    results: for 02 to 05, the {claim key: value} the notebook gives
    summary.compare; for 06 and 07, what it gave save_results. REPORT.md
    uses the same paragraph in the notebook's section.
    """
    if notebook in ("02_three_layer", "03_nine_layer", "05_init_sensitivity"):
        return claims_closing(results, KEYS[notebook])
    if notebook == "04_lambda_search":
        return lambda_closing(results)
    if notebook == "06_beyond_the_report":
        return ablation_closing(results)
    if notebook == "07_inside_batch_norm":
        return inside_closing(results)
    raise ValueError(f"No closing paragraph for {notebook!r}: give one of 02_three_layer to 07_inside_batch_norm.")


# ---------------------------------------------------------------- REPORT.md


def data_source(batches_dir):
    """Which copy of CIFAR-10 batches_dir (a cifar-10-batches-py folder) holds, in words.

    Told by the digest of its first training batch: the JPEG re-encoded copy's
    is known (its builder always writes the same bytes); any other copy is
    named by its folder and digest, since only the download checks the
    official archive.
    """
    digest = hashlib.sha256((Path(batches_dir) / "data_batch_1").read_bytes()).hexdigest()
    if digest == JPEG_COPY_SHA256:
        return "a JPEG re-encoded copy of CIFAR-10 (quality 75; not the official files)"
    return f"the CIFAR-10 files of `{shown_path(batches_dir)}` (data_batch_1 sha256 {digest[:12]}...)"


def save_data_source(figures_dir, batches_dir):
    """Record which data the notebooks about to run read, in <figures_dir>/data.json; returns the words."""
    source = data_source(batches_dir)
    write_atomically(Path(figures_dir) / DATA_NOTE, (json.dumps({"source": source}, indent=1) + "\n").encode())
    return source


def recorded_source(figures_dir):
    """The data the results of figures_dir came from, in words, as save_data_source recorded it."""
    note = Path(figures_dir) / DATA_NOTE
    return json.loads(note.read_text())["source"] if note.is_file() else "CIFAR-10 (which copy was not recorded)"


def data_text(figures_dir, quick):
    """The data the results of figures_dir came from and its split, in words."""
    source = recorded_source(figures_dir)
    n_train, n_val, n_test = split_sizes("report", QUICK_N_TRAIN if quick else None)
    return f"{source}, {n_train:,} training, {n_val:,} validation and {n_test:,} test images"


def command(quick):
    if quick:
        return "`python -m helpers.report --quick` (NB_QUICK=1: small runs, not comparable with the report)"
    return "`make report` (`python -m helpers.report`)"


def settings_text(hidden, quick, with_lambda=True, with_init=True):
    """How the report's network was trained, from TrainConfig's defaults; with_*: whether to give lambda, the init."""
    config = TrainConfig(hidden=hidden, n_s=QUICK_N_S if quick else None)
    n_train = split_sizes("report", QUICK_N_TRAIN if quick else None)[0]
    n_s = half_cycle_steps(config, n_train)
    widths = " → ".join(str(width) for width in hidden)
    init = "He" if config.init == "he" else f"sigma {inside.sigma_label(config.init)}"
    init = f", {init} initialization" if with_init else ""
    return (f"network 3072 → {widths} → 10{init}, mini-batches of {config.n_batch}, a cyclical "
            f"learning rate between {inside.sigma_label(config.eta_min)} and {inside.sigma_label(config.eta_max)} with "
            f"n_s = {n_s:,} steps, "
            f"{config.cycles} cycles" + (f", lambda {config.lam:g}" if with_lambda else ""))


def figures_markdown(notebook, figures_dir, root):
    """Links to the section's figures that exist, relative to root (the folder of REPORT.md)."""
    lines = []
    for name in FIGURES[notebook]:
        path = Path(figures_dir) / f"{name}.png"
        if path.is_file():
            lines.append(f"![{name}]({Path(os.path.relpath(path.resolve(), Path(root).resolve())).as_posix()})")
    return "\n\n".join(lines)


def gradcheck_section(ours):
    """What the gradient check found against the report, in words."""
    if "gradcheck/forward_errors" not in ours:
        return "Not run."
    theirs = CLAIMS["gradcheck/forward_errors"].value
    highest = float(ours["gradcheck/forward_errors"].split(" to ")[-1])
    lowest_theirs = float(theirs.split(" to ")[0])
    text = (f"The relative errors of W and gamma with forward differences in the full-size case are "
            f"{ours['gradcheck/forward_errors']}, the report's {theirs}: ")
    text += ("ours are all below the report's smallest." if highest < lowest_theirs
             else "the two ranges overlap or ours are larger.")
    if "gradcheck/forward_seconds" in ours:
        text += (f" The check took {format_value(ours['gradcheck/forward_seconds'], 's')} (the fast check, which "
                 f"moves a whole column of a weight matrix at once); the report's, one entry at a time, "
                 f"{report_value(CLAIMS['gradcheck/forward_seconds'])}.")
    return text


def comments(ours):
    """The closing comments, written from the verdicts alone, grouped by what they found."""
    found = finding_verdicts(ours)
    groups = {}
    for finding, verdict in found:
        groups.setdefault(outcome(verdict), []).append(f"{finding.text()}: {verdict}")
    intro = {
        "confirmed": "Our seeds confirm",
        "not refuted": "Our seeds do not refute, but cannot yet establish,",
        "not confirmed": "Our seeds do not confirm (the difference is within their noise)",
        "contradicted": "Our seeds contradict",
        "refuted": "Our seeds refute",
    }
    lines = [f"- {intro[kind]}:\n" + "\n".join(f"  - {item}" for item in items)
             for kind, items in groups.items()]
    below = [key for key, value in ours.items()
             if isinstance(value, list) and len(value) > 1 and CLAIMS[key].unit == "%"
             and summary.report_number(CLAIMS[key]) < min(value)]
    above = [key for key, value in ours.items()
             if isinstance(value, list) and len(value) > 1 and CLAIMS[key].unit == "%"
             and summary.report_number(CLAIMS[key]) > max(value)]
    seeded = [key for key, value in ours.items() if isinstance(value, list) and len(value) > 1]
    lines.append(f"- Of the report's {len(seeded)} single runs that we trained over seeds, {len(below)} lie below "
                 f"our lowest seed and {len(above)} above our highest.")
    if lambda_inconsistency():
        lines.append("- The report's lambda search and its best lambda do not agree (see the lambda search above).")
    return "\n".join(lines)


def report_markdown(figures_dir, quick=False, root=None):
    """REPORT.md: the report's sections, each with what was run, its numbers beside ours, figures and verdicts.

    figures_dir: the folder the notebooks wrote their rows, results and
    figures to. quick: whether they ran in quick mode (said at the top).
    root: the folder REPORT.md will be in, for the figures' relative links
    (default: the parent of figures_dir).
    """
    root = Path(figures_dir).parent if root is None else Path(root)
    data = load_results(figures_dir)
    ours, extra = data["ours"], data["notebooks"]
    seeds = seeds_of(ours, list(ours))
    lines = ["# The report, reproduced", ""]
    if quick:
        lines += ["> **Quick mode, not comparable with the report:** small runs on few images, "
                  f"{seeds or 'few'} seeds per setting, made to check that everything runs.", ""]
    lines += [
        "## Introduction", "",
        f"{ORIGINAL} trains a k-layer fully connected network with batch "
        "normalization on CIFAR-10, one run per setting. Here every experiment of the report is run again with "
        "the same settings, on " + data_text(figures_dir, quick) + f", each setting with {seeds or 'one'} seeds (another "
        "seed draws other initial weights and another order of the batches). Each section gives the report's "
        "number beside ours: the mean ± standard deviation over our seeds and their range (lowest to highest). "
        "Each of the report's conclusions is tested on our seeds with Welch's t-test: a difference with "
        f"p < {verdicts.ALPHA} is called real, and two settings count as equally good when the 95 % confidence "
        f"interval of their difference lies within ±{100 * verdicts.MARGIN:g} point.", "",
        f"Made by {command(quick)}; every number below is written from the results it saved in "
        f"`{shown_path(figures_dir)}`.", "",
    ]
    sections = {
        "01_gradient_check": lambda: [
            "The analytic gradients of the network with batch normalization are compared with numerical ones "
            "(finite differences, in float64) in the report's four cases, up to the full size; the report's "
            "numbers are for forward differences.", "", claims_table(ours, KEYS["01_gradient_check"]), "",
            gradcheck_section(ours)],
        "02_three_layer": lambda: [
            "Run: the " + settings_text(HIDDEN["02_three_layer"], quick) + ", without and with BN.", "",
            claims_table(ours, KEYS["02_three_layer"]), "", closing("02_three_layer", ours)],
        "03_nine_layer": lambda: [
            "Run: the " + settings_text(HIDDEN["03_nine_layer"], quick) + ", without and with BN.", "",
            claims_table(ours, KEYS["03_nine_layer"]), "", closing("03_nine_layer", ours)],
        "04_lambda_search": lambda: [
            "Run: lambda of the " + settings_text(HIDDEN["02_three_layer"], quick, with_lambda=False) + ", with BN, searched at "
            "random, log-uniformly, in three stages, each judged on the validation images; then the best lambda "
            "trained for one more cycle over seeds.", "",
            claims_table(ours, KEYS["04_lambda_search"]), "", closing("04_lambda_search", ours)],
        "05_init_sensitivity": lambda: [
            "Run: the " + settings_text(HIDDEN["02_three_layer"], quick, with_init=False) + ", every weight "
            "drawn with the same standard deviation sigma instead of He initialization, without and with BN.", "",
            claims_table(ours, KEYS["05_init_sensitivity"]), "", closing("05_init_sensitivity", ours)],
    }
    for notebook, make in sections.items():
        lines += [f"## {NOTEBOOKS[notebook]}", "", f"Notebook: [`{notebook}`](notebooks/{notebook}.ipynb).", "",
                  *make(), "", figures_markdown(notebook, figures_dir, root), ""]
    lines += ["## Comments", "", "Written from the verdicts above:", "", comments(ours), ""]
    for notebook in ("06_beyond_the_report", "07_inside_batch_norm"):
        lines += [f"## {NOTEBOOKS[notebook]}", "", f"Notebook: [`{notebook}`](notebooks/{notebook}.ipynb).", ""]
        if notebook in extra:
            lines += [closing(notebook, extra[notebook]), "", figures_markdown(notebook, figures_dir, root), ""]
        else:
            lines += ["Not run.", ""]
    return "\n".join(lines).rstrip() + "\n"


def write_report(figures_dir, path, quick=False):
    """Write report_markdown(figures_dir, quick) to path, the figures linked relative to path's folder."""
    path = Path(path)
    write_atomically(path, report_markdown(figures_dir, quick, root=path.parent).encode())
    return path


# ---------------------------------------------------------------- the README's table and summary.md


def headline_markdown(figures_dir, quick=False):
    """The README's headline table: one row per conclusion of the report, and the final and best models.

    Each row: the report's number(s), ours (mean ± std over the seeds) and
    the verdict in a few words; then one line on the data, the seeds and the
    command that made it.
    """
    data = load_results(figures_dir)
    ours = data["ours"]
    rows = []
    for finding, verdict in finding_verdicts(ours):
        a, b = CLAIMS[finding.a], CLAIMS[finding.b]
        rows.append([finding.text().split(" (")[0], f"{report_value(a)} / {report_value(b)}",
                     f"{format_spread(ours[finding.a])} / {format_spread(ours[finding.b])} "
                     f"({seeds_of(ours, [finding.a, finding.b])} seeds)", verdict.split(" (")[0]])
    if "lambda/final" in ours:
        claim = CLAIMS["lambda/final"]
        where = summary.inside_range(claim, ours["lambda/final"])
        rows.append([claim.experiment, report_value(claim),
                     f"{format_spread(ours['lambda/final'])} ({seeds_of(ours, ['lambda/final'])} seeds)",
                     "report inside our range" if where.startswith("yes")
                     else f"report outside our range: {outside_detail(where)}"])
    best = data["notebooks"].get("06_beyond_the_report")
    if best:
        rows.append(["our best model (bonus exercise)", "-",
                     f"{format_spread(best['best_model'])} ({len(best['best_model'])} seeds)", "-"])
    table = summary.Table(["the report's result", "report", "ours", "verdict"], rows).to_markdown()
    return (f"{table}\nTest accuracies on {data_text(figures_dir, quick)}; ours are mean ± std over the seeds each row gives, the "
            f"verdicts Welch's t-tests (p < {verdicts.ALPHA}). Made by {command(quick)}; the details in "
            f"[REPORT.md](REPORT.md).\n")


def made_by(quick):
    """The line that says how summary.md was made: command, data, cores and Python (no wall time)."""
    return (f"Made by {command(quick)} on `{shown_path(find_batches_dir())}`, {os.cpu_count()} cores,"
            f" Python {platform.python_version()}.")


def summary_markdown(figures_dir, notebooks, quick):
    """figures/summary.md: how it was made, the report's numbers against ours, and its conclusions tested.

    notebooks: the notebooks' names, in the order of the table. No wall
    times: on a warm re-run the text is the same byte for byte (the times go
    to the job's console). The conclusions' table is left out when it has no
    row (no conclusion's two settings ran over seeds).
    """
    table = summary.gather(figures_dir, notebooks)
    seeded = {key: value for _, key, value in summary.gathered(figures_dir, notebooks) if isinstance(value, list)}
    findings = verdicts.findings_table(seeded)
    return "\n".join([
        made_by(quick),
        "",
        table.to_markdown(),
        *(["", "The report's conclusions, tested on our seeds (Welch's t-test):", "", findings.to_markdown()]
          if findings.rows else []),
    ])
