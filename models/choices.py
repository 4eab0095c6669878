"""Backbone choices, resolved without torch or torchvision (the CLI's flags and dry runs need them at start-up).

A backbone is a torchvision classification architecture (``--arch``; ``--depth 18|34|50`` means
``resnet18/34/50``, and ``resnet34`` is the default), its weights (``--weights default|none|NAME``),
the image transform (``--transform paper|weights``) and the extraction precision
(``--precision auto|fp16|bf16|fp32``). :func:`backbone_spec` resolves the first three into the exact
names that key the feature cache and the run store; :data:`CATALOG` lists what torchvision
0.29.1 ships, so that resolving a name needs no import of torchvision (for an architecture the
catalog lacks, a newer torchvision is asked instead). ``tests/test_backbones.py`` checks the
catalog against the installed torchvision.

Transforms:
- ``paper``: the paper's ``Resize((224, 224))`` (the whole image squeezed to a square, aspect ratio
  not kept, nothing cropped) + ImageNet mean/std. The default for the ResNets (``resnet18`` …
  ``resnet152``), for fidelity.
- ``weights``: the weights' own ``transforms()``: resize the shorter side to ``resize`` (aspect
  ratio kept), centre-crop ``crop`` × ``crop``, the weights' mean/std. The default for every other
  architecture; with ``--weights none`` the architecture's DEFAULT weights' transforms are used.
"""

from __future__ import annotations

import dataclasses
import difflib
import re

