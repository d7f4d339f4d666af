"""Sliding-window inference of the shipped segmentation networks on a CUDA GPU against the CPU.

For each task's default network (the whole-heart Dense V-Net stage and the IMA/aorta U-Net) a synthetic
CTA scan is generated directly on the model's grid (LPS, the model spacing, so no resampling is needed
and SimpleITK is not), centre-cropped to the size that network sees on LIDC-IDRI-0001 (the localised
heart region, the IMA midline band), and run through ``predict_model_grid_probabilities`` (the
pipeline's normalisation, windows, Gaussian blending and softmax, probabilities back on the CPU):

* on the GPU (``choose_device(True)``: float16 autocast) and on the CPU (``choose_device(False)``),
  one warm-up then ``--repeats`` timed runs each, medians in seconds;
* how far the GPU's labels (argmax) are from the CPU's: Dice per structure between the two label
  maps and the largest absolute difference of any probability.

Usage: python benchmarks/gpu_inference.py [--repeats 10] [--json OUT]
Exits 2 when torch sees no CUDA GPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np

from CardiacAI.image import Image
from CardiacAI.inference import choose_device
from CardiacAI.metrics import dice_coefficient
from CardiacAI.models import ModelCatalog
from CardiacAI.segmentation import crop_image, load_network, predict_model_grid_probabilities

from machine import machine_info  # benchmarks/machine.py

#: (task, field of view, model-grid shape (k, j, i) that network sees on LIDC-IDRI-0001)
CASES = (("whole-heart", "cardiac", (88, 81, 87)), ("ima-aorta", "chest", (167, 278, 202)))
SEED = 900000  # a test seed (never trained on)


def synthetic_input(entry, fov: str, shape_kji) -> Image:
    """A synthetic CTA scan on ``entry``'s grid, centre-cropped to at most ``shape_kji`` voxels."""
    from CardiacAI.synthetic import GeneratorConfig, generate_case

    case = generate_case(SEED, GeneratorConfig(protocol="cta", fov=fov, spacing_mm=entry.input_spacing_mm))
    array = case.image.array
    starts = [max(0, (s - t) // 2) for s, t in zip(array.shape, shape_kji)]
    return crop_image(case.image, tuple(slice(a, a + t) for a, t in zip(starts, shape_kji)))


def timed(image: Image, entry, device, repeats: int):
    import torch

    network = load_network(entry, device.device)
    with torch.inference_mode():
        predict_model_grid_probabilities(image, entry, network, device)  # warm-up: kernels, cuDNN choice
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            _, probs = predict_model_grid_probabilities(image, entry, network, device)  # back on the CPU: synchronised
            times.append(time.perf_counter() - t0)
    return statistics.median(times), (min(times), max(times)), probs


def dice_between(a: np.ndarray, b: np.ndarray, labels) -> dict[str, float | None]:
    """Dice per structure between two label maps; None where neither has the structure."""
    out = {}
    for value, key in labels.items():
        x, y = a == value, b == value
        out[key] = round(dice_coefficient(x, y), 4) if x.any() or y.any() else None
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--json", default=None, help="write the results here too")
    args = ap.parse_args(argv)
    gpu = choose_device(True)
    if gpu.device != "cuda":
        print(f"no CUDA GPU: {gpu.reason}", file=sys.stderr)
        return 2
    cpu = choose_device(False)
    catalog = ModelCatalog.load()
    results = {"machine": machine_info(), "gpu": gpu.reason, "cpu": cpu.reason, "models": []}
    for task, fov, shape in CASES:
        entry = catalog.default_for(task)
        image = synthetic_input(entry, fov, shape)
        gpu_s, gpu_range, gpu_probs = timed(image, entry, gpu, args.repeats)
        cpu_s, cpu_range, cpu_probs = timed(image, entry, cpu, max(1, args.repeats // 5))
        row = {"model": f"{entry.id} {entry.version}", "model_grid_kji": list(image.array.shape),
               "gpu_median_s": round(gpu_s, 4), "gpu_range_s": [round(t, 4) for t in gpu_range],
               "cpu_median_s": round(cpu_s, 4), "cpu_range_s": [round(t, 4) for t in cpu_range],
               "max_abs_probability_difference": float(np.abs(gpu_probs - cpu_probs).max()),
               "dice_gpu_vs_cpu": dice_between(gpu_probs.argmax(0), cpu_probs.argmax(0), entry.labels)}
        results["models"].append(row)
        print(json.dumps(row))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    print(f"\n{gpu.reason}; CPU side: {cpu.reason}")
    print("| model | model grid (k, j, i) | GPU median s | CPU median s | lowest Dice GPU vs CPU |\n|---|---|---|---|---|")
    for r in results["models"]:
        lowest = min(v for v in r["dice_gpu_vs_cpu"].values() if v is not None)
        print(f"| {r['model']} | {r['model_grid_kji']} | {r['gpu_median_s']} | {r['cpu_median_s']} | {lowest} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
