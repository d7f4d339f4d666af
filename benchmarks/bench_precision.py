"""Network forward time in float32 versus bfloat16 autocast on this CPU, per catalog model.

One 96³ window (the largest sliding window segment() uses), random input, medians of --repeats
timed runs after one warm-up; also the share of voxels whose argmax agrees with float32. Whether
bfloat16 keeps the segmentations is measured on the synthetic test scans by
benchmarks/evaluate_models.py with and without CARDIACAI_CPU_BFLOAT16=0.
Usage: python benchmarks/bench_precision.py [--repeats 5] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from CardiacAI.inference import cpu_has_native_bfloat16
from CardiacAI.models import ModelCatalog
from CardiacAI.segmentation import load_network

from machine import machine_line  # benchmarks/machine.py


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"{machine_line()}; {args.threads} threads, native bfloat16: {cpu_has_native_bfloat16()}")
    catalog = ModelCatalog.load()
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, 1, 96, 96, 96, generator=generator)
    for entry in catalog:
        net = load_network(entry, "cpu")
        times = {}
        with torch.inference_mode():
            reference = net(x).argmax(1)
            for name, dtype in (("float32", None), ("bfloat16", torch.bfloat16)):
                runs = []
                for _ in range(args.repeats + 1):
                    t = time.perf_counter()
                    with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
                        out = net(x)
                    runs.append(time.perf_counter() - t)
                times[name] = statistics.median(runs[1:])
                agree = (out.float().argmax(1) == reference).float().mean().item()
                print(f"{entry.id} {entry.version}: {name:8s} median {times[name]:.3f} s per 96³ window, "
                      f"argmax agrees with float32 on {100 * agree:.3f} % of voxels")
        print(f"{entry.id}: bfloat16 is {times['float32'] / times['bfloat16']:.2f}x faster")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
