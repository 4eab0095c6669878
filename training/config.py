"""The frozen configuration of one run (one head at one stage): its validation, settings hash and key.

A run is identified by its key — dataset, backbone, weights, ctype, η, seed and stage — plus the
hash of every setting that changes its weights (``weight_settings``). The settings themselves — types,
defaults, bounds, flags, identity — are declared in ``training.settings``; configs are validated against
that table here, in one place, whoever builds them (the CLI, a sweep file, a library call): every failure
is a :class:`UsageError` that names the flag. Runs written by earlier versions are read through
:meth:`TrainConfig.from_record`, which fills what they lack with its old meaning.

Standard library only: reports and dry runs use it without torch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

from training.names import safe_name
from training.settings import SETTINGS, check_rules, check_value, hashed_values
from utils.errors import UsageError
from utils.stages import Stage


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    dataset: str
    feature_source: str  # everything that determines the features (data.FeatureSet.source)
    backbone: str  # the feature map: resnet34 …, identity (digits pixels), planted (synthetic), file-<hash>
    weights: str  # the backbone's exact weights, e.g. ResNet34_Weights.IMAGENET1K_V1; none without a network
    ctype: str
    corruption: float
    seed: int
    stage: Stage
    lr: float
    wd: float
    epochs: int = 200
    train_batch: int = 128
    test_batch: int = 200
    gamma: float = 0.98
    momentum: float = 0.9
    optimizer: str = "sgd"
    last: int = 0  # the checkpoint a student learns from: 0 best, 1 last (--which)
    select: str = "test"
    val_fraction: float = 0.1
    q: float = 0.7
    pll_k: int = 2
    seeding: str = "reference"  # training.randomness: the authors' draws, or independent streams
    extra: tuple[tuple[str, object], ...] = ()  # values of settings registered beyond the fields above

    def __getattr__(self, name: str) -> object:
        # Only reached for names that are not fields: a registered setting without a field of its own.
        setting = SETTINGS.get(name)
        if setting is None or name.startswith("_"):
            raise AttributeError(f"TrainConfig has no attribute {name!r}")
        return dict(self.__dict__.get("extra", ())).get(name, setting.default)

    @classmethod
    def build(cls, values: dict[str, object], **fields: object) -> "TrainConfig":
        """A config from setting values (training.settings) and the non-setting ``fields`` (dataset, stage …)."""
        names = {field.name for field in dataclasses.fields(cls)}
        extra = tuple(sorted((k, v) for k, v in values.items() if k not in names))
        return cls(**fields, **{k: v for k, v in values.items() if k in names}, extra=extra)

    def values(self) -> dict[str, object]:
        """Setting name → value, for every setting of the table."""
        return {name: getattr(self, name) for name in SETTINGS}

    # -- validation -------------------------------------------------------------------------------
    def validate(self, num_classes: int | None = None) -> "TrainConfig":
        """Check every setting (and, given the data's K, those that depend on it); returns self."""
        for name, value in self.values().items():
            check_value(name, value)
        check_rules(self.values())
        if self.optimizer == "lbfgs" and self.stage.method.no_objective:
            raise UsageError(
                f"--baselines {self.stage.slug} has no objective to solve with --optimizer lbfgs "
                f"({self.stage.method.no_objective}); train it with --optimizer sgd"
            )
        if num_classes is not None and self.pll_k > num_classes:
            raise UsageError(f"--pll-k must lie in 1..{num_classes} (the number of classes), got {self.pll_k}")
        return self

    # -- stages -----------------------------------------------------------------------------------
    @property
    def is_teacher(self) -> bool:
        return self.stage.is_teacher

    @property
    def is_pll(self) -> bool:
        return self.stage.is_pll

    def with_stage(self, stage: Stage) -> "TrainConfig":
        return dataclasses.replace(self, stage=stage)

    @property
    def depth(self) -> int | None:
        """The ResNet depth of the backbone (the results CSV's Depth column), None for anything else."""
        name = self.backbone
        return int(name[6:]) if name.startswith("resnet") and name[6:].isdigit() else None

    # -- identity ---------------------------------------------------------------------------------
    def weight_settings(self) -> dict[str, object]:
        """Every setting that changes this stage's weights (and, through the shared ones, its teachers')."""
        settings: dict[str, object] = {"feature_source": self.feature_source, "weights": self.weights}
        settings.update(hashed_values(self))
        return settings

    def settings_hash(self) -> str:
        text = json.dumps(self.weight_settings(), sort_keys=True)
        return hashlib.blake2b(text.encode(), digest_size=4).hexdigest()

    def key(self) -> tuple:
        """(dataset, backbone, weights, ctype, η, seed, stage, settings hash): what makes a run this run."""
        return (
            self.dataset,
            self.backbone,
            self.weights,
            self.ctype,
            self.corruption,
            self.seed,
            self.stage.slug,
            self.settings_hash(),
        )

    def run_prefix(self) -> str:
        return f"{self.dataset}-{self.backbone}-{self.ctype}-eta{self.corruption:g}-seed{self.seed}-{self.stage.slug}"

    def run_name(self) -> str:
        """The prefix and settings hash, kept to the store's safe alphabet (training.names)."""
        return safe_name(f"{self.run_prefix()}-{self.settings_hash()}")

    # -- records ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, object]:
        values = dataclasses.asdict(self)
        values["stage"] = self.stage.slug
        values.update(values.pop("extra"))
        return values

    @classmethod
    def from_dict(cls, values: dict[str, object]) -> "TrainConfig":
        """A config from :meth:`to_dict`'s output; ``ValueError`` names a missing or wrong field."""
        names = {field.name for field in dataclasses.fields(cls)}
        required = {
            field.name
            for field in dataclasses.fields(cls)
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
        }
        missing = sorted(required - set(values))
        if missing:
            raise ValueError(f"its config lacks {', '.join(missing)}")
        kept = {key: value for key, value in values.items() if key in names and key != "extra"}
        kept["stage"] = Stage.parse(kept["stage"])
        extra = tuple(sorted((k, v) for k, v in values.items() if k in SETTINGS and k not in names))
        config = cls(**kept, extra=extra)
        try:
            config.validate()
        except UsageError as error:
            raise ValueError(f"its config is invalid ({error})") from None
        return config

    @classmethod
    def from_record(cls, values: dict[str, object], version: int) -> "TrainConfig":
        """A config as stored by a run of format ``version``; runs before format 2 lack backbone and
        seeding (they were drawn from independent streams) and stored the weights flag, not its name."""
        if not isinstance(values, dict):
            raise ValueError("its config is not a JSON object")
        if version < 2:
            values = dict(values)
            backbone, weights = describe_source(str(values.get("feature_source", "")), values.get("depth"))
            values.setdefault("seeding", "independent")
            values["backbone"], values["weights"] = backbone, weights
        return cls.from_dict(values)


def describe_source(source: str, depth: object = None) -> tuple[str, str]:
    """(backbone, weights) of a feature source string as this project writes them (see data/)."""
    if source.startswith("sklearn-digits/"):
        return "identity", "none"
    if source.startswith("synthetic("):
        return "planted", "none"
    if source.startswith("file:"):
        digest = source.rpartition("#")[2]
        return f"file-{digest[:8]}", "none"
    parts = source.split("/")
    if len(parts) >= 3 and parts[1].startswith("resnet"):
        return parts[1], parts[2]
    return (f"resnet{depth}" if isinstance(depth, int) else "unknown"), "unknown"
