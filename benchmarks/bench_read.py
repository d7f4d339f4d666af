"""Benchmark: time to read the real chest CTs (DICOM series -> Image in HU).

Usage: python benchmarks/bench_read.py [--repeats 7]
Prints the median and range per case with the machine it ran on. Not a test: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from CardiacAI.io import read_image
from machine import machine_line

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "chest-ct"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    print(f"machine: {machine_line()}")
    for case in ("LIDC-IDRI-0001", "LIDC-IDRI-0002"):
        folder = DATA / case
        if not folder.is_dir():
            print(f"{case}: not found at {folder}")
            continue
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            image = read_image(folder)
            times.append(time.perf_counter() - start)
        print(f"{case}: {image.shape_ijk} voxels, median {statistics.median(times):.2f} s "
              f"(min {min(times):.2f}, max {max(times):.2f}, n={len(times)})")


if __name__ == "__main__":
    main()
