"""Benchmark: feature-extraction throughput (images/s) of ResNet-34 and ViT-B/16 on generated JPEGs.

The script writes its own JPEGs into a temporary folder it removes afterwards: ``--images`` of
them (default 256 on a CPU, 2,000 on CUDA), 500×375 pixels (the size of a typical Caltech or
Food-101 photo), smooth colour fields with noise so that they decode like photos, not like noise.
Per architecture, with random-init weights (the same arithmetic as pretrained ones, no download):

- decode: the DataLoader alone (``-j`` workers: JPEG decode + the architecture's transform +
  collation), no model;
- model: the frozen network alone, on random input already on the device, in extraction's
  batches, precision and memory format;
- end-to-end: ``data.features.run_backbone`` over the JPEGs, exactly as extraction into the cache
  runs it (decoding in workers, pinned copies on CUDA, the model), without writing the cache.

Each stage runs once after a one-batch warm-up; the device is named in the output.

    python3 -m benchmarks.bench_extract
    python3 -m benchmarks.bench_extract --device cuda --images 2000 -j 8
"""

from __future__ import annotations

import dataclasses
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Sequence

from utils import checks
from utils.cli import Parser
from utils.errors import exits_cleanly, run_script

ARCHS = ("resnet34", "vit_b_16")
SIZE = (500, 375)


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    archs: tuple[str, ...]
    images: int | None  # None: 256 on a CPU, 2,000 on CUDA
    workers: int
    device: str
    precision: str
    batch_size: int | None

    def validate(self) -> BenchConfig:
        from models.choices import PRECISION_CHOICES, backbone_spec

        for arch in self.archs:
            backbone_spec(arch=arch, weights="none")
        if self.images is not None:
            checks.integer("--images", self.images, 1)
        checks.integer("-j/--workers", self.workers, 0)
        checks.choice("--device", self.device, ("auto", "cpu", "cuda"))
        checks.choice("--precision", self.precision, PRECISION_CHOICES)
        if self.batch_size is not None:
            checks.integer("--extract-batch", self.batch_size, 1)
        return self


def build_parser() -> Parser:
    parser = Parser(prog="bench_extract.py", description=__doc__.split("\n")[1])
    parser.add_argument("--archs", nargs="+", default=list(ARCHS), metavar="NAME", help="torchvision architectures")
    parser.add_argument("--images", type=int, help="generated JPEGs (default: 256 on a CPU, 2,000 on CUDA)")
    parser.add_argument("-j", "--workers", type=int, default=4, help="decoding workers")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: CUDA when available")
    parser.add_argument(
        "--precision",
        choices=("auto", "fp16", "bf16", "fp32"),
        default="auto",
        help="auto: fp16 autocast on CUDA, fp32 on a CPU",
    )
    parser.add_argument("--extract-batch", type=int, metavar="N", help="batch size (default: extraction's)")
    return parser


def write_jpegs(folder: Path, count: int) -> list[Path]:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    width, height = SIZE
    yy, xx = np.mgrid[0:height, 0:width] / max(width, height)
    paths = []
    for index in range(count):
        a, b, c = rng.uniform(1, 6, size=3), rng.uniform(0, 2 * np.pi, size=3), rng.uniform(0, 255, size=3)
        field = [c[k] / 2 + 60 * np.sin(a[k] * (xx + yy * (k - 1)) * 2 * np.pi + b[k]) for k in range(3)]
        pixels = np.stack(field, axis=-1) + rng.normal(0, 12, size=(height, width, 3))
        path = folder / f"{index:05d}.jpg"
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def stage_rows(arch: str, paths: list[Path], config: BenchConfig, device, precision: str) -> list[tuple[str, float]]:
    """(stage, images/s) for decode, model and end-to-end."""
    import torch

    from data import features as extraction
    from data.images import ImageList, image_transform
    from models.backbone import build_backbone
    from models.choices import backbone_spec

    spec = backbone_spec(arch=arch, weights="none")
    dataset = ImageList(paths, [0] * len(paths), image_transform(spec))
    settings = extraction.ExtractSettings(device, precision, config.batch_size, config.workers)
    batch = settings.start_batch()
    cuda = device.type == "cuda"

    def sync():
        if cuda:
            torch.cuda.synchronize()

    start = time.perf_counter()
    for _ in extraction.make_loader(dataset, 0, settings):
        pass
    decode = len(paths) / (time.perf_counter() - start)

    backbone = build_backbone(arch, "none")
    network = backbone.network.to(device, memory_format=torch.channels_last)
    forward = extraction.ChunkedForward(network, settings)
    size = spec.input_size
    generator = torch.Generator(device=device).manual_seed(0)
    inputs = torch.randn(batch, 3, size, size, device=device, generator=generator).contiguous(
        memory_format=torch.channels_last
    )
    with extraction.inference_numerics(settings):
        forward(inputs)  # warm-up: kernels, cuDNN autotuning
        sync()
        start, done = time.perf_counter(), 0
        while done < len(paths):
            count = min(batch, len(paths) - done)
            forward(inputs[:count])
            done += count
        sync()
    model = len(paths) / (time.perf_counter() - start)

    def sink(features, labels):
        pass

    start = time.perf_counter()
    extraction.run_backbone(backbone, dataset, settings, 0, sink)
    end_to_end = len(paths) / (time.perf_counter() - start)
    return [("decode", decode), ("model", model), ("end-to-end", end_to_end)]


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as stream:
            names = [line.split(":", 1)[1].strip() for line in stream if line.startswith("model name")]
    except OSError:
        names = []
    return names[0] if names else platform.processor() or platform.machine()


def describe(device, settings_batch: int, precision: str, config: BenchConfig, images: int) -> str:
    import torch

    from utils.threads import available_cpus

    if device.type == "cuda":
        where = f"CUDA {torch.cuda.get_device_name(device)}"
    else:
        where = f"CPU {cpu_name()}, {available_cpus()} CPUs, {torch.get_num_threads()} torch threads"
    return (
        f"device: {where}; torch {torch.__version__}; load average {os.getloadavg()[0]:.1f}\n"
        f"{images} generated {SIZE[0]}×{SIZE[1]} JPEGs, batch {settings_batch}, {config.workers} workers, "
        f"precision {precision}, random-init weights"
    )


@exits_cleanly
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = BenchConfig(
        tuple(args.archs), args.images, args.workers, args.device, args.precision, args.extract_batch
    ).validate()
    from data import features as extraction
    from models.choices import precision_id
    from utils.device import resolve_device

    device = resolve_device(config.device)
    precision = precision_id(config.precision, device.type == "cuda")
    images = config.images or (2000 if device.type == "cuda" else 256)
    batch = extraction.ExtractSettings(device, precision, config.batch_size).start_batch()
    with tempfile.TemporaryDirectory(prefix="bench-extract-") as folder:
        paths = write_jpegs(Path(folder), images)
        print(describe(device, batch, precision, config, images), flush=True)
        print(f"{'arch':<10} {'stage':<11} {'images/s':>9}")
        for arch in config.archs:
            for stage, rate in stage_rows(arch, paths, config, device, precision):
                print(f"{arch:<10} {stage:<11} {rate:9.1f}", flush=True)
    return 0


if __name__ == "__main__":
    run_script(main)
