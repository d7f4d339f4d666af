"""Cohort runs: one-click segmentation of many CTs in one process, for research cohorts.

Each scan gets its own output folder (``OUTDIR/<scan name>/``, the files of
:func:`CardiacAI.segmentation.write_outputs`), and ``OUTDIR/cohort.csv`` holds one row per scan:
its status, the seconds it took, and the volume (mL) of every structure found (LV myocardial mass
in g for the whole heart). The table is rewritten atomically after every scan, so a run stopped
half-way leaves a consistent table; run the same command again and the scans with results already
are skipped (read back into the table), not redone, unless ``overwrite``.

A bad scan (unreadable DICOM, not a CT) is recorded as failed with the reason and the run goes
on; a problem with the model itself (missing or corrupt weights) stops the run, since every scan
would fail the same way. Loading PyTorch and MONAI happens once per process, which is most of a
single scan's cold-start time on a CPU. Several tasks in one run read each scan once and keep each
task's folders and table apart: ``OUTDIR/<task>/<scan name>/`` and ``OUTDIR/<task>/cohort.csv``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import threading
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

from .errors import InputError
from .io.atomic import atomic_output
from .labels import get_label_set

#: Name of the cohort summary table in the output folder.
COHORT_TABLE = "cohort.csv"

#: Volume file extensions removed to name a scan after its file.
_VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".dcm")


@dataclasses.dataclass
class CohortRow:
    """One scan of a cohort run.

    Attributes
    ----------
    scan: the scan's name (its output subfolder).
    input: the input path as given.
    status: "done", "skipped" (results existed) or "failed".
    message: why it failed or was skipped; empty when done.
    seconds: wall-clock seconds from reading the scan to writing its folder (0 when skipped/failed early).
    volumes_ml: structure key -> volume in mL, for structures found present.
    mass_g: LV myocardial mass in g (whole heart), else None.
    task: the segmentation task of the row.
    contrast: the run's ``contrast_decision`` (:func:`CardiacAI.segmentation.unenhanced_class_weights`) when its
        model judges the scan's contrast, else None: in a cohort, which scans were segmented as unenhanced (their
        IMAs weighted) must be known to the analysis.
    """

    scan: str
    input: str
    status: str
    message: str = ""
    seconds: float = 0.0
    volumes_ml: dict[str, float] = dataclasses.field(default_factory=dict)
    mass_g: float | None = None
    task: str = ""
    contrast: dict | None = None


def scan_names(inputs: Sequence[str | Path]) -> list[str]:
    """Output subfolder names for ``inputs``: the file or folder name without volume extensions,
    made unique with ``-2``, ``-3`` ... in input order (two DICOM folders may share a name)."""
    names: list[str] = []
    seen: dict[str, int] = {}
    for path in inputs:
        name = Path(path).name or Path(path).resolve().name
        for suffix in _VOLUME_SUFFIXES:
            if name.lower().endswith(suffix):
                name = name[: -len(suffix)]
                break
        name = name or "scan"
        count = seen.get(name, 0) + 1
        seen[name] = count
        names.append(name if count == 1 else f"{name}-{count}")
    return names


def _row_from_folder(scan: str, source: str, folder: Path, message: str) -> CohortRow:
    """A skipped scan's row, read back from the ``measurements.csv`` its earlier run wrote."""
    row = CohortRow(scan, source, "skipped", message)
    table = folder / "measurements.csv"
    if table.is_file():
        with open(table, newline="", encoding="utf-8") as fh:
            for rec in csv.DictReader(fh):
                if rec.get("present") == "True" and rec.get("volume_ml"):
                    row.volumes_ml[rec["key"]] = float(rec["volume_ml"])
                if rec.get("mass_g"):
                    row.mass_g = float(rec["mass_g"])
    record = folder / "run.json"
    if record.is_file():
        try:
            row.contrast = json.loads(record.read_text(encoding="utf-8")).get("contrast_decision")
        except (OSError, ValueError):  # a damaged record costs the column, not the cohort
            row.contrast = None
    return row


