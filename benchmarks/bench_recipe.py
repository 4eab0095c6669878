"""What the recipe's steps cost on this machine: feature extraction and training throughput at the real sizes.

Measured here, on generated data of the real shapes (no dataset is downloaded):

- extraction: images per second of the frozen ResNet (``--depth``, random init: the same arithmetic
  as the pretrained weights) on generated 224×224 images, through the real extraction code;
- training: seconds per epoch of one stage of a figure's grid — 3 seeds × 8 noise rates = 24
  stacked heads — on generated features of each dataset's real size (N, 512, K), through the real engine.

Totals per dataset (all images once; 6 stages × 200 epochs per noise type) are extrapolated from
these rates and marked so. Usage: ``python3 -m benchmarks.bench_recipe [--depth 34] [--heads 24]``.
"""

from __future__ import annotations

import sys
import time

import torch
from torch.utils.data import TensorDataset

from data.features import extract
from models.backbone import build_backbone
from models.heads import init_head
from models.losses import SoftCrossEntropy
from training.engine import HeadProblem, SGDSettings, train_sgd
from training.randomness import IndependentOrder
from utils.cli import Parser

# (train images, test images, classes) of each dataset with the paper's splits.
SIZES = {
    "cifar100": (50_000, 10_000, 100),
    "caltech256": (23_824, 5_956, 256),
    "food101": (75_750, 25_250, 101),
    "caltech101": (6_941, 1_736, 101),
    "stanfordcars": (8_144, 8_041, 196),
    "flowers102": (6_149, 1_020, 102),
}
STAGES, EPOCHS = 6, 200


def extraction_rate(depth: int, images: int, batch: int) -> float:
    backbone = build_backbone(depth, "none")
    data = TensorDataset(torch.randn(images, 3, 224, 224), torch.zeros(images, dtype=torch.int64))
    extract(backbone, data, torch.device("cpu"), batch_size=batch, workers=0, amp=False, progress=False)  # warm-up
    start = time.perf_counter()
    extract(backbone, data, torch.device("cpu"), batch_size=batch, workers=0, amp=False, progress=False)
    return images / (time.perf_counter() - start)


def epoch_seconds(n: int, m: int, k: int, heads: int, epochs: int = 1) -> float:
    g = torch.Generator().manual_seed(0)
    x, x_test = torch.randn(n, 512, generator=g), torch.randn(m, 512, generator=g)
    y, y_test = torch.randint(0, k, (n,), generator=g), torch.randint(0, k, (m,), generator=g)
    problem = HeadProblem(
        features=x,
        test_features=x_test,
        test_labels=y_test,
        train_index=torch.arange(n).expand(heads, n).contiguous(),
        targets=torch.nn.functional.one_hot(y, k).float().expand(heads, n, k).contiguous(),
        true_labels=y.expand(heads, n).contiguous(),
        noisy_labels=y.expand(heads, n).contiguous(),
        init=torch.stack([init_head(k, 512, torch.Generator().manual_seed(h)) for h in range(heads)]),
        orders=[IndependentOrder(torch.Generator().manual_seed(h)) for h in range(heads)],
        loss=SoftCrossEntropy(),
    )
    settings = SGDSettings(lr=0.05, wd=5e-5, epochs=epochs, batch_size=128, gamma=0.98, momentum=0.9, select="test")
    start = time.perf_counter()
    train_sgd(problem, settings)
    return (time.perf_counter() - start) / epochs


def build_parser() -> Parser:
    parser = Parser(prog="python3 -m benchmarks.bench_recipe", description=__doc__.split("\n\n")[0])
    parser.add_argument("--depth", type=int, default=34, choices=(18, 34, 50), help="ResNet depth")
    parser.add_argument("--heads", type=int, default=24, help="stacked heads per stage (3 seeds × 8 rates)")
    parser.add_argument("--images", type=int, default=64, help="generated images to time extraction on")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)  # pay torch's one-time lazy imports first
    rate = extraction_rate(args.depth, args.images, batch=32)
    gpu = "a GPU is present but" if torch.cuda.is_available() else "none available;"
    print(f"CPU, {torch.get_num_threads()} threads, torch {torch.__version__}; GPU: {gpu} this benchmark times the CPU")
    print(
        f"extraction, ResNet-{args.depth} at 224×224: {rate:.1f} images/s (measured on {args.images} generated images)"
    )
    print(f"training: one stage of {args.heads} stacked heads, batch 128 (measured: 1 epoch on generated features)")
    print(f"{'dataset':<14}{'N':>8}{'K':>5}{'s/epoch':>9}{'extract h*':>12}{'train h* per ctype':>20}")
    for name, (n, m, k) in SIZES.items():
        seconds = epoch_seconds(n, m, k, args.heads)
        extraction_hours = (n + m) / rate / 3600
        training_hours = seconds * EPOCHS * STAGES / 3600
        print(f"{name:<14}{n:>8}{k:>5}{seconds:>9.2f}{extraction_hours:>12.2f}{training_hours:>20.2f}")
    print(
        "* extrapolated from the measured rates: extraction of train + test once; training of "
        f"{STAGES} stages × {EPOCHS} epochs for one noise type (3 seeds × 8 rates)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
