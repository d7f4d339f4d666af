"""Benchmark: the cost of taking a model's labels back onto the scan's grid, both ways.

Runs each task's default model once on a real CT, on the region the pipeline segments (the localised
heart for the whole heart, the midline band for IMA/aorta; read from a `segment` run's record), then
times, alternating, on those probabilities:
- "nearest": the model-grid argmax, nearest-neighbour resampled onto the scan's grid;
- "trilinear": `CardiacAI.inference.labels_from_probabilities_onto` (what `segment` does).
Prints the median and min/max of each over ``--repeats`` and how many voxels differ, with the machine.
Usage: python benchmarks/bench_label_resampling.py [--cases LIDC-IDRI-0001 ...] [--tasks ...] [--repeats 7]
Not a test: timings depend on the machine and what else runs on it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np

from CardiacAI.inference import (
    choose_device,
    labels_from_probabilities,
    labels_from_probabilities_onto,
    resample_labels_onto,
)
from CardiacAI.io import read_image
from CardiacAI.models import ModelCatalog
from CardiacAI.segmentation import crop_image, load_network, predict_model_grid_probabilities, segment

from machine import machine_line  # benchmarks/machine.py

DATA = Path(os.environ.get("CARDIACAI_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")) / "chest-ct"


def region(image, task):
    """The part of ``image`` the pipeline segments for ``task``: the region its run record names."""
    box = segment(image, task, prefer_gpu=False).run["stages"][-1]["region_kji"]
    return image if box is None else crop_image(image, tuple(slice(lo, hi) for lo, hi in box))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", default=["LIDC-IDRI-0001", "LIDC-IDRI-0002"])
    parser.add_argument("--tasks", nargs="+", default=["whole-heart", "ima-aorta"])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    print(machine_line())
    catalog = ModelCatalog.load()
    device = choose_device(prefer_gpu=False)
    for case in args.cases:
        image = read_image(DATA / case)
        for task in args.tasks:
            entry = catalog.default_for(task)
            scan = region(image, task)
            grid, probs = predict_model_grid_probabilities(scan, entry, load_network(entry, device.device), device)
            times = {"nearest": [], "trilinear": []}
            for _ in range(args.repeats):
                t = time.perf_counter()
                nearest = resample_labels_onto(grid.with_array(labels_from_probabilities(probs)), scan).array
                times["nearest"].append(time.perf_counter() - t)
                t = time.perf_counter()
                trilinear = labels_from_probabilities_onto(probs, grid, scan)
                times["trilinear"].append(time.perf_counter() - t)
            differ = int(np.sum(nearest != trilinear))
            print(f"{case} {task} ({entry.id} {entry.version}): region {scan.shape_ijk} voxels (i, j, k), model grid "
                  f"{grid.shape_ijk}, {probs.shape[0]} classes; {differ} voxels ({differ / nearest.size:.2%}) differ")
            for way, values in times.items():
                print(f"  {way:9s} median {statistics.median(values):.3f} s (min {min(values):.3f}, max {max(values):.3f})")


if __name__ == "__main__":
    main()