DEPTHS = (18, 34, 50)
DEFAULT_ARCH = "resnet34"
WEIGHT_KEYWORDS = ("default", "none")
TRANSFORM_CHOICES = ("paper", "weights")
PRECISION_CHOICES = ("auto", "fp16", "bf16", "fp32")
RANDOM_INIT_SEED = 0
RANDOM_INIT_NAME = f"random-init-seed{RANDOM_INIT_SEED}"
PAPER_SIZE = 224
PAPER_TRANSFORM_ID = "rgb|resize-224x224-bilinear-antialias|tensor|imagenet-mean-std"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Architectures whose input size is fixed by their weights (a ViT's position embeddings).
FIXED_INPUT = re.compile(r"vit_")
PAPER_FAMILY = re.compile(r"resnet\d+")

# arch: (weights enum, DEFAULT member, {member: (resize, crop, interpolation[, mean, std])}); mean and std
# are ImageNet's unless given. Written from torchvision 0.29.1's weights enums (``list_models``,
# ``get_model_weights``, ``transforms()``).
CATALOG: dict[str, tuple[str, str, dict[str, tuple]]] = {
    "alexnet": ("AlexNet_Weights", "IMAGENET1K_V1", {"IMAGENET1K_V1": (256, 224, "bilinear")}),
    "convnext_base": ("ConvNeXt_Base_Weights", "IMAGENET1K_V1", {"IMAGENET1K_V1": (232, 224, "bilinear")}),
    "convnext_large": ("ConvNeXt_Large_Weights", "IMAGENET1K_V1", {"IMAGENET1K_V1": (232, 224, "bilinear")}),
    "convnext_small": ("ConvNeXt_Small_Weights", "IMAGENET1K_V1", {"IMAGENET1K_V1": (230, 224, "bilinear")}),
    "convnext_tiny": ("ConvNeXt_Tiny_Weights", "IMAGENET1K_V1", {"IMAGENET1K_V1": (236, 224, "bilinear")}),
    "densenet121": ("DenseNet121_Weights", "IMAGENET1K_V1", {"IMAGENET1K_V1": (256, 224, "bilinear")}),
    "densenet161": ("DenseNet161_Weights", "IMAGENET1K_V1", {"IMAGENET1K_V1": (256, 224, "bilinear")}),
    "densenet169": ("DenseNet169_Weights", "IMAGENET1K_V1", {"IMAGENET1K_V1": (256, 224, "bilinear")}),
    "densenet201": ("DenseNet201_Weights", "IMAGENET1K_V1", {"IMAGENET1K_V1": (256, 224, "bilinear")}),
    "efficientnet_b0": ("EfficientNet_B0_Weights", "IMAGENET1K_V1", {"IMAGENET1K_V1": (256, 224, "bicubic")}),
    "efficientnet_b1": (
        "EfficientNet_B1_Weights",
        "IMAGENET1K_V2",
        {
            "IMAGENET1K_V1": (256, 240, "bicubic"),
            "IMAGENET1K_V2": (255, 240, "bilinear"),
        },
    ),
    "efficientnet_b2": ("EfficientNet_B2_Weights", "IMAGENET1K_V1", {"IMAGENET1K_V1": (288, 288, "bicubic")}),
    "efficientnet_b3": ("EfficientNet_B3_Weights", "IMAGENET1K_V1", {"IMAGENET1K_V1": (320, 300, "bicubic")}),
    "efficientnet_b4": ("EfficientNet_B4_Weights", "IMAGENET1K_V1", {"IMAGENET1K_V1": (384, 380, "bicubic")}),
    "efficientnet_b5": ("EfficientNet_B5_Weights", "IMAGENET1K_V1", {"IMAGENET1K_V1": (456, 456, "bicubic")}),
    "efficientnet_b6": ("EfficientNet_B6_Weights", "IMAGENET1K_V1", {"IMAGENET1K_V1": (528, 528, "bicubic")}),
    "efficientnet_b7": ("EfficientNet_B7_Weights", "IMAGENET1K_V1", {"IMAGENET1K_V1": (600, 600, "bicubic")}),
    "efficientnet_v2_l": (
        "EfficientNet_V2_L_Weights",
        "IMAGENET1K_V1",
        {
            "IMAGENET1K_V1": (480, 480, "bicubic", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
        },
    ),
    "efficientnet_v2_m": ("EfficientNet_V2_M_Weights", "IMAGENET1K_V1", {"IMAGENET1K_V1": (480, 480, "bilinear")}),
    "efficientnet_v2_s": ("EfficientNet_V2_S_Weights", "IMAGENET1K_V1", {"IMAGENET1K_V1": (384, 384, "bilinear")}),
    "googlenet": ("GoogLeNet_Weights", "IMAGENET1K_V1", {"IMAGENET1K_V1": (256, 224, "bilinear")}),
    "inception_v3": ("Inception_V3_Weights", "IMAGENET1K_V1", {"IMAGENET1K_V1": (342, 299, "bilinear")}),
    "maxvit_t": ("MaxVit_T_Weights", "IMAGENET1K_V1", {"IMAGENET1K_V1": (224, 224, "bicubic")}),
    "mnasnet0_5": ("MNASNet0_5_Weights", "IMAGENET1K_V1", {"IMAGENET1K_V1": (256, 224, "bilinear")}),
    "mnasnet0_75": ("MNASNet0_75_Weights", "IMAGENET1K_V1", {"IMAGENET1K_V1": (232, 224, "bilinear")}),
    "mnasnet1_0": ("MNASNet1_0_Weights", "IMAGENET1K_V1", {"IMAGENET1K_V1": (256, 224, "bilinear")}),
    "mnasnet1_3": ("MNASNet1_3_Weights", "IMAGENET1K_V1", {"IMAGENET1K_V1": (232, 224, "bilinear")}),
    "mobilenet_v2": (
        "MobileNet_V2_Weights",
        "IMAGENET1K_V2",
        {
            "IMAGENET1K_V1": (256, 224, "bilinear"),
            "IMAGENET1K_V2": (232, 224, "bilinear"),
        },
    ),
    "mobilenet_v3_large": (
        "MobileNet_V3_Large_Weights",
        "IMAGENET1K_V2",
        {
            "IMAGENET1K_V1": (256, 224, "bilinear"),
            "IMAGENET1K_V2": (232, 224, "bilinear"),
        },
    ),
    "mobilenet_v3_small": ("MobileNet_V3_Small_Weights", "IMAGENET1K_V1", {"IMAGENET1K_V1": (256, 224, "bilinear")}),
    "regnet_x_16gf": (
        "RegNet_X_16GF_Weights",
        "IMAGENET1K_V2",
        {
            "IMAGENET1K_V1": (256, 224, "bilinear"),
            "IMAGENET1K_V2": (232, 224, "bilinear"),
        },
    ),
    "regnet_x_1_6gf": (
        "RegNet_X_1_6GF_Weights",
        "IMAGENET1K_V2",
        {
            "IMAGENET1K_V1": (256, 224, "bilinear"),
            "IMAGENET1K_V2": (232, 224, "bilinear"),
        },
    ),
    "regnet_x_32gf": (
        "RegNet_X_32GF_Weights",
        "IMAGENET1K_V2",
        {
            "IMAGENET1K_V1": (256, 224, "bilinear"),
            "IMAGENET1K_V2": (232, 224, "bilinear"),
        },
    ),
    "regnet_x_3_2gf": (
        "RegNet_X_3_2GF_Weights",
        "IMAGENET1K_V2",
        {
            "IMAGENET1K_V1": (256, 224, "bilinear"),
            "IMAGENET1K_V2": (232, 224, "bilinear"),
        },
    ),
    "regnet_x_400mf": (
        "RegNet_X_400MF_Weights",
        "IMAGENET1K_V2",
        {
            "IMAGENET1K_V1": (256, 224, "bilinear"),
            "IMAGENET1K_V2": (232, 224, "bilinear"),
        },
    ),
    "regnet_x_800mf": (
        "RegNet_X_800MF_Weights",
        "IMAGENET1K_V2",
        {
            "IMAGENET1K_V1": (256, 224, "bilinear"),
            "IMAGENET1K_V2": (232, 224, "bilinear"),
        },
    ),
    "regnet_x_8gf": (
        "RegNet_X_8GF_Weights",
        "IMAGENET1K_V2",
        {
            "IMAGENET1K_V1": (256, 224, "bilinear"),
            "IMAGENET1K_V2": (232, 224, "bilinear"),
        },
    ),
    "regnet_y_128gf": (
        "RegNet_Y_128GF_Weights",
        "IMAGENET1K_SWAG_E2E_V1",
        {
            "IMAGENET1K_SWAG_E2E_V1": (384, 384, "bicubic"),
            "IMAGENET1K_SWAG_LINEAR_V1": (224, 224, "bicubic"),
        },
    ),
    "regnet_y_16gf": (
        "RegNet_Y_16GF_Weights",
        "IMAGENET1K_V2",
        {
            "IMAGENET1K_V1": (256, 224, "bilinear"),
            "IMAGENET1K_V2": (232, 224, "bilinear"),
            "IMAGENET1K_SWAG_E2E_V1": (384, 384, "bicubic"),
            "IMAGENET1K_SWAG_LINEAR_V1": (224, 224, "bicubic"),
        },
    ),
    "regnet_y_1_6gf": (
        "RegNet_Y_1_6GF_Weights",
        "IMAGENET1K_V2",
        {
            "IMAGENET1K_V1": (256, 224, "bilinear"),
            "IMAGENET1K_V2": (232, 224, "bilinear"),
        },
    ),
    "regnet_y_32gf": (
        "RegNet_Y_32GF_Weights",
        "IMAGENET1K_V2",
        {
            "IMAGENET1K_V1": (256, 224, "bilinear"),
            "IMAGENET1K_V2": (232, 224, "bilinear"),
            "IMAGENET1K_SWAG_E2E_V1": (384, 384, "bicubic"),
            "IMAGENET1K_SWAG_LINEAR_V1": (224, 224, "bicubic"),
        },
    ),
    "regnet_y_3_2gf": (
        "RegNet_Y_3_2GF_Weights",
        "IMAGENET1K_V2",
        {
            "IMAGENET1K_V1": (256, 224, "bilinear"),
            "IMAGENET1K_V2": (232, 224, "bilinear"),
        },
    ),
    "regnet_y_400mf": (
        "RegNet_Y_400MF_Weights",
        "IMAGENET1K_V2",
        {
            "IMAGENET1K_V1": (256, 224, "bilinear"),
            "IMAGENET1K_V2": (232, 224, "bilinear"),
        },
    ),
    "regnet_y_800mf": (
        "RegNet_Y_800MF_Weights",
        "IMAGENET1K_V2",
        {
            "IMAGENET1K_V1": (256, 224, "bilinear"),
            "IMAGENET1K_V2": (232, 224, "bilinear"),
        },
    ),
    "regnet_y_8gf": (
        "RegNet_Y_8GF_Weights",
        "IMAGENET1K_V2",
        {
            "IMAGENET1K_V1": (256, 224, "bilinear"),
            "IMAGENET1K_V2": (232, 224, "bilinear"),
        },
    ),
    "resnet101": (
        "ResNet101_Weights",
        "IMAGENET1K_V2",
        {
            "IMAGENET1K_V1": (256, 224, "bilinear"),
            "IMAGENET1K_V2": (232, 224, "bilinear"),
        },
    ),
    "resnet152": (
        "ResNet152_Weights",
        "IMAGENET1K_V2",
        {
            "IMAGENET1K_V1": (256, 224, "bilinear"),
            "IMAGENET1K_V2": (232, 224, "bilinear"),
        },
    ),
    "resnet18": ("ResNet18_Weights", "IMAGENET1K_V1", {"IMAGENET1K_V1": (256, 224, "bilinear")}),
    "resnet34": ("ResNet34_Weights", "IMAGENET1K_V1", {"IMAGENET1K_V1": (256, 224, "bilinear")}),
    "resnet50": (
        "ResNet50_Weights",
        "IMAGENET1K_V2",
        {
            "IMAGENET1K_V1": (256, 224, "bilinear"),
            "IMAGENET1K_V2": (232, 224, "bilinear"),
        },
    ),
    "resnext101_32x8d": (
        "ResNeXt101_32X8D_Weights",
        "IMAGENET1K_V2",
        {
            "IMAGENET1K_V1": (256, 224, "bilinear"),
            "IMAGENET1K_V2": (232, 224, "bilinear"),
        },
    ),
    "resnext101_64x4d": ("ResNeXt101_64X4D_Weights", "IMAGENET1K_V1", {"IMAGENET1K_V1": (232, 224, "bilinear")}),
    "resnext50_32x4d": (
        "ResNeXt50_32X4D_Weights",
        "IMAGENET1K_V2",
        {
            "IMAGENET1K_V1": (256, 224, "bilinear"),
            "IMAGENET1K_V2": (232, 224, "bilinear"),
        },
    ),
    "shufflenet_v2_x0_5": ("ShuffleNet_V2_X0_5_Weights", "IMAGENET1K_V1", {"IMAGENET1K_V1": (256, 224, "bilinear")}),
    "shufflenet_v2_x1_0": ("ShuffleNet_V2_X1_0_Weights", "IMAGENET1K_V1", {"IMAGENET1K_V1": (256, 224, "bilinear")}),
    "shufflenet_v2_x1_5": ("ShuffleNet_V2_X1_5_Weights", "IMAGENET1K_V1", {"IMAGENET1K_V1": (232, 224, "bilinear")}),
    "shufflenet_v2_x2_0": ("ShuffleNet_V2_X2_0_Weights", "IMAGENET1K_V1", {"IMAGENET1K_V1": (232, 224, "bilinear")}),
    "squeezenet1_0": ("SqueezeNet1_0_Weights", "IMAGENET1K_V1", {"IMAGENET1K_V1": (256, 224, "bilinear")}),
    "squeezenet1_1": ("SqueezeNet1_1_Weights", "IMAGENET1K_V1", {"IMAGENET1K_V1": (256, 224, "bilinear")}),
    "swin_b": ("Swin_B_Weights", "IMAGENET1K_V1", {"IMAGENET1K_V1": (238, 224, "bicubic")}),
    "swin_s": ("Swin_S_Weights", "IMAGENET1K_V1", {"IMAGENET1K_V1": (246, 224, "bicubic")}),
    "swin_t": ("Swin_T_Weights", "IMAGENET1K_V1", {"IMAGENET1K_V1": (232, 224, "bicubic")}),
    "swin_v2_b": ("Swin_V2_B_Weights", "IMAGENET1K_V1", {"IMAGENET1K_V1": (272, 256, "bicubic")}),
    "swin_v2_s": ("Swin_V2_S_Weights", "IMAGENET1K_V1", {"IMAGENET1K_V1": (260, 256, "bicubic")}),
    "swin_v2_t": ("Swin_V2_T_Weights", "IMAGENET1K_V1", {"IMAGENET1K_V1": (260, 256, "bicubic")}),
    "vgg11": ("VGG11_Weights", "IMAGENET1K_V1", {"IMAGENET1K_V1": (256, 224, "bilinear")}),
    "vgg11_bn": ("VGG11_BN_Weights", "IMAGENET1K_V1", {"IMAGENET1K_V1": (256, 224, "bilinear")}),
    "vgg13": ("VGG13_Weights", "IMAGENET1K_V1", {"IMAGENET1K_V1": (256, 224, "bilinear")}),
    "vgg13_bn": ("VGG13_BN_Weights", "IMAGENET1K_V1", {"IMAGENET1K_V1": (256, 224, "bilinear")}),
    "vgg16": (
        "VGG16_Weights",
        "IMAGENET1K_V1",
        {
            "IMAGENET1K_V1": (256, 224, "bilinear"),
            "IMAGENET1K_FEATURES": (
                256,
                224,
                "bilinear",
                (0.48235, 0.45882, 0.40784),
                (0.00392156862745098, 0.00392156862745098, 0.00392156862745098),
            ),
        },
    ),
    "vgg16_bn": ("VGG16_BN_Weights", "IMAGENET1K_V1", {"IMAGENET1K_V1": (256, 224, "bilinear")}),
    "vgg19": ("VGG19_Weights", "IMAGENET1K_V1", {"IMAGENET1K_V1": (256, 224, "bilinear")}),
    "vgg19_bn": ("VGG19_BN_Weights", "IMAGENET1K_V1", {"IMAGENET1K_V1": (256, 224, "bilinear")}),
    "vit_b_16": (
        "ViT_B_16_Weights",
        "IMAGENET1K_V1",
        {
            "IMAGENET1K_V1": (256, 224, "bilinear"),
            "IMAGENET1K_SWAG_E2E_V1": (384, 384, "bicubic"),
            "IMAGENET1K_SWAG_LINEAR_V1": (224, 224, "bicubic"),
        },
    ),
    "vit_b_32": ("ViT_B_32_Weights", "IMAGENET1K_V1", {"IMAGENET1K_V1": (256, 224, "bilinear")}),
    "vit_h_14": (
        "ViT_H_14_Weights",
        "IMAGENET1K_SWAG_E2E_V1",
        {
            "IMAGENET1K_SWAG_E2E_V1": (518, 518, "bicubic"),
            "IMAGENET1K_SWAG_LINEAR_V1": (224, 224, "bicubic"),
        },
    ),
    "vit_l_16": (
        "ViT_L_16_Weights",
        "IMAGENET1K_V1",
        {
            "IMAGENET1K_V1": (242, 224, "bilinear"),
            "IMAGENET1K_SWAG_E2E_V1": (512, 512, "bicubic"),
            "IMAGENET1K_SWAG_LINEAR_V1": (224, 224, "bicubic"),
        },
    ),
    "vit_l_32": ("ViT_L_32_Weights", "IMAGENET1K_V1", {"IMAGENET1K_V1": (256, 224, "bilinear")}),
    "wide_resnet101_2": (
        "Wide_ResNet101_2_Weights",
        "IMAGENET1K_V2",
        {
            "IMAGENET1K_V1": (256, 224, "bilinear"),
            "IMAGENET1K_V2": (232, 224, "bilinear"),
        },
    ),
    "wide_resnet50_2": (
        "Wide_ResNet50_2_Weights",
        "IMAGENET1K_V2",
        {
            "IMAGENET1K_V1": (256, 224, "bilinear"),
            "IMAGENET1K_V2": (232, 224, "bilinear"),
        },
    ),
}


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """A resolved backbone choice: everything but the precision that decides the features."""

    arch: str  # a torchvision model name, e.g. "resnet34", "vit_b_16"
    weights_name: str  # exact, e.g. "ResNet34_Weights.IMAGENET1K_V1", or RANDOM_INIT_NAME
    member: str | None  # the weights enum member loaded, None for random initialisation
    transform: str  # "paper" or "weights"
    transform_member: str  # the member whose transforms() the "weights" transform is (DEFAULT's for none)
    transform_id: str  # what the transform does, for the cache key and the feature source

    @property
    def resnet_depth(self) -> int | None:
        """18, 34 or 50 for the paper's ResNets (``--depth``), else None."""
        match = re.fullmatch(r"resnet(\d+)", self.arch)
        return int(match.group(1)) if match and int(match.group(1)) in DEPTHS else None

    @property
    def input_size(self) -> int:
        """The side of the square images the transform gives the network."""
        return PAPER_SIZE if self.transform == "paper" else weights_entry(self.arch, self.transform_member)[1]


def _usage_error(message: str):
    from utils.errors import UsageError

    return UsageError(message)


def _close(name: str, candidates, limit: int = 5) -> str:
    matches = difflib.get_close_matches(name, list(candidates), n=limit, cutoff=0.5)
    return f"; close matches: {', '.join(matches)}" if matches else ""


def architecture(depth: int | None = None, arch: str | None = None) -> str:
    """The torchvision model name ``--depth`` / ``--arch`` choose (``resnet34`` when neither is given)."""
    if depth is not None and arch is not None:
        raise _usage_error(f"give --depth or --arch, not both (--depth {depth} means --arch resnet{depth})")
    if depth is not None:
        if depth not in DEPTHS:
            raise _usage_error(
                f"--depth must be one of {', '.join(map(str, DEPTHS))}, got {depth}; use --arch for other networks"
            )
        return f"resnet{depth}"
    if arch is None:
        return DEFAULT_ARCH
    arch_entry(arch)  # an unknown name is refused here
    return arch


CATALOG_TORCHVISION = "0.29.1"  # the torchvision CATALOG was written from


def _torchvision_names() -> list[str]:
    """torchvision's classification models: the catalog's when the installed torchvision is the one it was
    written from (no import of torchvision, which takes seconds), else torchvision's own list."""
    from importlib import metadata

    try:
        if metadata.version("torchvision") == CATALOG_TORCHVISION:
            return sorted(CATALOG)
    except metadata.PackageNotFoundError:
        return sorted(CATALOG)
    from torchvision import models

    return models.list_models(module=models)


def arch_entry(arch: str) -> tuple[str, str, dict[str, tuple]]:
    """(weights enum, DEFAULT member, {member: transform}) of ``arch``; an unknown name lists close matches."""
    if arch in CATALOG:
        return CATALOG[arch]
    names = _torchvision_names()  # a torchvision newer than the catalog may know more models
    if arch not in names:
        raise _usage_error(
            f"unknown --arch {arch!r}{_close(arch, names)} (any of torchvision's "
            f"{len(names)} classification models, e.g. resnet50, vit_b_16, convnext_tiny)"
        )
    return catalog_entry(arch)


def catalog_entry(arch: str) -> tuple[str, str, dict[str, tuple]]:
    """(weights enum, DEFAULT member, {member: (resize, crop, interpolation[, mean, std])}) from torchvision.

    The same form as ``CATALOG``, which is written from it. Imports torchvision: only for a model the
    catalog lacks (and for the test that checks the catalog).
    """
    from torchvision import models

    enum = models.get_model_weights(arch)
    members = {}
    for member in enum:
        transform = member.transforms()
        (resize,), (crop,) = transform.resize_size, transform.crop_size
        norm = (tuple(transform.mean), tuple(transform.std))
        members[member.name] = (
            resize,
            crop,
            transform.interpolation.value,
            *(() if norm == (IMAGENET_MEAN, IMAGENET_STD) else norm),
        )
    return enum.__name__, enum.DEFAULT.name, members


def weights_entry(arch: str, member: str) -> tuple:
    """(resize, crop, interpolation[, mean, std]) of the transforms() of ``arch``'s weights ``member``."""
    return arch_entry(arch)[2][member]


def resolve_weights(arch: str, weights: str) -> tuple[str, str | None]:
    """(exact weights name, enum member or None) for ``--weights`` = default, none or a member name."""
    enum, default, members = arch_entry(arch)
    if weights == "none":
        return RANDOM_INIT_NAME, None
    name = weights.split(".", 1)[1] if weights.startswith(f"{enum}.") else weights
    member = default if name in ("default", "DEFAULT") else name
    if member not in members:
        raise _usage_error(
            f"--weights {weights!r} is not a weights name of {arch}; "
            f"choose default, none or one of {', '.join(members)}"
        )
    return f"{enum}.{member}", member


def default_transform(arch: str) -> str:
    """``paper`` for the ResNets (the paper's Resize((224, 224))), ``weights`` for every other architecture."""
    return "paper" if PAPER_FAMILY.fullmatch(arch) else "weights"


def transform_description(entry: tuple) -> str:
    """The cache key's text for a weights transform (resize, crop, interpolation[, mean, std])."""
    resize, crop, interpolation, *norm = entry
    mean, std = norm if norm else (IMAGENET_MEAN, IMAGENET_STD)
    normalise = (
        "imagenet-mean-std"
        if (tuple(mean), tuple(std)) == (IMAGENET_MEAN, IMAGENET_STD)
        else f"mean-{','.join(map(str, mean))}-std-{','.join(map(str, std))}"
    )
    return f"rgb|resize-shorter-{resize}-{interpolation}-antialias|center-crop-{crop}|tensor|{normalise}"


def backbone_spec(
    depth: int | None = None, arch: str | None = None, weights: str = "default", transform: str | None = None
) -> BackboneSpec:
    """Resolve ``--depth/--arch``, ``--weights`` and ``--transform`` (None: the architecture's default)."""
    name = architecture(depth, arch)
    weights_name, member = resolve_weights(name, weights)
    if transform is None:
        transform = default_transform(name)
    if transform not in TRANSFORM_CHOICES:
        raise _usage_error(f"--transform must be one of {', '.join(TRANSFORM_CHOICES)}, got {transform!r}")
    transform_member = member or arch_entry(name)[1]
    transform_id = (
        PAPER_TRANSFORM_ID if transform == "paper" else transform_description(weights_entry(name, transform_member))
    )
    spec = BackboneSpec(name, weights_name, member, transform, transform_member, transform_id)
    expected = weights_entry(name, transform_member)[1]
    if FIXED_INPUT.match(name) and spec.input_size != expected:
        raise _usage_error(
            f"{name} with {weights_name} takes {expected}×{expected} images, but --transform paper "
            f"gives {PAPER_SIZE}×{PAPER_SIZE}; use --transform weights"
        )
    return spec


def precision_id(precision: str, cuda: bool) -> str:
    """The cache key's precision: ``amp-fp16`` / ``amp-bf16`` (autocast) or ``fp32``.

    ``auto`` is fp16 autocast on CUDA and fp32 on a CPU (the strings caches made before ``--precision`` carry).
    """
    if precision not in PRECISION_CHOICES:
        raise _usage_error(f"--precision must be one of {', '.join(PRECISION_CHOICES)}, got {precision!r}")
    resolved = ("fp16" if cuda else "fp32") if precision == "auto" else precision
    return "fp32" if resolved == "fp32" else f"amp-{resolved}"
