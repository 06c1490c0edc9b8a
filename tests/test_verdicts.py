"""The report's conclusions tested over seeds: Welch's t-test, and the verdict in words."""

import math

import numpy as np
import pytest
from scipy import stats

from helpers.report import verdicts
from helpers.report.verdicts import FINDINGS, Finding, findings_table, verdict, welch


def welch_by_hand(a, b):
    """t, Welch-Satterthwaite degrees of freedom and the two-sided p, from the textbook formulas."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    return t, df, 2 * stats.t.sf(abs(t), df)


def test_welch_agrees_with_the_textbook_formulas():
    a, b = [0.531, 0.534, 0.529, 0.537, 0.532], [0.521, 0.529, 0.518, 0.525]
    test = welch(a, b)
    t, df, p = welch_by_hand(a, b)
    assert test["p"] == pytest.approx(p, rel=1e-10)
    half = stats.t.ppf(0.975, df) * (np.mean(a) - np.mean(b)) / t
    assert test["difference"] == pytest.approx(np.mean(a) - np.mean(b))
    assert test["low"] == pytest.approx(test["difference"] - half)
    assert test["high"] == pytest.approx(test["difference"] + half)


def test_groups_that_do_not_vary_give_an_exact_answer():
    assert welch([0.1, 0.1, 0.1], [0.1, 0.1])["p"] == 1.0
    stuck = welch([0.1, 0.1], [0.2, 0.2])
    assert stuck["p"] == 0.0 and stuck["low"] == stuck["high"] == pytest.approx(-0.1)
    one_varies = welch([0.1, 0.1, 0.1], [0.50, 0.52, 0.51])
    assert one_varies["p"] < 1e-3 and one_varies["low"] < -0.41 < one_varies["high"]


def test_welch_needs_two_values_per_group():
    with pytest.raises(ValueError, match="at least two values"):
        welch([0.5], [0.5, 0.6])


HIGHER = Finding("nine_layer/bn", "nine_layer/no_bn", "higher")
SAME = Finding("sigma/1e-1/bn", "sigma/1e-3/bn", "same")
AT_CHANCE = Finding("sigma/1e-3/no_bn", "sigma/1e-3/bn", "at chance")
LEARNED = [0.531, 0.534, 0.529, 0.533, 0.530]


@pytest.mark.parametrize("a, b, start", [
    (LEARNED, [0.461, 0.473, 0.455, 0.468, 0.470], "confirmed: higher by 6."),
    ([0.461, 0.473, 0.455, 0.468, 0.470], LEARNED, "contradicted: lower by 6."),
    ([0.52, 0.54, 0.51, 0.55, 0.53], [0.53, 0.52, 0.54, 0.51, 0.52], "not confirmed: +0.60 points is within"),
])
def test_a_higher_finding(a, b, start):
    assert verdict(HIGHER, a, b).startswith(start)


@pytest.mark.parametrize("a, b, start", [
    (LEARNED, [x + 0.001 for x in LEARNED], "confirmed: within ±1 point at 95 % confidence"),
    (LEARNED, [x - 0.03 for x in LEARNED], "refuted: they differ by +3.00 points"),
    ([0.50, 0.56, 0.47, 0.55], [0.52, 0.49, 0.56, 0.50], "not refuted:"),
])
def test_a_same_finding(a, b, start):
    assert verdict(SAME, a, b).startswith(start)


def test_an_at_chance_finding():
    assert verdict(AT_CHANCE, [0.1, 0.1, 0.1], LEARNED).startswith("confirmed: every seed stays at chance, 43.14")
    assert verdict(AT_CHANCE, [0.1, 0.35, 0.1], LEARNED) == "refuted: 1 of 3 seeds learn (the best reaches 35.00 %)"


def test_the_table_tests_the_findings_whose_groups_were_run():
    groups = {"nine_layer/bn": LEARNED, "nine_layer/no_bn": [0.461, 0.473, 0.455, 0.468, 0.470],
              "three_layer/bn": LEARNED}
    table = findings_table(groups)
    (row,) = table.rows
    assert row[0] == "9-layer, BN beats 9-layer, no BN (49.77 % against 45.92 %)"
    assert row[1:3] == ["53.14 ± 0.21 %", "46.54 ± 0.73 %"]
    assert row[3].startswith("+6.60 [") and row[4].startswith("p = ")
    assert row[5].startswith("confirmed")
    assert table.caption == "5 seeds per setting; a difference with p < 0.05 is called real."


def test_every_finding_names_two_numbers_of_the_report():
    assert len(FINDINGS) == 7
    for finding in FINDINGS:
        assert finding.kind in ("higher", "same", "at chance")
        assert finding.text().count(" %") == 2


def test_the_report_numbers_bear_out_its_higher_findings():
    # The report's own numbers, one run each, ordered as its conclusions say.
    from helpers.report.summary import CLAIMS

    for finding in FINDINGS:
        if finding.kind == "higher":
            assert CLAIMS[finding.a].value > CLAIMS[finding.b].value
    assert verdicts.ALPHA == 0.05 and verdicts.MARGIN == 0.01
