"""Accuracy of the shipped models on synthetic test scans (generator seeds never used in training).

Runs the full one-click pipeline (`CardiacAI.segmentation.segment`, localisation, post-processing and
all) on whole-chest synthetic scans of each protocol and compares with the generator's labels:
Dice, HD95 and ASD (mm) per structure (MONAI metrics via CardiacAI.metrics). Structures the
generator cropped out of the field of view are scored only for absence.
Usage: python benchmarks/evaluate_models.py [--cases 3] [--spacing 1.5 | I,J,K] [--tasks ...] [--protocols ...]
       [--catalog CATALOG.json] [--model ID] [--tuning] [--markdown FILE] [--json FILE]
With --catalog a candidate model is scored before it is shipped (a catalog listing it, e.g. one written
next to a training run's model.pt and card with CardiacAI.models.catalog_entry_from_card). --model scores a
catalog model other than the task's default (e.g. ima-aorta-se-swin). With --tuning the
scans come from other seeds (800000 on), on which post-processing settings are chosen; the test scans
(900000 on) then score the choice.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from CardiacAI.metrics import compare_labelmaps
from CardiacAI.models import ModelCatalog
from CardiacAI.segmentation import segment
from CardiacAI.synthetic import GeneratorConfig, generate_case
from CardiacAI.synthetic import __version__ as synthetic_version

#: Test seeds: training uses seeds < 100 and validation 100000-300002 (scripts/train_models.sh).
TEST_SEED_START = 900_000
#: Tuning seeds, for choosing a post-processing setting without looking at the test scans.
TUNING_SEED_START = 800_000


#: Vessel + perivascular unions scored as the IMA/aorta paper reports them ("IMA/peri-IMA",
#: "aorta/periaortic region"); the regions are computed from the predicted vessels.
COMBINED = {"ima-aorta": {"imas_with_peri_ima_region": ("left_internal_mammary_artery",
                                                         "right_internal_mammary_artery", "peri_ima_region"),
                          "aorta_with_periaortic_region": ("aorta", "periaortic_region")}}


def _union(labelmap, values):
    """A binary label map (1 where ``labelmap`` holds any of ``values``) on the same grid."""
    return labelmap.with_array(np.isin(labelmap.array, values).astype(np.uint8))


def evaluate(task: str, protocol: str, cases: int, spacing: tuple[float, float, float], catalog=None,
             first_seed: int = TEST_SEED_START, model_id: str | None = None) -> dict:
    """Scores of one task's model (``model_id``, default the task's default) on ``cases`` synthetic whole-chest
    scans of ``protocol`` at ``spacing`` (mm, i, j, k), seeds ``first_seed`` on: Dice, HD95 and ASD (mm) per
    structure, averaged over the scans (a JSON-ready dict; see ``markdown``)."""
    per_structure: dict[str, dict[str, list[float]]] = {}
    absent_ok, absent_total, seconds, regions = 0, 0, [], {}
    for n in range(cases):
        seed = first_seed + n
        case = generate_case(seed, GeneratorConfig(protocol=protocol, spacing_mm=tuple(spacing), fov="chest"))
        truth = case.task_labels(task)
        start = time.perf_counter()
        result = segment(case.image, task, model_id=model_id, prefer_gpu=False, catalog=catalog)
        seconds.append(time.perf_counter() - start)
        region = result.run["stages"][-1].get("region", "")
        regions[region] = regions.get(region, 0) + 1
        predicted_keys = [s.key for s in result.label_set.structures if not s.derived_from]
        structures = {s.key: s.value for s in result.label_set.structures if s.key in predicted_keys}
        scores = compare_labelmaps(result.labelmap, truth, structures)
        values = {s.key: s.value for s in result.label_set.structures}
        for name, keys in COMBINED.get(task, {}).items():
            if not all(case.present[task].get(k, True) for k in keys if k in structures):
                continue  # scored when every vessel of the union is in view
            group = [values[k] for k in keys]
            scores.update(compare_labelmaps(_union(result.labelmap, group), _union(truth, group), {name: 1}))
        for key, m in scores.items():
            if not case.present[task].get(key, True):
                absent_total += 1
                absent_ok += int(not result.presence[key].present)
                continue
            d = per_structure.setdefault(key, {"dice": [], "hd95": [], "asd": []})
            d["dice"].append(m.dice)
            d["hd95"].append(m.hd95_mm)
            d["asd"].append(m.asd_mm)
    return {"task": task, "protocol": protocol, "cases": cases, "spacing_mm": list(spacing),
            "model": f"{result.run['model']['id']} {result.run['model']['version']}",
            "generator": synthetic_version,
            "seeds": [first_seed, first_seed + cases - 1],
            "median_seconds": statistics.median(seconds), "regions": regions,
            "absent_correct": [absent_ok, absent_total],
            "structures": {k: {m: float(np.mean(v)) for m, v in d.items()} for k, d in per_structure.items()}}


def markdown(results: list[dict]) -> str:
    lines = []
    for r in results:
        size = " x ".join(f"{v:g}" for v in r["spacing_mm"]) if isinstance(r["spacing_mm"], list) else f"{r['spacing_mm']:g}"
        regions = ", ".join(f"{n} on the {name}" for name, n in r.get("regions", {}).items())
        lines.append(f"**{r['task']}, {r['protocol']}**, {r.get('model', '')} on generator {r.get('generator', '?')} "
                     f"({r['cases']} whole-chest scans at {size} mm, "
                     f"seeds {r['seeds'][0]}-{r['seeds'][1]}; median {r['median_seconds']:.1f} s per scan; "
                     f"segmented: {regions})\n")
        lines.append("| structure | Dice | HD95 (mm) | ASD (mm) |\n|---|---|---|---|")
        combined = COMBINED.get(r["task"], {})
        single = {k: m for k, m in r["structures"].items() if k not in combined}
        unions = {k: m for k, m in r["structures"].items() if k in combined}
        for key, m in single.items():
            lines.append(f"| {key} | {m['dice']:.3f} | {m['hd95']:.1f} | {m['asd']:.2f} |")
        lines.append(f"| **mean** | **{np.mean([m['dice'] for m in single.values()]):.3f}** | | |")
        for key, m in unions.items():
            lines.append(f"| {key} (as the IMA/aorta paper reports) | {m['dice']:.3f} | {m['hd95']:.1f} | {m['asd']:.2f} |")
        ok, total = r["absent_correct"]
        if total:
            lines.append(f"\nStructures cropped out of the field of view reported absent: {ok} of {total}.")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=3)
    parser.add_argument("--spacing", default="1.0",
                        help="voxel size of the test scans in mm: one value, or i,j,k (e.g. 0.75,0.75,2 like a chest CT)")
    parser.add_argument("--tasks", nargs="+", default=["whole-heart", "ima-aorta"])
    parser.add_argument("--protocols", nargs="+", default=["cta", "chest_noncontrast"])
    parser.add_argument("--catalog", type=Path,
                        help="a model catalog (JSON) to evaluate instead of the packaged one, e.g. a candidate's")
    parser.add_argument("--model", help="catalog model id to score instead of the task's default (one task only)")
    parser.add_argument("--tuning", action="store_true",
                        help=f"score the tuning scans (seeds from {TUNING_SEED_START}) instead of the test scans, to "
                        "choose a setting without looking at the test scans")
    parser.add_argument("--json", type=Path, help="write the results as JSON too")
    parser.add_argument("--markdown", type=Path, help="write the tables as Markdown too")
    args = parser.parse_args()
    spacing = [float(v) for v in args.spacing.split(",")]
    spacing = tuple(spacing * 3 if len(spacing) == 1 else spacing)
    if args.model and len(args.tasks) != 1:
        parser.error("--model needs exactly one --tasks entry (the model's task)")
    catalog = ModelCatalog.load(args.catalog) if args.catalog else None
    first_seed = TUNING_SEED_START if args.tuning else TEST_SEED_START
    results = [evaluate(t, p, args.cases, spacing, catalog, first_seed, args.model)
               for t in args.tasks for p in args.protocols]
    text = markdown(results)
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
