"""The command line's flags of the declared settings (helpers.core.config.SETTINGS), and the flag to blame.

add_settings makes the flags of any settings from their declaration,
given_settings reads back those typed, and check_flags names the flag
behind a refused setting: helpers.cli uses them for every command.
"""

import argparse
import math

from .core.config import GROUPS, SETTINGS
from .errors import ConfigError


class Parser(argparse.ArgumentParser):
    """argparse whose mistakes end like every other error: one `error:` line, exit code 2."""

    def error(self, message):
        raise ConfigError(f"{message} (see `{self.prog} --help`)")


def number(text):
    """A float flag. float() alone would take "nan" and "inf", which no setting can use."""
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


FLAG_TYPES = {int: int, float: number, str: str}
"""The argparse type of a flag that takes a value of each type (number refuses nan and inf)."""


def add_settings(p, names, defaults, label):
    """Flags for the settings of names (fields of TrainConfig), as SETTINGS declares them, under their groups.

    Every flag has its own dest (--no-bn: no_bn) and defaults to None, "not
    given": given_settings reads what was typed, and defaults (a TrainConfig)
    holds the rest; --help shows its values after label ("report: 0.005").
    The flags of one setting exclude each other (--bn and --no-bn).
    """
    groups = {}
    for name in sorted(names, key=lambda name: list(GROUPS).index(SETTINGS[name].group)):
        s = SETTINGS[name]
        if s.group not in groups:
            groups[s.group] = p.add_argument_group(s.group, GROUPS[s.group])
        exclusive = groups[s.group].add_mutually_exclusive_group()
        for i, (flag, sets) in enumerate(s.flag_map().items()):
            words = f"{s.help} ({label}: {shown_value(getattr(defaults, name))})" if i == 0 else \
                f"sets {name} to {'this value' if isinstance(sets, type) else sets} instead"
            if isinstance(sets, type):
                exclusive.add_argument(flag, dest=dest_of(flag), type=FLAG_TYPES[sets], nargs="*" if s.many else None,
                                       choices=s.choices if sets is str else None, help=words)
            else:
                exclusive.add_argument(flag, dest=dest_of(flag), action="store_const", const=sets, help=words)


def given_settings(args, names):
    """{name: value} of the settings of names whose flags were given (hidden as a tuple)."""
    given = {}
    for name in names:
        for flag in SETTINGS[name].flag_map():
            value = getattr(args, dest_of(flag))
            if value is not None:
                given[name] = tuple(value) if SETTINGS[name].many else value
    return given


def dest_of(flag):
    return flag[2:].replace("-", "_")


def shown_value(value):
    """A setting's value as --help shows it: "50 50", "on", "off", "0.005"."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return shown(value) if isinstance(value, tuple) else str(value)


def check_flags(args, check):
    """Return check(args); if it refuses a setting (ConfigError), name the flag to blame.

    The core's check functions name settings ("n_batch must be >= 1"), not
    flags, and a rule on two settings ("Need eta_min <= eta_max") cannot
    know which one the user got wrong. The flag to blame is the first one
    given whose default, put back in its place, changes the complaint.
    args.parser is the command's parser, which knows the defaults.
    """
    try:
        return check(args)
    except ConfigError as err:
        for name, value in vars(args).items():
            default = args.parser.get_default(name)
            if value == default:
                continue
            try:
                check(argparse.Namespace(**{**vars(args), name: default}))
            except ConfigError as other:
                if str(other) == str(err):
                    continue
            raise ConfigError(f"{flag_name(args.parser, name)}: {err}") from None
        raise


def flag_name(parser, dest):
    """The flag of parser that sets dest: each flag has a dest of its own (add_settings)."""
    for action in parser._actions:
        if action.dest == dest and action.option_strings:
            return action.option_strings[0]
    return f"--{dest.replace('_', '-')}"


def shown(widths):
    """Hidden widths as they were typed: "100 100", or "(none)"."""
    return " ".join(map(str, widths)) or "(none)"
