"""Every setting declared once (helpers.core.config.SETTINGS): its checks, its flags and its table come from there."""
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from helpers import cli
from helpers.core import data
from helpers.core.optim import SCHEDULES, UPDATE_RULES
from helpers.core.config import SETTINGS, TrainConfig, check_config, settings_table
from helpers.errors import ConfigError
from helpers.flags import given_settings

from conftest import record_work

ROOT = Path(__file__).resolve().parent.parent


def test_the_committed_table_of_settings_is_the_declarations():
    assert (ROOT / "docs" / "settings.md").read_text() == settings_table(), \
        "run: .venv/bin/python -m helpers settings > docs/settings.md"


def test_every_setting_is_in_the_table_and_in_trains_help(capsys):
    table = settings_table()
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    shown = capsys.readouterr().out
    for s in SETTINGS.values():
        assert f"| `{s.name}` |" in table
        for flag in s.flag_map():
            assert flag in shown and flag in table


def test_the_choices_of_the_update_rule_and_schedule_are_the_optimizers():
    parser = cli.build_parser()
    train = next(a for a in parser._actions if a.dest is not None and a.choices and "train" in a.choices)
    choices = {a.dest: a.choices for a in train.choices["train"]._actions if a.choices}
    assert tuple(choices["optimizer"]) == UPDATE_RULES and tuple(choices["schedule"]) == SCHEDULES


def outside(s):
    """A value just outside the bounds of s, or None if it has none."""
    if s.at_least is not None:
        return s.at_least - 1
    if s.above is not None:
        return s.above
    if s.at_most is not None:
        return s.at_most + 1
    return s.below


BOUNDED = [s for s in SETTINGS.values() if outside(s) is not None]


@pytest.mark.parametrize("s", BOUNDED, ids=[s.name for s in BOUNDED])
def test_a_value_outside_a_declared_bound_is_refused_naming_the_setting_and_its_bounds(s):
    value = outside(s)
    with pytest.raises(ConfigError) as caught:
        check_config(replace(TrainConfig(), **{s.name: (value,) if s.many else value}))
    assert str(caught.value).startswith(f"{s.name} must ") and s.bounds() in str(caught.value)


@pytest.mark.parametrize("s", BOUNDED, ids=[s.name for s in BOUNDED])
def test_the_command_line_refuses_it_before_any_work_naming_the_flag(s, monkeypatch, capsys):
    work = record_work(monkeypatch, [(data, "load_cifar10"), (cli, "run_experiment")])
    flag = next(flag for flag, sets in s.flag_map().items() if sets in (int, float))  # --sigma, not --init
    value = outside(s)
    assert cli.main(["train", flag, str(int(value) if int in s.types else float(value))]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {flag}: {s.name} must ") and len(err.splitlines()) == 1, err
    assert work == []


@pytest.mark.parametrize("change", [dict(n_batch=np.int64(50)), dict(lam=np.float32(0.01)), dict(hidden=[20, 10]),
                                    dict(n_s=None), dict(init=1e-3), dict(skips=np.bool_(False))])
def test_numpy_numbers_lists_and_none_where_declared_are_taken(change):
    check_config(TrainConfig(**change))


@pytest.mark.parametrize("change, words", [
    (dict(n_batch=50.0), "n_batch must be a whole number >= 1"),
    (dict(cycles=True), "cycles must be a whole number >= 1"),
    (dict(lam=float("inf")), "lam must be >= 0"),
    (dict(hidden=50), "hidden must each be a whole number >= 1"),
    (dict(init="zeros"), "init must be one of he, xavier or a number > 0"),
    (dict(n_batch=None), "n_batch must be a whole number >= 1, got None"),
    (dict(skips="yes"), "skips must be True or False"),
])
def test_a_value_of_another_type_is_refused(change, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(")):
        check_config(TrainConfig(**change))


@pytest.mark.parametrize("argv, expected", [
    (["--bn"], dict(norm="batch")), (["--no-bn"], dict(norm="none")), (["--norm", "layer"], dict(norm="layer")),
    (["--bn-after-relu"], dict(norm_place="after")), (["--norm-place", "after"], dict(norm_place="after")),
    (["--init", "xavier"], dict(init="xavier")), (["--sigma", "0.01"], dict(init=0.01)),
    (["--evals-per-cycle", "3", "--curve-images", "100"], dict(evals_per_cycle=3, curve_images=100)),
])
def test_each_flag_sets_what_its_declaration_says(argv, expected):
    args = cli.build_parser().parse_args(["train", *argv])
    assert given_settings(args, SETTINGS) == expected
