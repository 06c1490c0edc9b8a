"""The report's conclusions, tested on our seeds with Welch's t-test.

The report drew its conclusions from one run per setting. A run's test
accuracy moves by a few tenths of a point from seed to seed, so a difference
of one point between two single runs may be luck. Here each conclusion is a
comparison of two groups of runs, a and b (one accuracy per seed), and
Welch's t-test (two-sided; it does not assume the two spreads are equal)
gives the probability p of a difference at least as large as ours if the two
settings were in truth equally good. Below ALPHA the difference is called
real; above it, the seeds cannot tell it from noise.

Three kinds of conclusion:
- "higher": a beats b (e.g. BN beats no BN for the 9-layer network);
- "same": a and b are equally good, i.e. within MARGIN of each other (e.g.
  with BN, sigma does not matter). No difference being found is not proof of
  none: the verdict asks the 95 % confidence interval of the difference to
  lie inside +- MARGIN;
- "at chance": a does not train: every seed within 2 points of chance
  (10 %), and below b, the same setting with BN. One seed that learns
  refutes it.
"""

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats

from .summary import CLAIMS, format_spread, report_value
from .tables import Table

ALPHA = 0.05
"""The significance level: a difference with p below it is called real."""
MARGIN = 0.01
"""Two accuracies within 1 point of each other count as the same."""
CHANCE = 0.10
"""Ten classes: guessing is right one time in ten."""


def learners(accuracies):
    """How many of the accuracies (fractions) are more than 2 points above chance: the seeds that learned."""
    return sum(value > CHANCE + 0.02 for value in accuracies)


@dataclass(frozen=True)
class Finding:
    """A conclusion of the report: group a against group b, two claim keys of summary.REPORT."""

    a: str
    b: str
    kind: str  # "higher", "same" or "at chance"

    def text(self):
        a, b = CLAIMS[self.a], CLAIMS[self.b]
        theirs = f"({report_value(a)} against {report_value(b)})"
        if self.kind == "higher":
            return f"{a.experiment} beats {b.experiment} {theirs}"
        if self.kind == "same":
            return f"{a.experiment} and {b.experiment} are as good {theirs}"
        return f"{a.experiment} does not train, unlike {b.experiment} {theirs}"


FINDINGS = (
    Finding("three_layer/no_bn", "three_layer/bn", "higher"),
    Finding("nine_layer/bn", "nine_layer/no_bn", "higher"),
    Finding("sigma/1e-1/bn", "sigma/1e-3/bn", "same"),
    Finding("sigma/1e-1/bn", "sigma/1e-4/bn", "same"),
    Finding("sigma/1e-3/bn", "sigma/1e-4/bn", "same"),
    Finding("sigma/1e-3/no_bn", "sigma/1e-3/bn", "at chance"),
    Finding("sigma/1e-4/no_bn", "sigma/1e-4/bn", "at chance"),
)
"""The report's conclusions: BN against no BN for 3 and 9 layers; with BN,
sigma does not matter; without BN, sigma 1e-3 and 1e-4 do not train."""


def welch(a, b, confidence=0.95):
    """Welch's t-test of mean(a) = mean(b), and the confidence interval of mean(a) - mean(b).

    a, b: at least two values each. Returns {"difference", "low", "high", "p"}.
    When neither group varies at all (e.g. every seed at exactly 10 %) the
    test is undefined, but the difference is known exactly: p is then 1 for
    equal means and 0 otherwise.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"Welch's t-test needs at least two values per group, got {len(a)} and {len(b)}.")
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        # Not var() == 0: the mean of equal values may round away from them and leave a variance of 1e-34.
        difference = float(a[0] - b[0])
        return {"difference": difference, "low": difference, "high": difference, "p": 1.0 if difference == 0 else 0.0}
    difference = float(a.mean() - b.mean())
    with warnings.catch_warnings():
        # Nearly equal values in one group make scipy warn about rounding, which a sample of accuracies has by nature.
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ttest_ind(a, b, equal_var=False)
        interval = result.confidence_interval(confidence)
    return {"difference": difference, "low": float(interval.low), "high": float(interval.high),
            "p": float(result.pvalue)}


def format_p(p):
    return "p < 1e-6" if p < 1e-6 else f"p = {p:.2g}"


def gain_and_p(test):
    """A Welch's test (see welch) of accuracies in words: "+1.23 points, p = 0.01"."""
    return f"{100 * test['difference']:+.2f} points, {format_p(test['p'])}"


def capitalized(text):
    """text with its first letter upper case and the rest as it was (str.capitalize lowers "BN")."""
    return text[:1].upper() + text[1:]


def join(items):
    """["a", "b", "c"] in words: "a, b and c"."""
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def verdict(finding, a, b, confidence=0.95):
    """Whether our seeds bear out the finding, in words; a, b: the groups' accuracies (fractions)."""
    test = welch(a, b, confidence)
    d, p = 100 * test["difference"], test["p"]
    real = p < ALPHA
    if finding.kind == "higher":
        if real and d > 0:
            return f"confirmed: higher by {d:.2f} points ({format_p(p)})"
        if real:
            return f"contradicted: lower by {-d:.2f} points ({format_p(p)})"
        return f"not confirmed: {d:+.2f} points is within the seeds' noise ({format_p(p)})"
    if finding.kind == "same":
        within = -MARGIN < test["low"] and test["high"] < MARGIN
        if within:
            return f"confirmed: within ±{100 * MARGIN:g} point at {100 * confidence:g} % confidence ({format_p(p)})"
        if real:
            return f"refuted: they differ by {d:+.2f} points ({format_p(p)})"
        return (f"not refuted: {d:+.2f} points is within the seeds' noise ({format_p(p)}), "
                f"but more seeds are needed to exclude a difference over {100 * MARGIN:g} point")
    learned = learners(a)
    if not learned and real and d < 0:
        return f"confirmed: every seed stays at chance, {-d:.2f} points below ({format_p(p)})"
    return f"refuted: {learned} of {len(a)} seeds learn (the best reaches {100 * max(a):.2f} %)"


def findings_table(groups, confidence=0.95):
    """Each finding of FINDINGS whose two groups are in groups, tested.

    groups: {claim key: [test accuracy of each seed]}, e.g. from the
    notebook's runs; keys no finding uses are ignored. Returns a Table: the report's conclusion, our two means
    +- std, the difference with its confidence interval, p and the verdict.
    """
    rows = []
    for finding in FINDINGS:
        if finding.a not in groups or finding.b not in groups:
            continue
        a, b = groups[finding.a], groups[finding.b]
        test = welch(a, b, confidence)
        rows.append([
            finding.text(),
            format_spread(list(a)),
            format_spread(list(b)),
            f"{100 * test['difference']:+.2f} [{100 * test['low']:+.2f}, {100 * test['high']:+.2f}]",
            format_p(test["p"]),
            verdict(finding, a, b, confidence),
        ])
    header = ["the report's conclusion", "ours, first setting", "ours, second setting",
              f"difference, points [{100 * confidence:g} % interval]", "Welch's t-test", "verdict"]
    seeds = " or ".join(str(n) for n in sorted({len(values) for values in groups.values()}))
    return Table(header, rows, caption=f"{seeds} seeds per setting; a difference with p < {ALPHA} is called real.")
