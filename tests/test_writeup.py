"""REPORT.md, the README's headline and the notebooks' closing paragraphs: every number traced to a result.

The check: take every number out of the generated text (not from link
targets, code spans or names) and find it among the numbers the results
give, formatted as the text may show them: each value, the mean, std, min,
max and count of each list of seeds, Welch's test of each pair of lists,
the report's numbers and their differences from ours, and the settings
(TrainConfig, the split). A number found nowhere was typed in or miscomputed.
"""

import itertools
import json
import math
import re
import warnings

import numpy as np
import pytest
from scipy import stats

from helpers.core.data import find_batches_dir, split_sizes
from helpers.core.config import TrainConfig, half_cycle_steps
from helpers.errors import HelpersError
from helpers.report import settings, summary, verdicts, writeup

NUMBER = re.compile(r"(?<![\w.^-])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:e[+-]?\d+)?|(?<=\^)-?\d+(?:\.\d+)?")
NAMES = ("CIFAR-10", writeup.ORIGINAL)


def canonical(token):
    """One spelling per number: no thousands commas, no sign, exponents without leading zeros (1e-05 -> 1e-5)."""
    token = token.replace(",", "").lstrip("-+")
    if "e" in token:
        mantissa, power = token.split("e")
        return f"{mantissa}e{int(power)}"
    return token


def numbers_in(text):
    """The numbers a reader sees in Markdown text, canonical; link targets, code and images' names left out."""
    text = re.sub(r"\]\([^)]*\)", "]", text)
    text = re.sub(r"!\[[^\]]*\]", "", text)
    text = re.sub(r"`[^`]*`", "", text)
    for name in NAMES:
        text = text.replace(name, "")
    return [canonical(token) for token in NUMBER.findall(text)]


def spellings(value):
    """The ways the text may print value (a fraction also as percent)."""
    out = set()
    for x in {value, abs(value), 100 * value, abs(100 * value)}:
        out |= {f"{x:.2f}", f"{x:.1f}", f"{x:.3g}", f"{x:.2g}", f"{x:g}", f"{x:.0e}"}
        if float(x).is_integer():
            out.add(str(int(x)))
    return {canonical(text) for text in out}


def leaves(data):
    """Every number, string and list of numbers in nested JSON data."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield str(key)
            yield from leaves(value)
    elif isinstance(data, list):
        if data and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in data):
            yield data
        for value in data:
            yield from leaves(value)
    else:
        yield data


def allowed_numbers(results):
    """Every spelling of every number the results (writeup.load_results) and the settings give."""
    found = set()
    lists = []
    for leaf in leaves(results):
        if isinstance(leaf, str):
            found |= set(numbers_in(leaf)) | {canonical(n) for n in re.findall(r"\d+", leaf)}
        elif isinstance(leaf, list):
            lists.append(leaf)
            found |= spellings(len(leaf)) | spellings(sum(v > verdicts.CHANCE + 0.02 for v in leaf))
            for stat in (np.mean(leaf), np.std(leaf, ddof=1) if len(leaf) > 1 else 0.0, min(leaf), max(leaf)):
                found |= spellings(float(stat))
        elif isinstance(leaf, (int, float)) and not isinstance(leaf, bool):
            found |= spellings(leaf)
            if leaf > 0:
                found |= spellings(round(math.log10(leaf), 2))
    for a, b in itertools.combinations(lists, 2):
        for x, y in ((a, b), (b, a)):
            if len(x) > 1 and len(y) > 1:
                test = welch_independently(x, y)
                found |= set().union(*(spellings(v) for v in test))
    ours = results["ours"]
    seeded = [key for key, v in ours.items() if isinstance(v, list) and len(v) > 1]
    below = sum(summary.report_number(summary.CLAIMS[k]) < min(ours[k]) for k in seeded)
    above = sum(summary.report_number(summary.CLAIMS[k]) > max(ours[k]) for k in seeded)
    found |= spellings(len(seeded)) | spellings(below) | spellings(above)
    for claim in summary.REPORT:
        found |= set(numbers_in(f"{claim.experiment} {claim.key}")) | {canonical(n) for n in re.findall(r"\d+", claim.key)}
        if claim.unit == "text":
            found |= set(numbers_in(claim.value))
            continue
        theirs = summary.report_number(claim)
        found |= spellings(theirs) | spellings(theirs / 60) | spellings(round(math.log10(theirs), 2))
        value = ours.get(claim.key)
        if value is None:
            continue
        mean = float(np.mean(value))
        found |= spellings(mean - theirs) | spellings(mean / theirs)
        if isinstance(value, list) and len(value) > 1 and np.std(value) > 0:
            found |= spellings((theirs - mean) / float(np.std(value, ddof=1)))
    for low, high in summary.REPORT_LAMBDA_STAGES:
        found |= spellings(low) | spellings(high)
    for quick in (False, True):
        n_train = settings.QUICK_N_TRAIN if quick else None
        found |= set().union(*(spellings(n) for n in split_sizes("report", n_train)))
        config = TrainConfig(n_s=settings.QUICK_N_S if quick else None)
        found |= spellings(half_cycle_steps(config, split_sizes("report", n_train)[0]))
    for value in TrainConfig().to_dict().values():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            found |= spellings(value)
    for hidden in writeup.HIDDEN.values():
        found |= set().union(*(spellings(width) for width in hidden))
    found |= spellings(3072) | spellings(10) | spellings(95) | spellings(verdicts.ALPHA) | spellings(1e-6)
    found |= spellings(100 * verdicts.MARGIN) | {"1", "2", "3"}  # the stages
    return found


def welch_independently(a, b):
    """(difference, interval low, interval high, p) of Welch's t-test, straight from scipy."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        d = float(a[0] - b[0])
        return d, d, d, float(d == 0)
    with warnings.catch_warnings():  # nearly equal seeds make scipy warn about rounding
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ttest_ind(a, b, equal_var=False)
        interval = result.confidence_interval(0.95)
    return float(a.mean() - b.mean()), float(interval.low), float(interval.high), float(result.pvalue)


