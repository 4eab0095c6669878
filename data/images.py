"""The paper's image datasets through torchvision, and a user's image folder, as (train, test) image splits.

Each builder returns an :class:`ImageSplits` whose datasets yield ``(tensor, label)`` after the
chosen transform (:func:`image_transform`), always preceded by RGB conversion (Caltech and Flowers
contain grayscale images): the paper's ``Resize((224, 224))`` + ImageNet mean/std, or the backbone
weights' own ``transforms()``. No augmentation.

Splits follow the paper: official splits for CIFAR-10/100, Food-101 and StanfordCars; Flowers-102
trains on the official ``test`` split and tests on ``train``; Caltech-101/256 use
``train_test_split(test_size=0.2, random_state=42)`` over the *sorted* image list (the reference
walked the filesystem in directory order, which differs between machines).

torchvision is imported only when a transform or a torchvision dataset is built, so that an image
folder's listing and content hash (which key its features) need no torch.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image
from sklearn.model_selection import train_test_split

from models.choices import IMAGENET_MEAN, IMAGENET_STD, PAPER_SIZE, BackboneSpec
from utils.errors import UserError
from utils.unreadable import FAILED_DOWNLOAD

CALTECH_SPLIT = {"test_size": 0.2, "random_state": 42}
# torchvision.datasets.folder.IMG_EXTENSIONS, without importing torchvision.
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def to_rgb(image: Image.Image) -> Image.Image:
    return image.convert("RGB")


def paper_transform():
    from torchvision import transforms as T

    return T.Compose(
        [
            T.Lambda(to_rgb),
            T.Resize((PAPER_SIZE, PAPER_SIZE), interpolation=T.InterpolationMode.BILINEAR, antialias=True),
            T.ToTensor(),
            T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


def image_transform(spec: BackboneSpec):
    """The transform ``spec`` names: the paper's, or RGB conversion + the weights' own ``transforms()``."""
    if spec.transform == "paper":
        return paper_transform()
    from torchvision import models
    from torchvision import transforms as T

    return T.Compose([T.Lambda(to_rgb), models.get_model_weights(spec.arch)[spec.transform_member].transforms()])


class ImageList:
    """Images from a list of paths with integer labels, opened with PIL and transformed."""

    def __init__(self, paths: Sequence[Path], labels: Sequence[int], transform: Callable) -> None:
        if len(paths) != len(labels):
            raise ValueError("one label per image")
        self.paths = list(paths)
        self.labels = [int(label) for label in labels]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        with Image.open(self.paths[index]) as image:
            return self.transform(image), self.labels[index]


@dataclasses.dataclass(frozen=True)
class ImageSplits:
    train: object  # a map-style dataset of (image tensor, label)
    test: object
    class_names: tuple[str, ...]
    fingerprint: str = ""  # content hash where the files are the user's own (imagefolder)


@dataclasses.dataclass(frozen=True)
class ImageSource:
    """How to obtain one dataset: the folder torchvision expects and how to fill it by hand."""

    build: Callable[..., ImageSplits]  # (root, download, transform=None: the paper's) -> ImageSplits
    layout: str
    downloadable: bool = True
    manual: str = ""


def _open(name: str, source: ImageSource, root: Path, download: bool, factory: Callable[[bool], object]):
    """Construct a torchvision dataset, turning a missing or failed download into one UserError; the
    empty folders a failed attempt made (torchvision creates ``caltech101/`` and the like first) are removed."""
    before = _folders(root)
    try:
        return factory(download and source.downloadable)
    except FAILED_DOWNLOAD as error:  # torchvision raises RuntimeError, URLError, ValueError, BadZipFile, ...
        _remove_new_empty_folders(root, before)
        how = f"download failed ({type(error).__name__})" if download and source.downloadable else "files not found"
        hint = source.manual or ("" if download else ", or rerun with --download auto on a machine with network")
        raise UserError(f"{name}: {how}; place the files in {root} as {source.layout}{hint}") from None


def _folders(root: Path) -> set[Path]:
    """``root`` and the folders up to two levels below it, where torchvision creates its own (links not
    followed; not deeper, so that an image tree of 100,000 files is not walked); empty when there is no root."""
    found, level = set(), [root] if root.is_dir() and not root.is_symlink() else []
    for _ in range(3):
        found.update(level)
        level = [child for folder in level for child in _subfolders(folder)]
    return found


def _subfolders(folder: Path) -> list[Path]:
    try:
        return [child for child in folder.iterdir() if child.is_dir() and not child.is_symlink()]
    except OSError:
        return []


def _remove_new_empty_folders(root: Path, before: set[Path]) -> None:
    """Remove the folders under (and including) ``root`` that were not there ``before`` and hold nothing.

    Only empty ones: a folder with a file in it may be another process's download of another dataset
    into the same root, which is not ours to delete."""
    for folder in sorted(_folders(root) - before, key=lambda path: len(path.parts), reverse=True):
        try:
            folder.rmdir()  # refuses a folder that is not empty
        except OSError:
            pass


def _torchvision_dataset(class_name: str) -> type:
    from torchvision import datasets

    return getattr(datasets, class_name)


def _cifar(class_name: str, name: str) -> Callable[..., ImageSplits]:
    def build(root: Path, download: bool, transform=None) -> ImageSplits:
        cls, transform = _torchvision_dataset(class_name), transform or paper_transform()
        source = IMAGE_SOURCES[name]
        train = _open(
            name, source, root, download, lambda d: cls(str(root), train=True, transform=transform, download=d)
        )
        test = _open(
            name, source, root, download, lambda d: cls(str(root), train=False, transform=transform, download=d)
        )
        return ImageSplits(train, test, tuple(train.classes))

    return build


def _official_split(class_name: str, name: str, train_split: str, test_split: str) -> Callable[..., ImageSplits]:
    def build(root: Path, download: bool, transform=None) -> ImageSplits:
        cls, transform = _torchvision_dataset(class_name), transform or paper_transform()
        source = IMAGE_SOURCES[name]
        train = _open(
            name, source, root, download, lambda d: cls(str(root), split=train_split, transform=transform, download=d)
        )
        test = _open(
            name, source, root, download, lambda d: cls(str(root), split=test_split, transform=transform, download=d)
        )
        return ImageSplits(train, test, tuple(getattr(train, "classes", ())) or _class_range(train))

    return build


def _class_range(dataset) -> tuple[str, ...]:
    labels = getattr(dataset, "_labels", None)
    return tuple(str(k) for k in range(int(max(labels)) + 1)) if labels is not None else ()


def _caltech(class_name: str, name: str, folder: str, excluded: str) -> Callable[..., ImageSplits]:
    def build(root: Path, download: bool, transform=None) -> ImageSplits:
        cls = _torchvision_dataset(class_name)
        _open(name, IMAGE_SOURCES[name], root, download, lambda d: cls(str(root), download=d))
        image_root = root / folder
        categories = sorted(p.name for p in image_root.iterdir() if p.is_dir() and p.name != excluded)
        paths, labels = [], []
        for label, category in enumerate(categories):
            files = sorted(f for f in (image_root / category).iterdir() if f.suffix.lower() == ".jpg")
            paths += files
            labels += [label] * len(files)
        train_idx, test_idx = train_test_split(np.arange(len(paths)), **CALTECH_SPLIT)
        transform = transform or paper_transform()
        pick = lambda idx: ImageList([paths[i] for i in idx], [labels[i] for i in idx], transform)  # noqa: E731
        names = tuple(c.split(".", 1)[1] if c[:3].isdigit() and "." in c else c for c in categories)
        return ImageSplits(pick(train_idx), pick(test_idx), names)

    return build


@dataclasses.dataclass(frozen=True)
class FolderListing:
    """A user's image folder: class names, (paths, labels) per split, and a hash of names and bytes."""

    class_names: tuple[str, ...]
    train: tuple[list[Path], list[int]]
    test: tuple[list[Path], list[int]]
    fingerprint: str


