#!/usr/bin/env bash
# The test suite, from a fresh clone: set up the environment, then run pytest on Testing/.
# Extra arguments go to pytest (e.g. -k dicom). Tests needing ../shared/data skip with a reason without it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
exec .venv/bin/python -m pytest Testing "$@"
