"""Network forward time on this CPU per catalog model: float32 versus bfloat16 autocast, each with the
weights and the window in the default memory layout (NCDHW) and channels-last (NDHWC).

One window of each model's largest inference size (its catalog ``max_inference_window``, else 96³, rounded
down to what the network divides by: the IMA/aorta U-Net's 96 x 160 x 120 windows are what it runs on
LIDC-IDRI-0001's midline band), random input, medians of --repeats timed runs after one warm-up; also the
share of voxels whose argmax agrees with float32 in the default layout. Whether a setting keeps the
segmentations is measured on the synthetic test scans by benchmarks/evaluate_models.py (bfloat16: with and
without CARDIACAI_CPU_BFLOAT16=0) and on the real CTs by comparing the label maps.
Usage: python benchmarks/bench_precision.py [--repeats 5] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from CardiacAI.inference import cpu_has_native_bfloat16
from CardiacAI.models import ModelCatalog
from CardiacAI.segmentation import MAX_INFERENCE_WINDOW, load_network

from machine import machine_line  # benchmarks/machine.py

LAYOUTS = {"NCDHW": torch.contiguous_format, "channels-last": torch.channels_last_3d}


def window_of(entry) -> tuple[int, int, int]:
    """The model's largest sliding window (k, j, i), rounded down to its divisibility."""
    divisible = int(entry.card["input"].get("divisible_by", 8))
    caps = entry.max_inference_window_kji or (MAX_INFERENCE_WINDOW,) * 3
    return tuple(max(divisible, int(c) // divisible * divisible) for c in caps)  # type: ignore[return-value]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"{machine_line()}; {args.threads} threads, native bfloat16: {cpu_has_native_bfloat16()}")
    catalog = ModelCatalog.load()
    generator = torch.Generator().manual_seed(0)
    for entry in catalog:
        window = window_of(entry)
        x = torch.randn(1, 1, *window, generator=generator)
        net = load_network(entry, "cpu")
        times = {}
        with torch.inference_mode():
            reference = net.to(memory_format=torch.contiguous_format)(x).argmax(1)
            for layout, memory_format in LAYOUTS.items():
                net = net.to(memory_format=memory_format)
                window_input = x.contiguous(memory_format=memory_format)
                for name, dtype in (("float32", None), ("bfloat16", torch.bfloat16)):
                    runs = []
                    for _ in range(args.repeats + 1):
                        t = time.perf_counter()
                        with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
                            out = net(window_input)
                        runs.append(time.perf_counter() - t)
                    times[layout, name] = statistics.median(runs[1:])
                    agree = (out.float().argmax(1) == reference).float().mean().item()
                    print(f"{entry.id} {entry.version}, window {'x'.join(map(str, window))}: {name:8s} {layout:13s} "
                          f"median {times[layout, name]:.3f} s, argmax agrees with float32 NCDHW on "
                          f"{100 * agree:.3f} % of voxels")
        for name in ("float32", "bfloat16"):
            print(f"{entry.id}: {name} channels-last / NCDHW time ratio "
                  f"{times['channels-last', name] / times['NCDHW', name]:.2f}")
        print(f"{entry.id}: bfloat16 is {times['NCDHW', 'float32'] / times['NCDHW', 'bfloat16']:.2f}x faster "
              f"than float32 (NCDHW)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