def unexplained(text, results):
    allowed = allowed_numbers(results)
    return sorted({number for number in numbers_in(text) if number not in allowed})


def synthetic_results(folder, seeds=5, no_bn_3=0.528, bn_3=0.531, sigma_3_no_bn=(0.1, 0.456, 0.51, 0.44, 0.47)):
    """Rows and results as the notebooks write them, with made-up accuracies, on the data found; returns nothing."""
    rng = np.random.default_rng(0)
    writeup.save_data_source(folder, find_batches_dir())

    def around(mean, spread=0.004):
        return [round(float(v), 4) for v in mean + spread * rng.standard_normal(seeds)]

    summary.compare("01_gradient_check", {"gradcheck/forward_errors": "6e-08 to 2e-07",
                                          "gradcheck/forward_seconds": 3.71}, folder)
    summary.compare("02_three_layer", {"three_layer/no_bn": around(no_bn_3), "three_layer/bn": around(bn_3)}, folder)
    summary.compare("03_nine_layer", {"nine_layer/no_bn": around(0.47, 0.01), "nine_layer/bn": around(0.515)}, folder)
    summary.compare("04_lambda_search", {"lambda/stage_1": 0.5511, "lambda/stage_2": 0.5423, "lambda/stage_3": 0.5467,
                                         "lambda/best": 0.00273, "lambda/final": around(0.535)}, folder)
    summary.compare("05_init_sensitivity", {
        "sigma/1e-1/no_bn": around(0.527), "sigma/1e-1/bn": around(0.533),
        "sigma/1e-3/no_bn": list(sigma_3_no_bn)[:seeds], "sigma/1e-3/bn": around(0.532),
        "sigma/1e-4/no_bn": [0.1] * seeds, "sigma/1e-4/bn": around(0.533)}, folder)
    writeup.save_results("06_beyond_the_report", {
        "ablation": {"base": around(0.53), "+ flips": around(0.54)},
        "gains_text": "Alone, flips gave +1.23 points (p = 0.0031).",
        "best_model": [0.6295, 0.6314, 0.6293],
        "best_settings": [["hidden", [1024, 512, 256]], ["lam", 0.002], ["dropout", 0.2]],
    }, folder)
    writeup.save_results("07_inside_batch_norm", {
        "sweep_text": "With BN, the 3-layer network goes from 41.2 % (sigma 1e-5) to 47.9 % (sigma 1e-1).",
        "batch_size_text": "The BN network does best at n_batch 50 (48.10 ± 0.20 %).",
        "layer_norm_text": "At n_batch 10 the LN network reaches 47.55 ± 0.07 % against BN's 45.30 ± 0.60 %.",
        "confusion_text": "Test accuracy 53.29 %. The most frequent mistake: 212 of the 1000 cat images.",
        "why_text": "The gradients' norms are 1.2e-05, 3.4e-06 (layers 1 to 3).",
    }, folder)


