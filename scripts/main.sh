#!/usr/bin/env bash
# The main job, from a fresh clone: set up the environment, then one-click segmentation of a CT:
# the whole heart (10 structures) and the internal mammary arteries + aorta with their perivascular
# regions. With a CT path (DICOM folder or file, NIfTI/NRRD/MHA) it segments that scan; without one
# it segments a synthetic CT from the project's generator.
# Usage: bash scripts/main.sh [CT] [OUTDIR]      (OUTDIR default: out/<scan name>)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
CLI=.venv/bin/cardiacai
CT="${1:-}"
if [ -z "$CT" ]; then
  $CLI generate --seed 0 --protocol cta --spacing 1 -o out/synthetic
  CT=out/synthetic/synthetic-cta-seed0.nii.gz
fi
name="$(basename "${CT%/}")"; name="${name%%.*}"
OUTDIR="${2:-out/$name}"
$CLI info "$CT"
# both tasks in one process: the scan is read and PyTorch/MONAI loaded once; each task into OUTDIR/<task>
$CLI segment "$CT" --task whole-heart --task ima-aorta -o "$OUTDIR" --overwrite
echo "results: $OUTDIR/whole-heart and $OUTDIR/ima-aorta (segmentation.seg.nrrd opens in Slicer; overview.png)"