def list_image_folder(root: Path) -> FolderListing:
    """List ``root/train/<class>/…`` and ``root/test/<class>/…`` (sorted) and hash them; no torch needed."""
    train_root, test_root = root / "train", root / "test"
    if not train_root.is_dir() or not test_root.is_dir():
        raise UserError(
            f"imagefolder: {root} must contain train/<class>/<image> and test/<class>/<image>; pass --data-root DIR"
        )
    classes = sorted(p.name for p in train_root.iterdir() if p.is_dir())
    unknown = sorted({p.name for p in test_root.iterdir() if p.is_dir()} - set(classes))
    if not classes:
        raise UserError(f"imagefolder: {train_root} has no class folders; expected train/<class>/<image>")
    if unknown:
        raise UserError(f"imagefolder: test classes {', '.join(unknown)} have no folder in {train_root}")
    digest = hashlib.blake2b(digest_size=16)

    def listing(split_root: Path) -> tuple[list[Path], list[int]]:
        paths, labels = [], []
        for label, name in enumerate(classes):
            folder = split_root / name
            files = (
                sorted(f for f in folder.rglob("*") if f.is_file() and f.suffix.lower() in IMG_EXTENSIONS)
                if folder.is_dir()
                else []
            )
            for file in files:
                digest.update(str(file.relative_to(root)).encode())
                digest.update(file.read_bytes())
            paths += files
            labels += [label] * len(files)
        if not paths:
            raise UserError(f"imagefolder: no images under {split_root} (extensions: {', '.join(IMG_EXTENSIONS)})")
        return paths, labels

    train, test = listing(train_root), listing(test_root)
    empty = [name for label, name in enumerate(classes) if label not in set(train[1])]
    if empty:
        raise UserError(
            f"imagefolder: class folder(s) {', '.join(empty)} in {train_root} hold no images; "
            f"add training images or remove the folder(s)"
        )
    return FolderListing(tuple(classes), train, test, f"{root.resolve()}#{digest.hexdigest()}")


