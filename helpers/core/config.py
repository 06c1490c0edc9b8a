"""The settings of a training run, each declared once, and their checks.

TrainConfig's every field is declared with setting(): its group, its help,
its bounds or choices, its flags. From those declarations (SETTINGS) come the
command line's flags (helpers.flags), the checks of check_config, the
search's searchable settings (helpers.search) and the table of
docs/settings.md (settings_table). A run is one flat, plain value: to_dict
gives its JSON, which keys the cache.
"""

import math
import numbers
import typing
from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np

from ..errors import ConfigError
from .network import INITS, NORM_PLACES, NORMS, check_options
from .optim import RMSPROP_RHO, SCHEDULES, UPDATE_RULES, check_schedule


GROUPS = {
    "model": "the network: its layers, their normalization, initialization and dropout",
    "update rule": "the cost and how each mini-batch moves the parameters",
    "schedule": "the learning rate over the steps, and how long training lasts",
    "augmentation": "random changes of the training images",
    "evaluation": "how the accuracies and training curves are measured",
    "instrumentation": "what is recorded besides the accuracies",
    "run": "what makes a run repeatable, and the code path it takes",
}
"""The groups of settings, in the order --help and docs/settings.md list them."""


@dataclass(frozen=True)
class Setting:
    """One field of TrainConfig as declared: what it means, the values it takes, its flags.

    group: one of GROUPS. help: what it is, as --help and docs/settings.md say.
    at_least, above, at_most, below: bounds of a number (of each item of a
    tuple), None for none. choices: the words a str setting takes. flags:
    {flag: what it sets}, either a type (the flag takes a value: int, float,
    str) or a constant (the flag takes none and sets the setting to it);
    None for the usual one, --name (for a bool, --name sets True). search:
    whether the search may draw it (numbers only).
    name, types (the types of a value, NoneType if None is allowed), many
    (a tuple of such values, as hidden) and default are read from the field.
    """

    group: str
    help: str
    at_least: float | None = None
    above: float | None = None
    at_most: float | None = None
    below: float | None = None
    choices: tuple = ()
    flags: dict | None = None
    search: bool = True
    name: str = ""
    types: tuple = ()
    many: bool = False
    default: object = None

    def bounds(self):
        """The bounds in words: "in [0, 1)", ">= 1", "> 0", or "" for none."""
        low = self.at_least if self.at_least is not None else self.above
        high = self.at_most if self.at_most is not None else self.below
        closed_low, closed_high = self.at_least is not None, self.at_most is not None
        if low is not None and high is not None:
            return f"in {'[' if closed_low else '('}{low:g}, {high:g}{']' if closed_high else ')'}"
        if low is not None:
            return f"{'>=' if closed_low else '>'} {low:g}"
        if high is not None:
            return f"{'<=' if closed_high else '<'} {high:g}"
        return ""

    def allowed(self):
        """The values it takes, in words: "a number in [0, 1)", "one of he, xavier or a number > 0"."""
        words = []
        if str in self.types:
            words.append(f"one of {', '.join(self.choices)}")
        if bool in self.types:
            words.append("True or False")
        if int in self.types and float not in self.types:
            words.append(f"a whole number {self.bounds()}".rstrip())
        if float in self.types:  # bounds say it is a number: "momentum must be in (0, 1)"
            alone = len(words) == 0 and self.types in ((float,), (float, type(None)))
            words.append(self.bounds() if alone and self.bounds() else f"a number {self.bounds()}".rstrip())
        if type(None) in self.types:
            words.append("None")
        return " or ".join(words)

    def flag_map(self):
        """{flag: what it sets}, as in flags, with the usual --name filled in."""
        if self.flags is not None:
            return self.flags
        usual = True if bool in self.types else next(t for t in self.types if t is not type(None))
        return {f"--{self.name.replace('_', '-')}": usual}


def setting(default, group, help, **values):
    """A field of TrainConfig and its declaration (see Setting), e.g. `lam: float = setting(0.005, ...)`."""
    if group not in GROUPS:
        raise ValueError(f"Unknown group {group!r} of a setting; choose one of {', '.join(GROUPS)}.")
    return field(default=default, metadata={"setting": Setting(group, help, **values)})


