"""The ``cardiacai`` command line: ``info``, ``convert``, ``segment``, ``generate`` and ``train``.

Errors a user can cause (a wrong path, a damaged series, an unsupported format) are printed as one
clear line on stderr with exit status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

import numpy as np

from . import __version__
from .errors import CardiacAIError, InputError


def orientation_description(direction: np.ndarray) -> str:
    """Describe a 3x3 LPS direction matrix as an orientation code plus its obliquity.

    Returns e.g. ``"LPS (axial, not oblique)"`` or ``"LPS (oblique by 12.0°)"``. The three letters
    are the patient directions the i, j, k index axes point to most closely (ITK/DICOM
    convention). Obliquity is the largest angle between an index axis and its nearest patient axis.
    """
    import SimpleITK as sitk

    d = np.asarray(direction, float).reshape(3, 3)
    code = sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(tuple(d.ravel()))
    cosines = np.clip(np.abs(d).max(axis=0), -1.0, 1.0)
    angle = float(np.degrees(np.arccos(cosines)).max())
    if angle < 0.01:
        plane = {2: "axial", 1: "coronal", 0: "sagittal"}[int(np.argmax(np.abs(d[:, 2])))]
        return f"{code} ({plane}, not oblique)"
    return f"{code} (oblique by {angle:.1f}°)"


def image_summary(image) -> dict:
    """A JSON-serialisable summary of an Image: what ``cardiacai info`` prints."""
    md = image.metadata
    i, j, k = image.shape_ijk
    arr = image.array
    summary = {
        "source": str(md.get("source_path", "")),
        "format": md.get("format", ""),
        "series_instance_uid": md.get("series_instance_uid"),
        "series_description": md.get("series_description"),
        "series_choice": md.get("selection_reason"),
        "modality": image.modality or md.get("modality") or "unknown",
        "manufacturer": md.get("manufacturer"),
        "manufacturer_model": md.get("manufacturer_model"),
        "kvp": md.get("kvp"),
        "contrast_agent": md.get("contrast_agent"),
        "size_ijk": [i, j, k],
        "spacing_mm": [round(s, 4) for s in image.spacing],
        "origin_lps_mm": [round(o, 3) for o in image.origin],
        "orientation": orientation_description(image.direction),
        "hu_min": float(arr.min()),
        "hu_max": float(arr.max()),
        "hu_median": float(np.median(arr)),
        "dtype": str(arr.dtype),
    }
    return summary


def _format_summary(s: dict) -> str:
    def fmt(v):
        if v is None or v == "":
            return "-"
        if isinstance(v, float):
            return f"{v:g}"
        return str(v)

    lines = [
        f"Source:        {fmt(s['source'])} ({fmt(s['format'])})",
        f"Series:        {fmt(s['series_description'])}  UID {fmt(s['series_instance_uid'])}",
    ]
    if s.get("series_choice"):
        lines.append(f"Series choice: {s['series_choice']}")
    lines += [
        f"Modality:      {fmt(s['modality'])}",
        f"Manufacturer:  {fmt(s['manufacturer'])} {fmt(s['manufacturer_model'])}",
        f"kVp:           {fmt(s['kvp'])}",
        f"Contrast:      {fmt(s['contrast_agent'])}",
        "Size:          {} x {} x {} voxels (i x j x k)".format(*s["size_ijk"]),
        "Spacing:       {:g} x {:g} x {:g} mm".format(*s["spacing_mm"]),
        "Origin:        {:g}, {:g}, {:g} mm (LPS)".format(*s["origin_lps_mm"]),
        f"Orientation:   {s['orientation']}",
        f"HU range:      {s['hu_min']:g} .. {s['hu_max']:g} (median {s['hu_median']:g})",
    ]
    return "\n".join(lines)


def _cmd_info(args) -> int:
    from .io import read_image

    image = read_image(args.path, series_uid=args.series_uid, require_ct=False)
    summary = image_summary(image)
    print(json.dumps(summary, indent=2) if args.json else _format_summary(summary))
    return 0


def _cmd_convert(args) -> int:
    from .io import read_image, read_labelmap, write_image, write_labelmap
    from .io.atomic import full_suffix

    out_is_seg = full_suffix(args.output) == ".seg.nrrd"
    in_is_seg = full_suffix(args.input) == ".seg.nrrd"
    if in_is_seg or out_is_seg or args.labelmap:
        from .labels import get_label_set
        from . import slicer_bridge

        if not args.task:
            raise InputError("converting a label map needs the label set that names its values",
                             "add --task whole-heart or --task ima-aorta")
        label_set = get_label_set(args.task)
        reference = read_image(args.reference, require_ct=False) if args.reference else None
        if in_is_seg:
            if reference is None:
                raise InputError("reading a .seg.nrrd needs the image grid to put the label map on",
                                 "add --reference IMAGE (the CT the segmentation was made on)")
            labelmap = slicer_bridge.read_seg_nrrd(args.input, label_set, reference)
        else:
            labelmap = read_labelmap(args.input, reference=reference)
        if out_is_seg:
            slicer_bridge.write_seg_nrrd(labelmap, label_set, args.output, reference=reference)
        else:
            write_labelmap(labelmap, args.output)
    else:
        image = read_image(args.input, series_uid=args.series_uid, require_ct=False)
        write_image(image, args.output)
    print(f"wrote {args.output}")
    return 0


def _segment_tasks(args) -> list[str]:
    """The tasks of ``--task`` (given once or more; ``all`` = every task), in the order given."""
    from .segmentation import TASKS

    tasks: list[str] = []
    for task in args.task:
        for t in TASKS if task == "all" else [task]:
            if t not in tasks:
                tasks.append(t)
    return tasks


def _cmd_segment(args) -> int:
    import threading
    import time

    from .io import read_image
    from .segmentation import (import_inference_libraries, models_for_tasks, prepare_output_folder, segment,
                               task_output_folders, write_outputs)

    tasks = _segment_tasks(args)
    models = models_for_tasks(tasks, args.model or [])
    if args.model_version and len(args.model or []) != 1:
        raise InputError("--model-version needs exactly one --model", "name the model whose version you want")
    if len(args.input) > 1:
        return _segment_cohort(args, tasks, models)
    folders = task_output_folders(args.output, tasks)
    start = time.perf_counter()
    image = read_image(args.input[0], series_uid=args.series_uid)
    read_s = time.perf_counter() - start
    # every folder is checked (and earlier results moved aside) before the first task runs, so a
    # refusal never comes after minutes of work
    backups = [b for b in (prepare_output_folder(f, overwrite=args.overwrite) for f in folders.values()) if b]
    # imported here, after the input and the folders have passed their checks, so that the process can
    # freeze them (see main's short_lived)
    import_s = import_inference_libraries(freeze=args.short_lived)
    cancel = threading.Event()
    for task, folder in folders.items():
        last = [-1]

        def progress(fraction: float, message: str, task=task, last=last) -> None:
            pct = int(fraction * 100)
            if not args.quiet and (pct >= last[0] + 10 or fraction >= 1.0):
                last[0] = pct
                prefix = f"{task} " if len(tasks) > 1 else ""
                print(f"[{prefix}{pct:3d}%] {message}", file=sys.stderr)

        if len(tasks) > 1:
            print(f"== {task} ==", flush=True)
        task_start = time.perf_counter()
        try:
            result = segment(image, task, model_id=models[task],
                             version=args.model_version if models[task] else None,
                             prefer_gpu=not args.cpu, progress=progress, cancel=cancel)
        except KeyboardInterrupt:
            cancel.set()
            raise
        # the scan is read and the libraries imported once: their times are in the first task's record
        if task == tasks[0]:
            timings = result.run["timings_s"]
            result.run["timings_s"] = {"read_s": round(read_s, 3), **timings,
                                       "import_libraries_s": round(import_s + timings.get("import_libraries_s", 0), 3)}
        write_outputs(result, image, folder, overview=not args.no_overview)
        for row in result.measurements:
            state = "present" if row["present"] else "ABSENT"
            extra = f" ({row['reason']})" if row["reason"] else ""
            mass = f", {row['mass_g']:.1f} g" if row["mass_g"] is not None else ""
            print(f"{row['name']:<32} {_volume_text(row['volume_ml'])} mL{mass}  {state}{extra}")
        since = start if task == tasks[0] else task_start
        print(f"{result.run['model']['id']} {result.run['model']['version']} on {result.run['device_reason']}; "
              f"{time.perf_counter() - since:.1f} s from {'reading' if since == start else 'starting'} to "
              f"writing; results in {folder}")
        del result  # the next task's peak memory need not hold this one's label maps
    if len(tasks) > 1:
        print(f"{len(tasks)} tasks in {time.perf_counter() - start:.1f} s from reading to writing")
    for backup in backups:
        print(f"earlier results kept in {backup}")
    return 0


def _volume_text(volume_ml: float) -> str:
    """A structure's volume (mL) for the terminal, 9 characters wide: one decimal, or three below 1 mL, so that
    a present internal mammary artery (a 30 mm piece is 0.05 mL) never reads "0.0 mL present"."""
    return f"{volume_ml:9.1f}" if volume_ml == 0 or volume_ml >= 1 else f"{volume_ml:9.3f}"


def _segment_cohort(args, tasks: list[str], models: dict) -> int:
    import statistics

    from .cohort import COHORT_TABLE, segment_cohort
    from .segmentation import import_inference_libraries, task_output_folders

    def on_scan(index: int, count: int, row) -> None:
        detail = f" ({row.message})" if row.message else ""
        which = f" {row.task}" if len(tasks) > 1 else ""
        print(f"[{index + 1}/{count}] {row.scan}{which}: {row.status} in {row.seconds:.1f} s{detail}", file=sys.stderr)

    import_inference_libraries(freeze=args.short_lived)
    rows = segment_cohort(args.input, tasks, args.output, models=models, version=args.model_version,
                          prefer_gpu=not args.cpu, overwrite=args.overwrite, overview=not args.no_overview,
                          series_uid=args.series_uid, on_scan=None if args.quiet else on_scan)
    failed = [r for r in rows if r.status == "failed"]
    done = [r.seconds for r in rows if r.status == "done"]
    unit = "scan" if len(tasks) == 1 else "scan and task"
    per_scan = f"; {statistics.median(done):.1f} s per {unit} (median)" if done else ""
    tables = [folder / COHORT_TABLE for folder in task_output_folders(args.output, tasks).values()]
    what = "scans" if len(tasks) == 1 else "scan-task runs"
    print(f"{len(rows)} {what}: {len(done)} segmented, {sum(r.status == 'skipped' for r in rows)} skipped, "
          f"{len(failed)} failed{per_scan}; {'table' if len(tables) == 1 else 'tables'} in "
          f"{', '.join(str(t) for t in tables)}")
    return 1 if failed else 0


def _cmd_generate(args) -> int:
    from pathlib import Path

    from .io import write_image, write_labelmap
    from .synthetic import GeneratorConfig, generate_case

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    cfg = GeneratorConfig(protocol=args.protocol, spacing_mm=(args.spacing,) * 3, fov=args.fov)
    case = generate_case(args.seed, cfg)
    stem = f"synthetic-{args.protocol}-seed{args.seed}"
    write_image(case.image, out / f"{stem}.nii.gz")
    for task in ("whole-heart", "ima-aorta"):
        write_labelmap(case.task_labels(task), out / f"{stem}_{task}_labels.nii.gz")
    print(f"wrote {out / (stem + '.nii.gz')} ({case.image.shape_ijk[0]}x{case.image.shape_ijk[1]}x"
          f"{case.image.shape_ijk[2]} voxels) and its whole-heart and ima-aorta label maps")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``cardiacai`` argument parser (subcommands info, convert and, when available, train)."""
    from .synthetic import FOVS, PROTOCOLS  # the names alone: the generator is imported when a scan is generated

    parser = argparse.ArgumentParser(prog="cardiacai", description="CardiacAI: cardiac CT segmentation and quantification.")
    parser.add_argument("--version", action="version", version=f"CardiacAI {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    info = sub.add_parser("info", help="describe a CT: series chosen, modality, scanner, size, spacing, orientation, HU range")
    info.add_argument("path", help="DICOM folder or file, or a NIfTI/NRRD/MHA volume")
    info.add_argument("--series-uid", help="pick this DICOM series when the folder holds several")
    info.add_argument("--json", action="store_true", help="print JSON instead of text")
    info.set_defaults(func=_cmd_info)

    conv = sub.add_parser("convert", help="convert an image or label map between DICOM, NIfTI, NRRD, MHA and .seg.nrrd")
    conv.add_argument("input", help="DICOM folder/file or volume file (a label map with --labelmap, or a .seg.nrrd)")
    conv.add_argument("output", help="output file; the format follows the extension (.nii.gz, .nrrd, .mha, .seg.nrrd)")
    conv.add_argument("--series-uid", help="pick this DICOM series when the folder holds several")
    conv.add_argument("--labelmap", action="store_true", help="the input is an integer label map")
    conv.add_argument("--task", help="label set naming the label values (whole-heart, ima-aorta)")
    conv.add_argument("--reference", help="image whose grid the label map is on (needed to read a .seg.nrrd)")
    conv.set_defaults(func=_cmd_convert)

    seg = sub.add_parser("segment", help="one-click segmentation of a CT (whole heart, or IMAs and aorta)")
    seg.add_argument("input", nargs="+", help="DICOM folder or file, or a NIfTI/NRRD/MHA CT volume; several "
                     "for a cohort (one subfolder each in OUTPUT and a cohort.csv table)")
    seg.add_argument("-o", "--output", required=True, help="output folder (segmentation, .seg.nrrd, labels.json, "
                     "measurements.csv, overview.png, run.json)")
    seg.add_argument("--task", required=True, action="append", choices=["whole-heart", "ima-aorta", "all"],
                     help="the task; give it more than once (or 'all') to run several on each scan read once, "
                     "each into OUTPUT/<task>")
    seg.add_argument("--model", action="append", help="catalog model id (default: the task's default model); "
                     "with several tasks, once per task whose model you pick")
    seg.add_argument("--model-version", help="model version of the one --model (default: the highest)")
    seg.add_argument("--cpu", action="store_true", help="do not use a GPU even when one is present")
    seg.add_argument("--series-uid", help="pick this DICOM series when the folder holds several")
    seg.add_argument("--overwrite", action="store_true",
                     help="replace results already in the folder (the old files are kept in previous-<time>/); "
                     "in a cohort, scans with results are skipped without it")
    seg.add_argument("--no-overview", action="store_true", help="skip overview.png")
    seg.add_argument("--quiet", action="store_true", help="no progress lines")
    seg.set_defaults(func=_cmd_segment)

    gen = sub.add_parser("generate", help="write a synthetic labelled chest CT (NIfTI) from the project's generator")
    gen.add_argument("-o", "--output", required=True, help="output folder")
    gen.add_argument("--seed", type=int, default=0, help="random seed (the same seed gives the same scan)")
    gen.add_argument("--protocol", default="cta", choices=PROTOCOLS)
    gen.add_argument("--spacing", type=float, default=1.0, help="isotropic voxel size in mm (0.3-3)")
    gen.add_argument("--fov", default="chest", choices=FOVS)
    gen.set_defaults(func=_cmd_generate)

    for register in _optional_subcommands():
        register(sub)
    return parser


def _optional_subcommands():
    """Subcommand registrars of subpackages (imported lazily: none may import torch at parse time)."""
    registrars = []
    try:
        from .training.cli import add_train_parser
    except ImportError:
        pass
    else:
        registrars.append(add_train_parser)
    return registrars


def main(argv: Sequence[str] | None = None, *, short_lived: bool = False) -> int:
    """Run one ``cardiacai`` command (``argv``: its arguments; default ``sys.argv[1:]``); return its exit status.

    short_lived: the process ends after this command (:func:`console_main`). ``segment`` then freezes the
        objects of PyTorch and MONAI out of the garbage collector once they are imported
        (:func:`CardiacAI.segmentation.import_inference_libraries`). Leave it False in a process that goes on
        (tests, Slicer).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    args.short_lived = short_lived
    try:
        return int(args.func(args) or 0)
    except CardiacAIError as error:
        print(f"cardiacai {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"cardiacai {args.command}: cancelled", file=sys.stderr)
        return 130


def console_main() -> int:
    """The process entry point (the ``cardiacai`` console script and ``python -m CardiacAI``).

    Runs :func:`main` as a short-lived process and returns its exit status. Such a process keeps the memory it
    frees for reuse (:func:`CardiacAI.allocator.keep_freed_memory_for_reuse`) and freezes PyTorch and MONAI out
    of the garbage collector once they are imported. Before returning it freezes the objects alive now
    out of the garbage collector (:func:`gc.freeze`): at exit, Python otherwise walks every object
    PyTorch and MONAI created, about 0.8 s of a 5 s run on a 2-core CPU, for a process that is ending.
    Files are already closed and ``atexit`` handlers still run. Tests and Slicer call :func:`main`,
    which leaves the allocator and the collector alone.
    """
    import gc

    from .allocator import keep_freed_memory_for_reuse

    keep_freed_memory_for_reuse()
    status = main(short_lived=True)
    gc.freeze()
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(console_main())
