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
With --against CHECKOUT ... it instead times other checkouts of the repository (``git worktree add DIR REV``)
alternately with this one, each a fresh process of its own CardiacAI, and reports each one's median and its
paired time ratio to this checkout: the way to say what a change saved on a machine whose speed drifts.
Not a test: timings depend on the machine and what else runs on it.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import machine_line

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "chest-ct"


def run_once(task: str | list[str], case: Path, out: Path, extra: list[str],
             checkout: Path = REPO) -> tuple[float, float]:
    """Wall-clock seconds and peak RSS (MB) of one fresh ``cardiacai segment`` process run from ``checkout``
    (its own CardiacAI: working folder and PYTHONPATH), with this interpreter and its packages."""
    tasks = [task] if isinstance(task, str) else task
    env = dict(os.environ, PYTHONPATH=str(checkout))
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "CardiacAI", "segment", str(case), "-o", str(out),
                                *[arg for t in tasks for arg in ("--task", t)], "--overwrite", "--quiet", *extra],
                               cwd=checkout, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)  # this child's own peak memory
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code:
        raise subprocess.CalledProcessError(code, process.args)
    return wall, usage.ru_maxrss / 1024.0


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
    parser.add_argument("--against", nargs="+", type=Path, default=[], metavar="CHECKOUT",
                        help="also time other checkouts of the repository (e.g. `git worktree add /tmp/old REV`), "
                             "alternating with this one in every round; prints each one's figures and its paired "
                             "time ratio to this one")
    args = parser.parse_args()
    if args.model and len(args.tasks) != 1:
        parser.error("--model needs exactly one --tasks entry (the model's task)")
    print(f"machine: {machine_line()}")
    extra = (["--cpu"] if args.cpu else []) + (["--model", args.model] if args.model else [])
    if args.together:
        together(args.tasks, args.cases, args.repeats, extra)
        return
    if args.against:
        against(args.tasks, args.cases, args.repeats, extra, [REPO, *(p.resolve() for p in args.against)])
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


def against(tasks: list[str], cases: list[str], repeats: int, extra: list[str], checkouts: list[Path]) -> None:
    """Per task and case, fresh processes of each checkout in turn, ``repeats`` rounds (the order reversed every
    other round, so that none always runs first); each checkout's median, range and peak RSS, and the median of
    its per-round time ratio to the first checkout (this one). Same machine, same hour: the ratios hold where
    absolute times drift with the machine's load."""
    for task in tasks:
        for name in cases:
            case = DATA / name
            if not case.is_dir():
                print(f"{task} {name}: not found at {case}")
                continue
            walls = {c: [] for c in checkouts}
            peaks = {c: [] for c in checkouts}
            with tempfile.TemporaryDirectory() as tmp:
                for round_ in range(repeats):
                    for checkout in checkouts if round_ % 2 == 0 else checkouts[::-1]:
                        wall, peak = run_once(task, case, Path(tmp) / str(checkouts.index(checkout)), extra,
                                              checkout)
                        walls[checkout].append(wall)
                        peaks[checkout].append(peak)
            first = walls[checkouts[0]]
            for checkout in checkouts:
                w = walls[checkout]
                ratio = statistics.median(b / a for a, b in zip(first, w))
                print(f"{task:12s} {name} {checkout}: median {statistics.median(w):.2f} s (min {min(w):.2f}, "
                      f"max {max(w):.2f}, n={len(w)}), peak RSS {max(peaks[checkout]):.0f} MB, "
                      f"paired ratio to {checkouts[0].name} {ratio:.3f}")


if __name__ == "__main__":
    main()