@dataclass
class TrainConfig:
    """Everything that defines a training run; the defaults are the report's.

    Each field declares its meaning, its values and its flags once (see
    setting and Setting): the command line, the checks, the search and
    docs/settings.md read SETTINGS. A run is one flat, plain value: to_dict
    gives its JSON, which keys the cache.
    """

    hidden: tuple[int, ...] = setting((50, 50), "model", "the hidden widths, input side first", at_least=1)
    norm: str = setting("batch", "model", "the normalization of every hidden layer: none, batch or layer",
                        choices=NORMS, flags={"--norm": str, "--bn": "batch", "--no-bn": "none"})
    lam: float = setting(0.005, "update rule", "the L2 weight lambda", at_least=0)
    n_batch: int = setting(100, "update rule", "images per mini-batch", at_least=1)
    label_smoothing: float = setting(0.0, "update rule", "label smoothing eps (Szegedy et al., 2016): the training"
                                                         " loss's target is (1 - eps) one-hot + eps / K; the"
                                                         " curves' loss stays the plain cross-entropy",
                                     at_least=0, below=1)
    eta_min: float = setting(1e-5, "schedule", "the lowest learning rate", above=0)
    eta_max: float = setting(1e-1, "schedule", "the highest learning rate", above=0)
    n_s: int | None = setting(None, "schedule", "steps per half cycle; None: five epochs, 5 n_train // n_batch,"
                                                " 2250 in the report", at_least=1)
    cycles: int = setting(2, "schedule", "learning-rate cycles, each of 2 n_s steps", at_least=1)
    init: str | float = setting("he", "model", "the weights' initialization: he, xavier, or every layer's"
                                               " standard deviation sigma", choices=INITS, above=0,
                                flags={"--init": str, "--sigma": float})
    zca: float = setting(0.0, "model", "ZCA whitening of the images before the first layer, with this eps added to"
                                        " their covariance's eigenvalues (which sum to 3072), folded into W1 after"
                                        " training (helpers.core.whiten); 0: none", at_least=0)
    alpha: float = setting(0.9, "model", "weight of the old value in BN's running averages", at_least=0, below=1)
    seed: int = setting(0, "run", "seeds the initialization, the batches, dropout and augmentation", at_least=0,
                        search=False)
    dropout: float = setting(0.0, "model", "inverted dropout of every hidden unit in training, with this"
                                           " probability", at_least=0, below=1)
    norm_place: str = setting("before", "model", "the normalization before the ReLU (the report's) or after it",
                              choices=NORM_PLACES, flags={"--norm-place": str, "--bn-after-relu": "after"})
    skips: bool = setting(False, "model", "skip connections between hidden layers of equal width")
    optimizer: str = setting("sgd", "update rule", "the update rule, see helpers.core.optim", choices=UPDATE_RULES)
    momentum: float = setting(0.9, "update rule", "mu of momentum and nesterov", above=0, below=1)
    rmsprop_rho: float = setting(RMSPROP_RHO, "update rule", "rho of rmsprop: the decay rate of its average of"
                                                             " squared gradients", at_least=0, below=1)
    schedule: str = setting("cyclical", "schedule", "the learning rate: the report's triangle from eta_min to"
                                                    " eta_max and back, eta_max times step_gamma every n_s steps,"
                                                    " or a cosine from eta_max to eta_min; each snapshots every"
                                                    " 2 n_s steps", choices=SCHEDULES)
    step_gamma: float = setting(0.1, "schedule", "the step schedule's decay factor", above=0, at_most=1)
    warmup: int = setting(0, "schedule", "steps of linear warm-up before the cosine schedule", at_least=0)
    flip: bool = setting(False, "augmentation", "mirror each training image left to right with probability 1/2")
    translate: int = setting(0, "augmentation", "move each training image by up to this many pixels each way",
                             at_least=0, at_most=31)
    brightness: float = setting(0.0, "augmentation", "add a random offset in +- this to each training image,"
                                                     " on the [0, 1] scale", at_least=0, below=1)
    contrast: float = setting(0.0, "augmentation", "scale each training image around its mean by a random factor"
                                                   " in 1 +- this", at_least=0, below=1)
    tta: bool = setting(False, "evaluation", "test-time augmentation: the final accuracies average each image's"
                                             " and its mirror's softmax", flags={"--tta": True, "--no-tta": False})
    precise_bn: int = setting(0, "evaluation", "batches from which PreciseBN recomputes BN's statistics after"
                                               " training; 0: keep the running averages", at_least=0)
    evals_per_cycle: int = setting(10, "evaluation", "evaluations of the training curves per cycle", at_least=1)
    curve_images: int | None = setting(10_000, "evaluation", "the training curve is measured on the first this"
                                                             " many training images (a fixed random sample);"
                                                             " None: all", at_least=1)
    layer_stats: bool = setting(False, "instrumentation", "also record what each layer does to a probe batch at"
                                                          ' every evaluation, into history["layers"]; training is'
                                                          " unchanged, bit for bit")
    textbook: bool = setting(False, "run", "train with the plain code of layers.py and network.py instead of the"
                                           " fast path of fast.py: the same math, slower")

    def to_dict(self):
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        return d


def declared(config_class):
    """{name: Setting} of every field of config_class (TrainConfig), in order, with name, types, many, default."""
    hints = typing.get_type_hints(config_class)
    found = {}
    for f in fields(config_class):
        hint = hints[f.name]
        many = typing.get_origin(hint) is tuple  # tuple[int, ...]: a tuple of ints
        types = typing.get_args(hint)[:1] if many else typing.get_args(hint) or (hint,)
        found[f.name] = replace(f.metadata["setting"], name=f.name, types=types, many=many, default=f.default)
    return found


SETTINGS = declared(TrainConfig)
"""Every setting of a run, declared once: {name: Setting}."""


