"""Every setting of a run, declared once: the table that parsers, filters, sweep files, commands and identity read.

A :class:`Setting` is one value of :class:`training.config.TrainConfig` a user chooses: its type, its default
(per dataset for lr and wd), its flag and the authors' spellings of it, its help, its allowed values or bounds,
its token in file names, whether it is part of a run's identity (the settings hash) and when it matters at all
(``val_fraction`` only with ``--select val``). From :data:`SETTINGS` come ``train_linear.py``'s options
(:func:`add_train_arguments`), the filters of ``report.py``, ``plot_softmax_simplex.py`` and ``runs.py``
(:func:`add_filter_arguments`), the keys and checks of sweep files, the commands that messages suggest
(``training.commands``), run identity and the one validation layer (:func:`check_value` for one value, as a
filter needs; :func:`check_rules` for the rules between the settings of a run to be trained).
Adding a setting is one :func:`register` call (plus the code that uses its value).

No torch (the standard library, and numpy through data.noise): parsing and validation fail before torch loads.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Callable, Iterable, Mapping

from data.noise_types import NOISE_TYPES
from utils import checks
from utils.cli import SEED_ALIASES, LabelAction
from utils.errors import UsageError

OPTIMIZERS = ("sgd", "lbfgs")
SELECTIONS = ("test", "val")
SEEDING_MODES = ("reference", "independent")
CHECKPOINTS = ("best", "last")

# lr, wd per dataset: the recipe's base setting for the paper's datasets (large datasets wd 5e-5,
# small ones 5e-4); CIFAR-10 takes CIFAR-100's; digits and synthetic take values under which SGD
# reaches the regularised optimum (checked against the exact solver in the tests); anything
# else (imagefolder, --features) takes the reference code's defaults, lr 0.1 and wd 5e-4.
DATASET_DEFAULTS: dict[str, tuple[float, float]] = {
    "cifar100": (0.05, 5e-5),
    "caltech256": (0.01, 5e-5),
    "food101": (0.01, 5e-5),
    "caltech101": (0.01, 5e-4),
    "stanfordcars": (0.1, 5e-4),
    "flowers102": (0.05, 5e-4),
    "cifar10": (0.05, 5e-5),
    "digits": (0.1, 1e-2),
    "synthetic": (0.1, 1e-2),
}
FALLBACK_DEFAULTS = (0.1, 5e-4)
PER_DATASET = {"lr": 0, "wd": 1}  # settings whose default is DATASET_DEFAULTS[dataset][index]


def default_lr_wd(dataset: str) -> tuple[float, float]:
    return DATASET_DEFAULTS.get(dataset, FALLBACK_DEFAULTS)


def _always(config) -> bool:
    return True


@dataclasses.dataclass(frozen=True)
class Setting:
    """One run setting. ``default`` None means per dataset (:data:`DATASET_DEFAULTS`); ``labels`` are the
    flag's words for the stored values 0, 1, … (``--which best|last`` stores ``last`` = 0 or 1)."""

    name: str  # the TrainConfig field
    kind: type  # int, float or str (the stored value's type)
    default: object
    flag: str
    help: str
    what: str = ""  # a noun for filters' help ("only runs with this <what>"); default: the help
    aliases: tuple[str, ...] = ()
    choices: tuple | None = None
    labels: tuple[str, ...] | None = None
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    short: str = ""  # prefix of its token in report and figure file names ("" : the value alone)
    identity: str = "hash"  # "hash": in a run's settings hash (where it matters); "key": in its key; "": neither
    per_run: bool = False  # a key setting that each run of a chain has its own value of (η, seed)
    hashed_at_default: bool = True  # False for settings added after runs were stored: the default leaves the hash
    matters: Callable[[object], bool] = _always  # config → whether the value changes anything for that run
    group: str = "optimisation"  # train_linear.py's help section
    metavar: str | None = None
    shared: bool = True  # one value for every stage of a chain (else per stage: --which, PLL's q and k)

    @property
    def key(self) -> str:
        """Its name in sweep files and in argparse's namespace: the flag without dashes (``which``, ``train_batch``)."""
        return self.flag.lstrip("-").replace("-", "_")

    def default_for(self, dataset: str) -> object:
        return default_lr_wd(dataset)[PER_DATASET[self.name]] if self.name in PER_DATASET else self.default

    def display(self, value: object) -> str:
        """The value as its flag takes it (``--which last``, ``--wd 0.0005``)."""
        if self.labels is not None and isinstance(value, int) and 0 <= value < len(self.labels):
            return self.labels[value]
        return f"{value:g}" if isinstance(value, float) else str(value)

    def parse(self, value: object) -> object:
        """A flag's or a sweep file's value as stored (``last`` → 1); a word not among the labels is an error."""
        if self.labels is not None and isinstance(value, str):
            checks.choice(self.flag, value, self.labels)
            return self.labels.index(value)
        return value


