"""Benchmark: one-click segmentation from reading the DICOM series to a written output folder.

Each run is a fresh process (`cardiacai segment ... --overwrite`), so the time includes Python and
torch start-up as a user sees it, and the peak resident memory (RSS) is that process's alone.
Usage: python benchmarks/bench_segment.py [--repeats 3] [--tasks whole-heart ima-aorta] [--cases ...] [--model ID]
Prints per task and case: median wall-clock (s), min/max, median peak RSS (MB), the median of each
stage time the run wrote to run.json (reading, library imports, model loading, inference,
post-processing, writing), and the machine.
With --warm it also runs each case ``--repeats`` + 1 times in ONE process (a cohort run,
``cardiacai segment CASE CASE ...``) and reports the median of the scans after the first, from
reading the series to writing its folder: the time per scan once PyTorch and MONAI are loaded, as in a
cohort or a Slicer session that has run once.
With --together it instead compares, per case, the tasks run as separate commands with all of them in one
command (``cardiacai segment CASE --task A --task B``: one reading, one import of PyTorch and MONAI), the two
alternating in each repeat so both see the same machine: median of the separate commands' summed wall-clock
against the median of the single command.
Not a test: timings depend on the machine and what else runs on it.
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import machine_line

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "chest-ct"


def run_once(task: str | list[str], case: Path, out: Path, extra: list[str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    tasks = [task] if isinstance(task, str) else task
    subprocess.run([sys.executable, "-m", "CardiacAI", "segment", str(case), "-o", str(out),
                    *[arg for t in tasks for arg in ("--task", t)], "--overwrite", "--quiet", *extra],
                   check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the largest child so far: only a new maximum is this run's own.
    return wall, max(peak, before) / 1024.0


def run_warm(task: str, case: Path, repeats: int, extra: list[str]) -> list[float]:
    """Seconds per scan (reading to writing) of scans 2..repeats+1 of one cohort process."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "CardiacAI", "segment", *[str(case)] * (repeats + 1), "-o", tmp,
                        "--task", task, "--quiet", *extra], check=True, stdout=subprocess.DEVNULL)
        with open(Path(tmp) / "cohort.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
    return [float(r["seconds"]) for r in rows[1:]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tasks", nargs="+", default=["whole-heart", "ima-aorta"])
    parser.add_argument("--cases", nargs="+", default=["LIDC-IDRI-0001", "LIDC-IDRI-0002"])
    parser.add_argument("--cpu", action="store_true", help="pass --cpu (no GPU)")
    parser.add_argument("--warm", action="store_true", help="also time scans in one process (cohort run)")
    parser.add_argument("--model", help="catalog model id instead of the task's default (one task only)")
    parser.add_argument("--together", action="store_true",
                        help="compare the tasks as separate commands with all tasks in one command")
    args = parser.parse_args()
    if args.model and len(args.tasks) != 1:
        parser.error("--model needs exactly one --tasks entry (the model's task)")
    print(f"machine: {machine_line()}")
    extra = (["--cpu"] if args.cpu else []) + (["--model", args.model] if args.model else [])
    if args.together:
        together(args.tasks, args.cases, args.repeats, extra)
        return
    for task in args.tasks:
        for name in args.cases:
            case = DATA / name
            if not case.is_dir():
                print(f"{task} {name}: not found at {case}")
                continue
            walls, peaks, stages = [], [], {}
            with tempfile.TemporaryDirectory() as tmp:
                for _ in range(args.repeats):
                    wall, peak = run_once(task, case, Path(tmp) / "out", extra)
                    walls.append(wall)
                    peaks.append(peak)
                    run = json.loads((Path(tmp) / "out" / "run.json").read_text())
                    for stage, seconds in run["timings_s"].items():
                        stages.setdefault(stage, []).append(seconds)
            print(f"{task:12s} {name}: median {statistics.median(walls):.2f} s (min {min(walls):.2f}, "
                  f"max {max(walls):.2f}, n={len(walls)}), peak RSS {max(peaks):.0f} MB")
            print("    stages (median s): " + ", ".join(f"{stage} {statistics.median(values):.2f}"
                                                      for stage, values in stages.items()))
            if args.warm:
                warm = run_warm(task, case, args.repeats, extra)
                print(f"    in one process, after the first scan: median {statistics.median(warm):.2f} s per scan "
                      f"(min {min(warm):.2f}, max {max(warm):.2f}, n={len(warm)})")


def together(tasks: list[str], cases: list[str], repeats: int, extra: list[str]) -> None:
    """Print, per case, wall-clock seconds of ``tasks`` as separate fresh commands (summed) against one command
    running them all, alternating ``repeats`` times; ``extra``: further ``cardiacai segment`` arguments."""
    for name in cases:
        case = DATA / name
        if not case.is_dir():
            print(f"{name}: not found at {case}")
            continue
        separate, single, peaks = [], [], []
        with tempfile.TemporaryDirectory() as tmp:
            for _ in range(repeats):
                separate.append(sum(run_once(t, case, Path(tmp) / t, extra)[0] for t in tasks))
                wall, peak = run_once(tasks, case, Path(tmp) / "together", extra)
                single.append(wall)
                peaks.append(peak)
        print(f"{' + '.join(tasks)} {name}: separate commands median {statistics.median(separate):.2f} s "
              f"(min {min(separate):.2f}, max {max(separate):.2f}); one command median {statistics.median(single):.2f} s "
              f"(min {min(single):.2f}, max {max(single):.2f}), ratio {statistics.median(single) / statistics.median(separate):.2f}, "
              f"n={repeats}; peak RSS so far {max(peaks):.0f} MB")


if __name__ == "__main__":
    main()
