"""The gradient checks of notebook 01 (helpers.report.checks): the textbook check beside the fast one."""

import numpy as np

from helpers.core.data import load_cifar10
from helpers.report import checks


def test_the_textbook_and_the_fast_check_compute_the_same_numerical_gradients(fake_cifar):
    cifar = load_cifar10(fake_cifar, split="small")
    case = checks.Case(n=4, dim=8, hidden=(5,), lam=0.01)
    result = checks.run_case(case, cifar.train.X, cifar.train.y, methods=("textbook", "centered"))
    assert list(result["errors"]) == list(result["seconds"]) == ["textbook", "centered"]
    used = [name for name in result["errors"]["textbook"] if name not in result["unused"]]
    assert max(result["errors"]["textbook"][name] for name in used) < 1e-6
    # Both are centered differences of the same cost: only their rounding differs.
    assert checks.largest_difference(result) < 1e-8
    table = checks.side_by_side(result)
    assert "textbook / centered differences" in table.caption
    assert table.rows[1][1].count(" / ") == 1


def test_largest_difference_finds_one_wrong_entry():
    grads = {"W1": np.zeros((3, 2)), "b1": np.zeros(2)}
    moved = {"W1": np.zeros((3, 2)), "b1": np.array([0.0, -3e-4])}
    result = {"numerical": {"textbook": grads, "centered": moved}}
    assert checks.largest_difference(result) == 3e-4


def test_the_checks_are_made_once_then_recalled_with_their_times(fake_cifar, tmp_path, monkeypatch):
    cifar = load_cifar10(fake_cifar, split="small")
    made = []
    real = checks.run_case
    monkeypatch.setattr(checks, "report_cases", lambda n_full: (checks.Case(3, 8, (4,), 0.0),
                                                                checks.Case(n_full, 16, (4, 4), 0.005)))

    def counting(case, *args, **kwargs):
        made.append(case)
        return real(case, *args, **kwargs)

    monkeypatch.setattr(checks, "run_case", counting)
    first = checks.cached_checks(cifar, 5, tmp_path)
    assert len(made) == 3  # the first case twice (textbook and centered, then centered and forward), the second once
    assert list(first["first"]["errors"]) == ["textbook", "centered"]
    assert 0 <= first["first"]["largest_difference"] < 1e-8
    assert [list(case["errors"]) for case in first["cases"]] == [list(checks.METHODS)] * 2
    again = checks.cached_checks(cifar, 5, tmp_path)
    assert len(made) == 3
    assert again == first  # the times too
    checks.cached_checks(cifar, 6, tmp_path)  # another case: checked anew
    assert len(made) == 6