def settings_table():
    """docs/settings.md: every setting of SETTINGS by group, as Markdown (`python -m helpers settings`)."""
    lines = ["# The settings of a training run", "",
             "Every field of `TrainConfig` (helpers/core/config.py), with the flags of `python -m helpers train`",
             "that set it. This page is written by `python -m helpers settings > docs/settings.md` from the",
             "declaration itself, and a test holds it to it. The defaults are the report's; `--preset best`",
             "starts from notebook 06's best model instead. `python -m helpers search --param` takes every",
             "setting whose values are numbers, but the seed.", ""]
    for group, about in GROUPS.items():
        lines += [f"## {group}", "", f"{about[0].upper()}{about[1:]}.", "",
                  "| setting | flags | default | values | meaning |", "| --- | --- | --- | --- | --- |"]
        for s in (s for s in SETTINGS.values() if s.group == group):
            flags = ", ".join(f"`{flag}`" if isinstance(sets, type) else f"`{flag}` ({sets})"
                              for flag, sets in s.flag_map().items())
            default = list(s.default) if s.many else s.default
            values = f"each {s.allowed()}" if s.many else s.allowed()
            lines.append(f"| `{s.name}` | {flags} | `{default!r}` | {values} | {s.help} |")
        lines.append("")
    return "\n".join(lines)


PRESETS = {
    "report": TrainConfig(),
    "best": TrainConfig(hidden=(1024, 512, 256), dropout=0.2, lam=0.002, flip=True, translate=2, n_s=4500, cycles=4,
                        tta=True, zca=3.0),
}
"""Named configurations: the report's network, and the best model of notebook 06 (python -m helpers train --preset best)."""


def check_config(config, n_train=None):
    """Refuse settings that cannot work, before any work is done.

    First each setting alone against its declaration (type, choices,
    bounds), then the rules that tie settings together. n_train, the number
    of training images, bounds n_batch when it is known.
    """
    for s in SETTINGS.values():
        check_setting(s, getattr(config, s.name))
    c = config
    if not c.eta_min <= c.eta_max:
        raise ConfigError(f"Need 0 < eta_min <= eta_max, got eta_min={c.eta_min}, eta_max={c.eta_max}.")
    if n_train is not None and c.n_batch > n_train:
        raise ConfigError(f"n_batch ({c.n_batch}) is larger than the number of training images ({n_train}).")
    if c.n_s is not None or n_train is not None:
        n_s = half_cycle_steps(c, n_train)
        check_schedule(c.schedule, 2 * n_s * c.cycles, c.eta_min, c.eta_max, n_s, c.step_gamma, None, c.warmup)
    else:  # the run's length is known only with the data: check all but the warm-up's fit, which train() checks
        check_schedule(c.schedule, c.warmup + 1, c.eta_min, c.eta_max, 1, c.step_gamma, None, c.warmup)
    check_options([1, *c.hidden, 1], c.norm, c.dropout, c.norm_place, c.skips)
    if c.zca and (c.brightness or c.contrast):
        raise ConfigError(f"The brightness and contrast jitter change raw pixels, and ZCA whitening (zca={c.zca}) "
                          "has mixed them: set zca to 0, or brightness and contrast to 0.")
    if c.precise_bn and c.norm != "batch":
        raise ConfigError(f"precise_bn recomputes batch normalization's statistics: it needs norm 'batch', "
                          f"got {c.norm!r}.")


def check_setting(s, value):
    """Refuse a value that its declaration s (a Setting) does not take: of another type, choice or bounds."""
    if value is None and type(None) in s.types:
        return
    whole = list(value) if s.many and isinstance(value, (tuple, list)) else value
    for x in whole if isinstance(whole, list) else [None if s.many else value]:
        kinds = [t for t in s.types if is_a(x, t)]
        if not kinds or not (x in s.choices if str in kinds else within(s, x)):
            raise ConfigError(f"{s.name} must {'each ' if s.many else ''}be {s.allowed()}, got {whole!r}"
                              f" ({s.help}).")


def is_a(x, kind):
    """Whether x is a value of kind (bool, int, float or str): a bool is not a number; a float must be finite."""
    if kind is bool:
        return isinstance(x, (bool, np.bool_))
    if isinstance(x, (bool, np.bool_)):
        return False
    if kind is int:
        return isinstance(x, numbers.Integral)
    if kind is float:
        return isinstance(x, numbers.Real) and math.isfinite(x)
    return isinstance(x, kind)


def within(s, x):
    """Whether x is within the bounds of s (True for a bool)."""
    return isinstance(x, (bool, np.bool_)) or (
        (s.at_least is None or x >= s.at_least) and (s.above is None or x > s.above)
        and (s.at_most is None or x <= s.at_most) and (s.below is None or x < s.below))


def half_cycle_steps(config, n_train):
    """n_s: the configured value, or five epochs as in the report."""
    return config.n_s if config.n_s is not None else max(1, 5 * n_train // config.n_batch)
