"""Calibrate the synthetic CT's HU against the real LIDC-IDRI chest CTs, and compare.

1. Measures HU median/IQR per tissue in the hand-placed ROIs of
   CardiacAI/synthetic/calibration_rois.json on LIDC-IDRI-0001 (contrast) and -0002 (non-contrast).
2. Writes CardiacAI/synthetic/hu_calibration.json (medians per tissue + noise SD estimated from the
   fat/muscle IQRs), which the "chest_contrast" / "chest_noncontrast" protocols read.
3. Generates synthetic cases of both protocols at the real scans' voxel size and prints a table of
   real vs synthetic median/IQR per tissue (markdown, for docs/synthetic.md), and with --pictures
   writes ROI and side-by-side pictures to docs/images/synthetic/.

Usage: python benchmarks/calibrate_hu.py [--data ../shared/data] [--seeds 3] [--no-write] [--pictures]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from CardiacAI.io.atomic import atomic_output  # noqa: E402
from CardiacAI.synthetic import GeneratorConfig, generate_case  # noqa: E402
from CardiacAI.synthetic import calibration as cal  # noqa: E402

PROTOCOL_SPACING = {"chest_contrast": (0.703125, 0.703125, 2.5), "chest_noncontrast": (0.681641, 0.681641, 1.25)}


def series_folder(data: Path, case: str) -> Path:
    folders = sorted({p.parent for p in (data / "chest-ct" / case).rglob("*.dcm")})
    if len(folders) != 1:
        raise SystemExit(f"expected one DICOM series under {data / 'chest-ct' / case}, found {len(folders)}")
    return folders[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--no-write", action="store_true", help="do not rewrite hu_calibration.json")
    ap.add_argument("--pictures", action="store_true", help="write docs/images/synthetic/*.png")
    args = ap.parse_args()

    rois = cal.load_rois()
    calibration, real_images = {}, {}
    for protocol, scan in cal.PROTOCOL_SCANS.items():
        image = cal.read_real_scan(series_folder(args.data, scan))
        real_images[protocol] = image
        measured = cal.measure_rois(image, rois[scan]["rois"])
        calibration[protocol] = {"scan": scan, "tissues": measured, "noise_sigma_hu": cal.noise_sigma_from_rois(measured)}
    if not args.no_write:
        out = REPO / "CardiacAI" / "synthetic" / "hu_calibration.json"
        with atomic_output(out) as tmp:
            tmp.write_text(json.dumps(calibration, indent=1) + "\n")
        print(f"wrote {out}")

    rows = []
    synthetic_cases = {}
    for protocol, scan in cal.PROTOCOL_SCANS.items():
        per_seed = []
        for seed in range(args.seeds):
            case = generate_case(seed, GeneratorConfig(protocol=protocol, fov="chest", spacing_mm=PROTOCOL_SPACING[protocol],
                                                       motion_probability=0.0))
            per_seed.append(cal.synthetic_stats(case.image, case.anatomy))
            if seed == 0:
                synthetic_cases[protocol] = case
        for tissue in cal.TISSUE_LABELS:
            real = calibration[protocol]["tissues"].get(tissue)
            med = [s[tissue]["median"] for s in per_seed if tissue in s]
            iqr = [s[tissue]["iqr"] for s in per_seed if tissue in s]
            rows.append((protocol, scan, tissue, real, float(np.median(med)), float(np.median(iqr)), min(med), max(med)))
    print("\n| protocol | real scan | tissue | real median | real IQR | synthetic median (range over seeds) | synthetic IQR |")
    print("|---|---|---|---|---|---|---|")
    for protocol, scan, tissue, real, med, iqr, lo, hi in rows:
        print(f"| {protocol} | {scan} | {tissue} | {real['median']:.0f} | {real['iqr']:.0f} | {med:.0f} ({lo:.0f} to {hi:.0f}) | {iqr:.0f} |")
    if args.pictures:
        from calibration_pictures import write_pictures  # benchmarks/ helper

        from calibration_pictures import synthetic_gallery

        write_pictures(real_images, synthetic_cases, rois, REPO / "docs" / "images" / "synthetic")
        synthetic_gallery(REPO / "docs" / "images" / "synthetic")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