def _imagefolder(root: Path, download: bool, transform=None) -> ImageSplits:
    listing = list_image_folder(root)
    transform = transform or paper_transform()
    return ImageSplits(
        ImageList(*listing.train, transform),
        ImageList(*listing.test, transform),
        listing.class_names,
        fingerprint=listing.fingerprint,
    )


IMAGE_SOURCES: dict[str, ImageSource] = {
    "cifar10": ImageSource(
        _cifar("CIFAR10", "cifar10"),
        "cifar-10-batches-py/ (data_batch_1..5, test_batch, batches.meta from cifar-10-python.tar.gz)",
    ),
    "cifar100": ImageSource(
        _cifar("CIFAR100", "cifar100"), "cifar-100-python/ (train, test, meta from cifar-100-python.tar.gz)"
    ),
    "caltech101": ImageSource(
        _caltech("Caltech101", "caltech101", "caltech101/101_ObjectCategories", "BACKGROUND_Google"),
        "caltech101/101_ObjectCategories/<class>/image_NNNN.jpg (and caltech101/Annotations/)",
    ),
    "caltech256": ImageSource(
        _caltech("Caltech256", "caltech256", "caltech256/256_ObjectCategories", "257.clutter"),
        "caltech256/256_ObjectCategories/NNN.<class>/NNN_NNNN.jpg",
    ),
    # Flowers-102 trains on the official test split (6,149 images) and tests on train (1,020), as the paper does.
    "flowers102": ImageSource(
        _official_split("Flowers102", "flowers102", "test", "train"),
        "flowers-102/ (jpg/image_NNNNN.jpg, imagelabels.mat, setid.mat)",
    ),
    "food101": ImageSource(
        _official_split("Food101", "food101", "train", "test"),
        "food-101/ (images/<class>/*.jpg, meta/train.json, meta/test.json)",
    ),
    "stanfordcars": ImageSource(
        _official_split("StanfordCars", "stanfordcars", "train", "test"),
        "stanford_cars/ (devkit/cars_meta.mat, devkit/cars_train_annos.mat, cars_train/, cars_test/, "
        "cars_test_annos_withlabels.mat)",
        downloadable=False,
        manual=" (torchvision cannot download StanfordCars: its original URL is gone; get the archive from a mirror "
        "such as Kaggle's 'stanford-cars-dataset' plus cars_test_annos_withlabels.mat)",
    ),
    "imagefolder": ImageSource(_imagefolder, "train/<class>/<image> and test/<class>/<image>", downloadable=False),
}
