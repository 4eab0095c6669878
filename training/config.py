"""The frozen configuration of one run (one head at one stage): its validation, settings hash and key.

A run is identified by its key — dataset, backbone, weights, ctype, η, seed and stage — plus the
hash of every setting that changes its weights (``weight_settings``). Configs are validated here,
in one place, whoever builds them (the CLI, a sweep file, a library call): every failure is a
:class:`UsageError` that names the flag. Runs written by earlier versions are read through
:meth:`TrainConfig.from_record`, which fills what they lack with its old meaning.

Standard library only: reports and dry runs use it without torch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

from utils import checks
from utils.errors import UsageError
from utils.stages import Stage

NOISE_TYPES = ("sym", "asym", "cc")
OPTIMIZERS = ("sgd", "lbfgs")
SELECTIONS = ("test", "val")
SEEDING_MODES = ("reference", "independent")

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

# The flag that sets each field, for error messages.
FLAGS = {
    "lr": "--lr",
    "wd": "--wd",
    "epochs": "--epochs",
    "train_batch": "--train-batch",
    "test_batch": "--test-batch",
    "gamma": "--gamma",
    "momentum": "--momentum",
    "optimizer": "--optimizer",
    "last": "--which",
    "select": "--select",
    "val_fraction": "--val-fraction",
    "q": "--q",
    "pll_k": "--pll-k",
    "seeding": "--seeding",
    "corruption": "--corruption",
    "seed": "--seed",
    "ctype": "--ctype",
}


def default_lr_wd(dataset: str) -> tuple[float, float]:
    return DATASET_DEFAULTS.get(dataset, FALLBACK_DEFAULTS)


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

    # -- validation -------------------------------------------------------------------------------
    def validate(self, num_classes: int | None = None) -> "TrainConfig":
        """Check every setting (and, given the data's K, those that depend on it); returns self."""
        checks.choice("--ctype", self.ctype, NOISE_TYPES)
        checks.interval("--corruption", self.corruption, 0.0, 1.0)
        checks.seed("--seed", self.seed)
        checks.float32("--lr", checks.positive("--lr", self.lr))
        checks.float32("--wd", checks.non_negative("--wd", self.wd))
        checks.integer("--epochs", self.epochs, 1)
        checks.integer("--train-batch", self.train_batch, 1)
        checks.integer("--test-batch", self.test_batch, 1)
        checks.interval("--gamma", self.gamma, 0.0, 1.0, low_open=True)
        checks.interval("--momentum", self.momentum, 0.0, 1.0, high_open=True)
        checks.choice("--optimizer", self.optimizer, OPTIMIZERS)
        checks.choice("--which", self.last, (0, 1))
        checks.choice("--select", self.select, SELECTIONS)
        checks.interval("--val-fraction", self.val_fraction, 0.0, 1.0, low_open=True, high_open=True)
        checks.interval("--q", self.q, 0.0, 1.0, low_open=True)
        checks.integer("--pll-k", self.pll_k, 1)
        checks.choice("--seeding", self.seeding, SEEDING_MODES)
        if self.optimizer == "lbfgs" and self.wd == 0:
            raise UsageError("--optimizer lbfgs needs --wd > 0: without the ridge the problem may have no minimiser")
        if self.optimizer == "lbfgs" and self.stage.name == "boot-soft":
            raise UsageError(
                "--baselines boot-soft has no objective to solve with --optimizer lbfgs (its target holds "
                "the model's own softmax as a constant); train it with --optimizer sgd"
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
        settings: dict[str, object] = {
            "feature_source": self.feature_source,
            "weights": self.weights,
            "lr": self.lr,
            "wd": self.wd,
            "epochs": self.epochs,
            "train_batch": self.train_batch,
            "gamma": self.gamma,
            "momentum": self.momentum,
            "optimizer": self.optimizer,
            "select": self.select,
            "seeding": self.seeding,
        }
        if self.select == "val":
            settings["val_fraction"] = self.val_fraction
        if self.stage.learns_from is not None or self.stage.name == "fc-est":
            settings["last"] = self.last  # the checkpoint of the stage it learns from
        if self.is_pll:
            settings.update(q=self.q, pll_k=self.pll_k)
        if self.stage.name == "gce":
            settings["q"] = self.q
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
        return f"{self.run_prefix()}-{self.settings_hash()}"

    # -- records ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, object]:
        values = dataclasses.asdict(self)
        values["stage"] = self.stage.slug
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
        kept = {key: value for key, value in values.items() if key in names}
        kept["stage"] = Stage.parse(kept["stage"])
        config = cls(**kept)
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


def check_settings(values: dict[str, object]) -> None:
    """Validate setting values given on their own (filters of reports): each as TrainConfig would check it."""
    template = TrainConfig(
        dataset="",
        feature_source="",
        backbone="",
        weights="",
        ctype="cc",
        corruption=0.0,
        seed=0,
        stage=Stage.teacher(),
        lr=0.1,
        wd=0.0,
    )
    dataclasses.replace(template, **values).validate()


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