SETTINGS: dict[str, Setting] = {}


def register(setting: Setting) -> Setting:
    """Add ``setting`` to the table (a name or flag already there is an error)."""
    if setting.name in SETTINGS or any(s.flag == setting.flag for s in SETTINGS.values()):
        raise ValueError(f"setting {setting.name} ({setting.flag}) is declared twice")
    SETTINGS[setting.name] = setting
    return setting


def _is_val(config) -> bool:
    return config.select == "val"


# Which stages a per-stage setting changes is method knowledge: the methods registry says it.
def _learns_from_a_model(config) -> bool:
    return config.stage.checkpoint_source is not None


def _uses_q(config) -> bool:
    return "q" in config.stage.method.settings


def _is_pll(config) -> bool:
    return "pll_k" in config.stage.method.settings


# fmt: off
# The table. Order matters only for display: help groups, report fields and file-name tokens follow it.
register(Setting("ctype", str, "cc", "--ctype", "noise type (cc: superclass)", choices=NOISE_TYPES, identity="key",
                 group="label noise"))
register(Setting("corruption", float, None, "--corruption", "corruption rate η", low=0.0, high=1.0, identity="key",
                 per_run=True, group="label noise", metavar="ETA"))
register(Setting("seed", int, 0, "--seed", "seed", aliases=SEED_ALIASES, low=0, high=checks.SEED_LIMIT - 1,
                 identity="key", per_run=True, group="label noise", metavar="SEED"))
register(Setting("lr", float, None, "--lr", "learning rate", aliases=("--learning-rate",), low=0.0, low_open=True,
                 short="lr"))
register(Setting("wd", float, None, "--wd", "weight decay λ", aliases=("--weight-decay",), low=0.0, short="wd"))
register(Setting("epochs", int, 200, "--epochs", "epochs", low=1, short="ep"))
register(Setting("train_batch", int, 128, "--train-batch", "training batch size", low=1, short="batch"))
register(Setting("test_batch", int, 200, "--test-batch", "evaluation batch size (changes no number)", low=1,
                 identity=""))
register(Setting("gamma", float, 0.98, "--gamma", "lr × gamma after every epoch", what="gamma (lr × gamma after "
                 "every epoch)", low=0.0, high=1.0, low_open=True, short="gamma"))
register(Setting("momentum", float, 0.9, "--momentum", "SGD momentum", low=0.0, high=1.0, high_open=True,
                 short="momentum"))
register(Setting("optimizer", str, "sgd", "--optimizer", "sgd, or lbfgs: an exact full-batch solve in float64 on "
                 "the CPU", what="optimizer", choices=OPTIMIZERS))
register(Setting("select", str, "test", "--select", "pick the best epoch by test accuracy (the authors') or on a "
                 "validation split of the noisy training set", what="model selection (test or val)",
                 aliases=("--selection",), choices=SELECTIONS, short="select-"))
register(Setting("val_fraction", float, 0.1, "--val-fraction", "validation fraction with --select val",
                 what="validation fraction (with --select val)", low=0.0, high=1.0, low_open=True, high_open=True,
                 short="val", matters=_is_val))
