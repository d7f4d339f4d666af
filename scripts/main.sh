#!/usr/bin/env bash
# The main job, from a fresh clone: set up the environment, then describe the CT given on the command
# line (default: the contrast chest CT LIDC-IDRI-0001 in ../shared/data).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
CT="${1:-../shared/data/chest-ct/LIDC-IDRI-0001}"
shift || true
exec .venv/bin/cardiacai info "$CT" "$@"
