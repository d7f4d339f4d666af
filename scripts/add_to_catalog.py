"""Ship trained models: copy each run's model.pt + model_card.json into CardiacAI/models/weights/<id>/
and (re)write the packaged catalog CardiacAI/models/catalog.json from them.

Usage: python scripts/add_to_catalog.py RUNS_DIR
RUNS_DIR holds the folders written by scripts/train_models.sh. The catalog entries (ids, versions,
titles, which one is default, the two-stage link and the minimum plausible volumes) are defined
below, in one place.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from CardiacAI.io.atomic import atomic_output
from CardiacAI.models import ModelCatalog
from CardiacAI.models.catalog import catalog_entry_from_card

REPO = Path(__file__).resolve().parents[1]
MODELS_DIR = REPO / "CardiacAI" / "models"

# Smallest plausible volume per structure (mL); a prediction below it is reported absent rather
# than shown as a speck. Far below normal adult anatomy (e.g. LV cavity ~ 50-250 mL).
WHOLE_HEART_MIN_ML = {
    "pulmonary_veins": 1.0, "left_atrium": 10.0, "left_ventricle_cavity": 15.0,
    "left_ventricle_myocardium": 20.0, "aorta": 10.0, "coronary_sinus": 0.3,
    "superior_vena_cava": 2.0, "right_atrium": 10.0, "right_ventricle_cavity": 15.0,
    "pulmonary_artery": 5.0,
}
# No minimum volume for the IMAs: post-processing already keeps only an IMA that runs >= 30 mm, and a 2 mm artery
# over 30 mm is 0.05-0.09 mL, so the former 0.1 mL hid the one true piece found on a real CT (30 mm of the left IMA
# of LIDC-IDRI-0001, 0.049 mL) and, on the synthetic tuning scans, only true pieces (docs/segmentation.md).
IMA_AORTA_MIN_ML = {"aorta": 10.0}
# Without contrast an IMA is a soft-tissue dot in fat and the U-Net's argmax under-calls it. On the 8 non-contrast
# tuning scans (seeds 800000-800007) weighting the IMA probabilities by 1.5 / 2 / 3 before the argmax lifted the IMAs
# from 0.293 / 0.399 (left / right) to 0.350 / 0.441, 0.387 / 0.456 and 0.416 / 0.455, the aorta unchanged; the
# predicted aorta's mean HU told every tuning scan's contrast apart (docs/segmentation.md). Weight 2, not 3: with 3
# the real non-contrast LIDC-IDRI-0002 got a false right IMA on the sternum's edge (18 mm, mean 379 HU: bone); with 2
# it has none, as before.
IMA_UNENHANCED_WEIGHTS = {"reference": "aorta", "below_hu": 120.0,
                          "weights": {"left_internal_mammary_artery": 2.0, "right_internal_mammary_artery": 2.0}}
# Windows of at most 96 x 160 x 120 voxels (k, j, i; 192 x 160 x 120 mm) instead of 96³: the U-Net sees the chest
# wall together with more of what lies behind and beside it (8 windows over LIDC-IDRI-0001's band instead of 24, no
# slower). On the 24 tuning scans the left IMA gains 0.03-0.07 (docs/segmentation.md); on LIDC-IDRI-0001 the
# ascending aorta is drawn whole and more of both real IMAs is found.
IMA_MAX_INFERENCE_WINDOW = [96, 160, 120]
# Both IMA/aorta models: the enhanced IMAs followed along their lumen from the network's pieces, the descending
# aorta followed below where the network stops, the unenhanced ascending aorta drawn as the circle fitting its edge
# (CardiacAI.lumen_tracking; docs/segmentation.md).
IMA_LUMEN_TRACKING = {"structures": ["left_internal_mammary_artery", "right_internal_mammary_artery"],
                      "descending_aorta": "aorta", "unenhanced_ascending_aorta": "aorta"}

# The whole-heart model draws an enhanced aorta as a core inside its lumen (LIDC-IDRI-0001): its cross-sections are
# widened to the lumen at half maximum (CardiacAI.lumen_tracking.draw_enhanced_aorta_lumen), and its descending aorta,
# which ends with the region of interest above the diaphragm, is followed down to the scan's lower edge
# (follow_descending_aorta); it draws the enhanced coronary sinus too wide, into the fat of the atrioventricular groove,
# and the sinus is trimmed to its lumen at half maximum (CardiacAI.lumen_trim); it draws the enhanced SVC as a core
# inside its lumen too, and the SVC is widened as the aorta is (docs/segmentation.md).
WHOLE_HEART_LUMEN_TRACKING = {"enhanced_aorta_lumen": "aorta", "descending_aorta": "aorta",
                              "enhanced_lumen_trim": ["coronary_sinus"], "enhanced_lumen_widen": ["superior_vena_cava"]}

MODELS = [
    # (run folder, id, version, title, extra catalog fields)
    ("whole-heart-localizer", "whole-heart-localizer", "0.2.0",
     "Whole heart localiser (U-Net, 6 mm)", {"hidden": True}),
    # the region of interest: the localised heart plus 35 mm, at most 190 mm L-R and A-P (one 96-voxel window
    # at 2 mm) and 250 mm S-I (two windows) around the chambers, so the aorta and SVC keep their length:
    # on synthetic test scans 190 mm S-I cut them (mean Dice 0.819 CTA / 0.720 non-contrast), 250 mm gives
    # 0.853 / 0.747 at 1.3 s per scan, 240 mm on every axis 0.858 / 0.760 at 3.5 s
    # 0.5.0: one more cycle on generator 0.2.11 (contrast right atria drawn as swirls of SVC through IVC blood):
    # better on every tuning protocol with the heart-contact rule (docs/segmentation.md)
    ("whole-heart-densevnet", "whole-heart-densevnet", "0.5.0",
     "Whole heart, 10 structures (Dense V-Net, 2 mm, two-stage)",
     {"default": True, "localizer": {"model": "whole-heart-localizer", "version": "0.2.0", "margin_mm": 35.0,
                                     "max_size_mm": [190.0, 190.0, 250.0]},
      "min_volume_ml": WHOLE_HEART_MIN_ML, "lumen_tracking": WHOLE_HEART_LUMEN_TRACKING}),
    # 0.5.0: two more cycles on generators 0.2.7-0.2.8 (the body bent forward below the chest): better on the
    # synthetic tuning scans and the first to label LIDC-IDRI-0001's aorta below the hiatus (docs/segmentation.md);
    # 0.6.0: one more on generator 0.2.10 (intercostal muscle in front of the IMAs): better on every tuning
    # protocol and on the real aorta check, no false structure on either real CT
    # 0.7.0: one more at a third of the learning rate on generator 0.2.11 (bright injected veins): better IMAs on
    # every tuning protocol, the same real aorta check, both IMAs of the real contrast CT found in part
    ("ima-aorta-unet", "ima-aorta-unet", "0.7.0",
     "Internal mammary arteries and aorta with perivascular regions (U-Net, 1 x 1 x 2 mm)",
     {"default": True, "min_volume_ml": IMA_AORTA_MIN_ML, "midline_band_mm": 200.0,
      "max_inference_window": IMA_MAX_INFERENCE_WINDOW, "unenhanced_weights": IMA_UNENHANCED_WEIGHTS,
      "lumen_tracking": IMA_LUMEN_TRACKING}),
    # the IMA/aorta paper's SE + Swin network (strided stem for the CPU), offered beside the U-Net, which stays the
    # default: on the real CTs it finds neither the right IMA of LIDC-IDRI-0001 nor most of LIDC-IDRI-0002's
    # ascending aorta (docs/segmentation.md). 0.2.0: one more cycle on generator 0.2.12 (a lent GPU): level with
    # the U-Net on the synthetic tuning scans, far better than 0.1.0 without contrast
    ("ima-aorta-se-swin", "ima-aorta-se-swin", "0.2.0",
     "Internal mammary arteries and aorta with perivascular regions (SE + Swin as in the IMA/aorta paper, 1 x 1 x 2 mm)",
     {"min_volume_ml": IMA_AORTA_MIN_ML, "midline_band_mm": 200.0, "lumen_tracking": IMA_LUMEN_TRACKING}),
]


def _evaluation(model_id: str) -> dict:
    """The card's evaluation section from docs/models/: the synthetic test figures written by
    benchmarks/evaluate_models.py, the real-scan aorta check of benchmarks/real_aorta_check.py (IMA/aorta
    models), and the review of the output on the real CTs."""
    docs = REPO / "docs" / "models"
    evaluation = {}
    synthetic = docs / f"{model_id}-synthetic-test.json"
    if synthetic.is_file():
        evaluation["synthetic_test"] = {r["protocol"]: r for r in json.loads(synthetic.read_text())}
    real_aorta = docs / f"{model_id}-real-aorta.json"
    if real_aorta.is_file():
        evaluation["real_aorta_check"] = json.loads(real_aorta.read_text())
    review = docs / f"{model_id}.review.json"
    if review.is_file():
        evaluation.update(json.loads(review.read_text()))
    return evaluation


def main(runs: Path) -> None:
    entries = []
    for folder, model_id, version, title, extra in MODELS:
        run = runs / folder
        if not (run / "model_card.json").is_file():
            print(f"skipping {model_id}: no model_card.json in {run}")
            continue
        dest = MODELS_DIR / "weights" / model_id
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(run / "model.pt", dest / "model.pt")
        card = json.loads((run / "model_card.json").read_text(encoding="utf-8"))
        evaluation = _evaluation(model_id)
        if evaluation:
            card["evaluation"] = evaluation
        (dest / "model_card.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
        entry = catalog_entry_from_card(dest / "model_card.json", model_id, version, title,
                                        catalog_dir=MODELS_DIR, default=bool(extra.get("default")),
                                        embed_card=False)
        entry.update({k: v for k, v in extra.items() if k != "default"})
        entry["license"] = "Apache-2.0 (trained by CardiacAI on its own synthetic data)"
        entries.append(entry)
    catalog = {"$schema": "catalog.schema.json", "schema_version": 1, "models": entries}
    ModelCatalog.from_dict(catalog, MODELS_DIR, "new catalog")  # validate before writing
    with atomic_output(MODELS_DIR / "catalog.json") as tmp:
        tmp.write_text(json.dumps(catalog, indent=2) + "\n", encoding="utf-8")
    print(f"catalog: {[e['id'] for e in entries]}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/models"))