register(Setting("seeding", str, "reference", "--seeding", "reference: every stage draws as the authors' code does "
                 "(same initial weights, students share one batch order); independent: separate streams per stage",
                 what="seeding", choices=SEEDING_MODES, group="stage"))
register(Setting("last", int, 0, "--which", "checkpoint of round t−1 that student t (and PLL) learns from: best or "
                 "last", what="checkpoint the students learnt from", aliases=("--last",), labels=CHECKPOINTS,
                 choices=(0, 1), short="from-", matters=_learns_from_a_model, group="stage", shared=False))
register(Setting("q", float, 0.7, "--q", "generalised cross-entropy exponent of PLL", what="PLL's q", low=0.0,
                 high=1.0, low_open=True, short="q", matters=_uses_q, group="stage", shared=False))
register(Setting("pll_k", int, 2, "--pll-k", "PLL candidate set: the teacher's top-k classes", what="PLL's k",
                 low=1, short="k", matters=_is_pll, group="stage", shared=False, metavar="K"))
# fmt: on

# Settings of the run key rather than of the chain's shared settings: a command gives them one by one.
KEY_SETTINGS = ("ctype", "corruption", "seed")


def chain_settings() -> list[Setting]:
    """The settings a chain's runs take from the command (all but the run key's η and seed)."""
    return [s for s in SETTINGS.values() if s.name not in ("corruption", "seed")]


def identity_settings() -> list[Setting]:
    """The settings that tell runs of one dataset, η and seed apart (the report's setting fields, its filters)."""
    return [s for s in SETTINGS.values() if s.identity and not s.per_run]


def hashed_values(config) -> dict[str, object]:
    """The settings of ``config`` that its settings hash covers: those that change its weights."""
    values = {}
    for setting in SETTINGS.values():
        if setting.identity != "hash" or not setting.matters(config):
            continue
        value = getattr(config, setting.name)
        if setting.hashed_at_default or value != setting.default:
            values[setting.name] = value
    return values


def same_value(have: object, want: object) -> bool:
    """Equality as filters mean it: floats within a relative 1e-9 (values printed with :g read back)."""
    if isinstance(want, float) and isinstance(have, (int, float)) and not isinstance(have, bool):
        return abs(have - want) <= 1e-9 * max(1.0, abs(want))
    return have == want


# -- validation -------------------------------------------------------------------------------------------


def check_value(name: str, value: object, flag: str | None = None) -> object:
    """``value`` checked as setting ``name`` takes it (type, choices, bounds); a UsageError names ``flag``."""
    setting = SETTINGS[name]
    flag = flag or setting.flag
    if setting.choices is not None:
        return checks.choice(flag, value, setting.choices)
    if setting.kind is int:
        low = None if setting.low is None else int(setting.low)
        high = checks.INT64_MAX if setting.high is None else int(setting.high)
        return checks.integer(flag, value, low, high)
    if setting.kind is float and setting.low == 0 and setting.high is None:
        # training runs in float32: an unbounded setting must be a number float32 can hold
        return checks.float32(
            flag, checks.positive(flag, value) if setting.low_open else checks.non_negative(flag, value)
        )
    if setting.kind is float:
        return checks.interval(
            flag, value, setting.low, setting.high, low_open=setting.low_open, high_open=setting.high_open
        )
    if not isinstance(value, setting.kind):
        raise UsageError(f"{flag} must be a {setting.kind.__name__}, got {value!r}")
    return value


def check_rules(values: Mapping[str, object]) -> None:
    """The rules between settings of a run to be trained (a filter selecting runs applies none of them)."""
    if values.get("optimizer") == "lbfgs" and values.get("wd") == 0:
        raise UsageError("--optimizer lbfgs needs --wd > 0: without the ridge the problem may have no minimiser")


# -- command lines ------------------------------------------------------------------------------------------