def test_every_number_of_the_report_comes_from_the_results(tmp_path):
    synthetic_results(tmp_path)
    text = writeup.report_markdown(tmp_path)
    results = writeup.load_results(tmp_path)
    assert unexplained(text, results) == []
    assert len(numbers_in(text)) > 200
    # The check can fail: a mean changed by one hundredth of a point is found nowhere.
    mean = summary.format_spread(results["ours"]["nine_layer/bn"]).split(" ±")[0]
    assert mean in text
    wrong = f"{float(mean) + 0.01:.2f}"
    assert wrong not in allowed_numbers(results)
    assert unexplained(text.replace(mean, wrong), results) == [wrong]


def test_the_report_keeps_the_original_order_and_links_the_figures_that_exist(tmp_path):
    synthetic_results(tmp_path)
    (tmp_path / "02_three_layer_curves.png").write_bytes(b"png")
    text = writeup.report_markdown(tmp_path, root=tmp_path)
    titles = [line[3:] for line in text.splitlines() if line.startswith("## ")]
    assert titles == ["Introduction", *list(writeup.NOTEBOOKS.values())[:5], "Comments",
                      *list(writeup.NOTEBOOKS.values())[5:]]
    assert "](02_three_layer_curves.png)" in text
    assert "03_nine_layer_curves.png" not in text
    assert "45,000 training, 5,000 validation and 10,000 test images" in text
    assert "Quick mode" not in text
    quick = writeup.report_markdown(tmp_path, quick=True)
    assert quick.splitlines()[2].startswith("> **Quick mode, not comparable with the report")
    assert "5,000 training, 5,000 validation" in quick


def test_the_report_notes_the_inconsistent_lambda_search(tmp_path):
    synthetic_results(tmp_path)
    text = writeup.report_markdown(tmp_path)
    assert ("stage 3, which searched lambda in [10^-4.1, 10^-3.9]; yet the best lambda it gives, 0.000715 = "
            "10^-3.15, lies outside that range (it lies in stage 2's, [10^-4, 10^-3])") in text


def test_the_comments_and_the_closing_paragraphs_follow_the_verdicts(tmp_path):
    confirmed, contradicted = tmp_path / "a", tmp_path / "b"
    confirmed.mkdir(), contradicted.mkdir()
    synthetic_results(confirmed, no_bn_3=0.56, bn_3=0.50, sigma_3_no_bn=[0.1] * 5)
    synthetic_results(contradicted, no_bn_3=0.50, bn_3=0.56)
    for folder, three_layer, sigma in ((confirmed, "confirmed: higher by", "confirmed: every seed stays at chance"),
                                       (contradicted, "contradicted: lower by", "refuted: 4 of 5 seeds learn")):
        ours = writeup.load_results(folder)["ours"]
        closing = writeup.closing("02_three_layer", {k: ours[k] for k in writeup.KEYS["02_three_layer"]})
        assert three_layer in closing and closing.startswith("**What this notebook found.**")
        assert closing._repr_markdown_() == closing
        assert sigma in writeup.closing("05_init_sensitivity", ours)
        headline = writeup.headline_markdown(folder)
        row = next(line for line in headline.splitlines() if line.startswith("| 3-layer [50, 50], no BN beats"))
        assert three_layer in row
        comments = writeup.report_markdown(folder).split("## Comments")[1].split("\n## ")[0]
        assert three_layer in comments and sigma in comments
        assert unexplained(headline, writeup.load_results(folder)) == []
    assert "Our seeds confirm:\n  - 3-layer" in writeup.report_markdown(confirmed)
    assert "Our seeds contradict:\n  - 3-layer" in writeup.report_markdown(contradicted)