def cohort_table(rows: Sequence[CohortRow], task: str) -> str:
    """The CSV text of ``cohort.csv``: scan, input, status, message, seconds, then one
    ``<structure key>_ml`` column per structure of the task's label set (empty when the structure
    was not found), ``lv_myocardial_mass_g`` for the whole heart, and for the IMA/aorta task
    ``unenhanced`` (True/False: whether the scan was segmented as one without contrast) and
    ``contrast_reference_mean_hu`` (the predicted aorta's mean HU on the model grid that decided it), empty where
    the model does not judge contrast."""
    keys = [s.key for s in get_label_set(task).structures]
    fields = ["scan", "input", "status", "message", "seconds"] + [f"{k}_ml" for k in keys]
    if task == "whole-heart":
        fields.append("lv_myocardial_mass_g")
    if task == "ima-aorta":
        fields += ["unenhanced", "contrast_reference_mean_hu"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        rec = {"scan": row.scan, "input": row.input, "status": row.status, "message": row.message,
               "seconds": f"{row.seconds:.2f}"}
        rec.update({f"{k}_ml": (f"{row.volumes_ml[k]:.2f}" if k in row.volumes_ml else "") for k in keys})
        if task == "whole-heart":
            rec["lv_myocardial_mass_g"] = "" if row.mass_g is None else f"{row.mass_g:.1f}"
        if task == "ima-aorta":
            decision = row.contrast or {}
            hu = decision.get("reference_mean_hu")
            rec["unenhanced"] = "" if "unenhanced" not in decision else str(bool(decision["unenhanced"]))
            rec["contrast_reference_mean_hu"] = "" if hu is None else f"{hu:.1f}"
        writer.writerow(rec)
    return buffer.getvalue()


def segment_cohort(inputs: Sequence[str | Path], task: str | Sequence[str], outdir: str | Path, *,
                   model_id: str | None = None, version: str | None = None,
                   models: Mapping[str, str | None] | None = None, prefer_gpu: bool = True,
                   overwrite: bool = False, overview: bool = True, series_uid: str | None = None, catalog=None,
                   on_scan: Callable[[int, int, CohortRow], None] | None = None,
                   cancel: threading.Event | None = None) -> list[CohortRow]:
    """Segment every CT of ``inputs`` for ``task`` into ``outdir/<scan name>/`` and write ``outdir/cohort.csv``.

    With several tasks each scan is read once and segmented for every task, and each task writes
    what it would write alone into its own folder: ``outdir/<task>/<scan name>/`` and
    ``outdir/<task>/cohort.csv``.

    Parameters
    ----------
    inputs: DICOM folders/files or volume files, one scan each.
    task: a task of :data:`CardiacAI.segmentation.TASKS`, or several.
    model_id: the model of a one-task run; default the task's default.
    version: the version of the one named model (``model_id`` or in ``models``); default its highest.
    models: task -> model id for a run of several tasks (see
        :func:`CardiacAI.segmentation.models_for_tasks`); tasks missing from it use their default.
    prefer_gpu, overview: as for :func:`CardiacAI.segmentation.segment` and
        :func:`CardiacAI.segmentation.write_outputs`.
    overwrite: redo scans whose folder holds results (the old files go to ``previous-<time>/``);
        otherwise such scans are skipped and their earlier measurements are put in the table.
    series_uid: the DICOM series to read when an input folder holds several.
    catalog: a :class:`CardiacAI.models.ModelCatalog`; default the packaged one (loaded once).
    on_scan: called as ``on_scan(index, count, row)`` after each scan and task (``row.task`` says which).
    cancel: set it to stop after the current stage; :class:`OperationCancelled` is raised, and the
        tables hold the scans finished so far.

    Returns the rows of the tables in input order, a scan's tasks in the order given. A row's
    ``seconds`` run from reading the scan to writing its folder; with several tasks the reading
    is counted in the first task that runs.

    Raises
    ------
    InputError: ``outdir`` is a file, no inputs were given, a bad task list, a model of another task,
        or a version without exactly one named model.
    ModelError: the model cannot be loaded (this would fail every scan, so the run stops).
    OperationCancelled: ``cancel`` was set.
    """
    from .io import read_image
    from .segmentation import (OUTPUT_FILES, models_for_tasks, prepare_output_folder, segment, task_output_folders,
                               write_outputs)

    if not inputs:
        raise InputError("no input scans were given", "give one or more DICOM folders or volume files")
    tasks = [task] if isinstance(task, str) else list(task)
    if catalog is None:
        from .models import ModelCatalog

        catalog = ModelCatalog.load()
    chosen = models_for_tasks(tasks, [m for m in (models or {}).values() if m] + ([model_id] if model_id else []),
                              catalog)
    if version is not None and sum(m is not None for m in chosen.values()) != 1:
        raise InputError("a model version needs exactly one named model", "name the model whose version you want")
    out = Path(outdir)
    if out.exists() and not out.is_dir():
        raise InputError(f"the output path {out} exists and is not a folder", "choose a folder for the results")
    task_dirs = task_output_folders(out, tasks)
    for folder in task_dirs.values():
        folder.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[CohortRow]] = {t: [] for t in tasks}
    everything: list[CohortRow] = []
    for index, (name, source) in enumerate(zip(scan_names(inputs), inputs)):
        image = None
        unreadable: InputError | None = None
        for t in tasks:
            folder = task_dirs[t] / name
            if not overwrite and any((folder / f).exists() for f in OUTPUT_FILES):
                row = _row_from_folder(name, str(source), folder, "results exist; pass --overwrite to redo")
            elif unreadable is not None:  # one reading per scan: its error stands for every task
                row = CohortRow(name, str(source), "failed", str(unreadable))
            else:
                start = time.perf_counter()
                try:
                    if image is None:
                        image = read_image(source, series_uid=series_uid)
                    prepare_output_folder(folder, overwrite=overwrite)
                    result = segment(image, t, model_id=chosen[t], version=version if chosen[t] else None,
                                     catalog=catalog, prefer_gpu=prefer_gpu, cancel=cancel)
                    write_outputs(result, image, folder, overview=overview)
                except InputError as exc:  # this scan is bad; the others may be fine
                    if image is None:  # the reading failed: no other task reads it again
                        unreadable = exc
                    row = CohortRow(name, str(source), "failed", str(exc), time.perf_counter() - start)
                else:
                    row = CohortRow(name, str(source), "done", "", time.perf_counter() - start,
                                    {m["key"]: float(m["volume_ml"]) for m in result.measurements if m["present"]},
                                    next((m["mass_g"] for m in result.measurements if m["mass_g"] is not None),
                                         None), contrast=result.run.get("contrast_decision"))
                    del result  # the next task's peak memory need not hold this one's label maps
            row.task = t
            rows[t].append(row)
            everything.append(row)
            with atomic_output(task_dirs[t] / COHORT_TABLE) as tmp:
                tmp.write_text(cohort_table(rows[t], t), encoding="utf-8")
            if on_scan is not None:
                on_scan(index, len(inputs), row)
    return everything