def _add(parser, setting: Setting, default: object, help: str, **extra) -> None:
    if setting.labels is not None:
        parser.add_argument(setting.flag, choices=setting.labels, default=default, help=help, **extra)
        for alias in setting.aliases:  # the authors' numeric spelling
            parser.add_argument(
                alias,
                dest=setting.key,
                type=int,
                choices=range(len(setting.labels)),
                action=LabelAction,
                labels=setting.labels,
                help=f"the authors' spelling of {setting.flag}: "
                + ", ".join(f"{i} {label}" for i, label in enumerate(setting.labels))
                + f" (default: as {setting.flag})",
            )
        return
    kind = {"type": setting.kind} if setting.choices is None else {"choices": setting.choices}
    if setting.choices is None and setting.metavar is None:
        extra.setdefault("metavar", "VALUE" if setting.kind is float else "N" if setting.kind is int else None)
    elif setting.metavar is not None:
        extra.setdefault("metavar", setting.metavar)
    if extra.get("metavar") is None:
        extra.pop("metavar", None)
    parser.add_argument(setting.flag, *setting.aliases, dest=setting.key, default=default, help=help, **kind, **extra)


def add_train_arguments(
    parser: argparse.ArgumentParser, groups: dict | None = None, skip: Iterable[str] = ("corruption", "seed")
) -> dict:
    """The options of a command that trains runs, one per setting, in their help groups (``groups``: name →
    an argument group already made; the others are made here). Returns the groups."""
    groups = dict(groups or {})
    for setting in SETTINGS.values():
        if setting.name in skip:
            continue
        if setting.group not in groups:
            groups[setting.group] = parser.add_argument_group(setting.group)
        default = None if setting.default is None else setting.display(setting.default)
        default = setting.default if setting.labels is None else default
        help = setting.help + (" (default: per dataset, see README)" if setting.default is None else "")
        _add(groups[setting.group], setting, default, help)
    return groups


def add_filter_arguments(group, skip: Iterable[str] = (), per_dataset: bool = False, absent: str | None = None) -> None:
    """One filter per identity setting: ``--wd 0.01`` keeps only runs trained with that value; absent, the
    dataset's default where such runs are present (or what ``absent`` says). With ``per_dataset``, lr and wd
    also take DATASET=VALUE."""
    for setting in identity_settings():
        if setting.name in skip:
            continue
        if setting.default is None:
            if per_dataset:
                group.add_argument(
                    setting.flag,
                    *setting.aliases,
                    dest=setting.key,
                    nargs="+",
                    default=[],
                    metavar="VALUE",
                    help=f"only runs with this {setting.what or setting.help}: a value, or DATASET=VALUE per "
                    f"dataset (default: {absent or 'the dataset default where present'})",
                )
                continue
            where = "the dataset's default where present"
        else:
            where = f"{setting.display(setting.default)} where present"
        _add(group, setting, None, f"only runs with this {setting.what or setting.help} (default: {absent or where})")


def filter_values(args: argparse.Namespace, skip: Iterable[str] = ()) -> dict[str, object]:
    """Setting name → the value a filter fixes, for every filter given (each checked on its own)."""
    values = {}
    for setting in identity_settings():
        value = getattr(args, setting.key, None)
        if setting.name in skip or value is None or isinstance(value, list):
            continue
        values[setting.name] = check_value(setting.name, setting.parse(value))
    return values


def values_from_args(
    args: argparse.Namespace, dataset: str, skip: Iterable[str] = ("corruption", "seed")
) -> dict[str, object]:
    """Setting name → value for a run of ``dataset``, from a namespace :func:`add_train_arguments` filled."""
    values = {}
    for setting in SETTINGS.values():
        if setting.name in skip:
            continue
        value = getattr(args, setting.key)
        values[setting.name] = setting.default_for(dataset) if value is None else setting.parse(value)
    return values


def setting_flags(config, dataset: str) -> list[str]:
    """The flags that give ``config``'s settings where they differ from ``dataset``'s defaults and matter."""
    tokens: list[str] = []
    for setting in SETTINGS.values():
        if setting.name in KEY_SETTINGS:
            continue
        value = getattr(config, setting.name)
        if value != setting.default_for(dataset) and setting.matters(config):
            tokens += [setting.flag, setting.display(value)]
    return tokens
