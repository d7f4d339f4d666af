"""Benchmark the synthetic CT generator: seconds per case for each protocol.

Reports the median (and min/max) wall time of ``generate_case`` over several seeds per protocol at
1 mm isotropic with the whole-chest field of view (the largest), together with the machine it ran
on. The issue's target is <= 10 s per case on 2 CPU cores.

Usage: python benchmarks/bench_generator.py [--seeds 5] [--fov chest] [--spacing 1.0] [--json out.json]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "2")  # the target machine has 2 cores

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from CardiacAI.synthetic import PROTOCOLS, GeneratorConfig, generate_case  # noqa: E402
from machine import machine_info  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--fov", default="chest")
    ap.add_argument("--spacing", type=float, default=1.0)
    ap.add_argument("--protocols", nargs="*", default=list(PROTOCOLS))
    ap.add_argument("--json", type=Path, help="also write the results as JSON")
    args = ap.parse_args()
    generate_case(0, GeneratorConfig(fov="narrow", spacing_mm=(2.0, 2.0, 2.0)))  # warm up imports and caches
    info = machine_info()
    print("machine:", json.dumps(info))
    results = {}
    for protocol in args.protocols:
        times, shapes = [], []
        for seed in range(args.seeds):
            cfg = GeneratorConfig(protocol=protocol, fov=args.fov, spacing_mm=(args.spacing,) * 3)
            t0 = time.perf_counter()
            case = generate_case(seed, cfg)
            times.append(time.perf_counter() - t0)
            shapes.append(case.image.array.shape)
        voxels = statistics.median(int(np.prod(s)) for s in shapes)
        results[protocol] = {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
                             "seeds": args.seeds, "median_voxels": voxels}
        print(f"{protocol:18s} median {statistics.median(times):5.2f} s  (min {min(times):.2f}, max {max(times):.2f}; "
              f"{args.seeds} seeds, fov {args.fov}, {args.spacing} mm, median {voxels / 1e6:.1f} M voxels)")
    if args.json:
        from CardiacAI.io.atomic import atomic_output

        with atomic_output(args.json) as tmp:
            tmp.write_text(json.dumps({"machine": info, "results": results}, indent=1))


if __name__ == "__main__":
    main()