def test_the_headline_is_short_and_says_what_made_it(tmp_path):
    synthetic_results(tmp_path, seeds=2, sigma_3_no_bn=[0.1, 0.3])
    headline = writeup.headline_markdown(tmp_path, quick=True)
    lines = headline.strip().splitlines()
    assert len(lines) == 2 + len(verdicts.FINDINGS) + 2 + 2  # header, rule, findings, final and best, blank, line
    assert lines[-1].startswith("Test accuracies on a JPEG re-encoded copy of CIFAR-10")
    assert "over the seeds each row gives" in lines[-1] and "--quick" in lines[-1]
    assert all(row.count(" (2 seeds) |") == 1 for row in lines[2:-3])
    assert "| our best model (bonus exercise) | - | 63.01 ± 0.12 % (3 seeds) | - |" in headline


def test_notebooks_06_and_07_close_with_what_they_saved(tmp_path):
    synthetic_results(tmp_path)
    extra = writeup.load_results(tmp_path)["notebooks"]
    bonus = writeup.closing("06_beyond_the_report", extra["06_beyond_the_report"])
    assert "Alone, flips gave +1.23 points" in bonus and "hidden layers [1024, 512, 256], lambda 0.002, dropout 0.2" in bonus
    assert "63.01 ± 0.12 % (62.93 % to 63.14 %, 3 seeds)" in bonus
    inside = writeup.closing("07_inside_batch_norm", extra["07_inside_batch_norm"])
    assert inside.count("\n- ") == 5 and "212 of the 1000 cat images" in inside
    assert "- **Does LN keep its accuracy where BN loses it?** At n_batch 10 the LN network reaches 47.55" in inside
    older = {key: text for key, text in extra["07_inside_batch_norm"].items() if key != "layer_norm_text"}
    with pytest.raises(HelpersError, match="Notebook 07's results have no layer_norm_text: .* Run it again"):
        writeup.closing("07_inside_batch_norm", older)
    with pytest.raises(ValueError, match="No closing paragraph for '01_gradient_check'"):
        writeup.closing("01_gradient_check", {})


def test_save_results_returns_what_the_report_will_read(tmp_path):
    back = writeup.save_results("06_beyond_the_report", {"best_settings": [("hidden", (1, 2))]}, tmp_path)
    assert back == {"best_settings": [["hidden", [1, 2]]]}
    assert json.loads((tmp_path / "06_beyond_the_report.results.json").read_text())["results"] == back


def test_no_results_is_a_clear_error(tmp_path):
    with pytest.raises(HelpersError, match="No results in .*run the notebooks first"):
        writeup.report_markdown(tmp_path)


def test_the_summary_has_no_wall_times_and_is_the_same_each_time(tmp_path):
    synthetic_results(tmp_path)
    names = list(writeup.NOTEBOOKS)
    text = writeup.summary_markdown(tmp_path, names, quick=False)
    assert text == writeup.summary_markdown(tmp_path, names, quick=False)
    assert "Wall time" not in text and " min " not in text.splitlines()[0]
    assert text.startswith("Made by `make report`")
    assert "| 02_three_layer | 3-layer [50, 50], no BN | test accuracy | 53.37 % |" in text
    assert "The report's conclusions, tested on our seeds (Welch's t-test):" in text


def test_the_report_of_the_committed_results_comes_from_them():
    """figures/ holds the full-mode results; the committed REPORT.md and README headline are what they give."""
    text = writeup.report_markdown(settings.FIGURES_DIR, root=settings.REPO)
    assert unexplained(text, writeup.load_results(settings.FIGURES_DIR)) == []
    assert (settings.REPO / "REPORT.md").read_text() == text
    readme = (settings.REPO / "README.md").read_text()
    headline = writeup.headline_markdown(settings.FIGURES_DIR)
    assert f"{summary.README_BEGIN}\n{headline.rstrip()}\n{summary.README_END}" in readme


def test_the_data_is_named_by_what_the_files_are_not_by_where_they_are(tmp_path):
    assert writeup.data_source(find_batches_dir()).startswith("a JPEG re-encoded copy of CIFAR-10")
    other = tmp_path / "cifar-10-batches-py"
    other.mkdir()
    (other / "data_batch_1").write_bytes(b"other pixels")
    assert writeup.data_source(other).startswith(f"the CIFAR-10 files of `{other.resolve().as_posix()}`")
    writeup.save_data_source(tmp_path, other)
    assert writeup.data_text(tmp_path, quick=False).startswith("the CIFAR-10 files of")
    assert "not recorded" in writeup.data_text(tmp_path / "nothing", quick=False)
