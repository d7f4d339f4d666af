"""Shared pytest fixtures: where the real test data lives, and skips with a reason when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
#: ../shared/data beside the checkout (CI always has it); CARDIACAI_SHARED_DATA overrides.
SHARED_DATA = Path(os.environ.get("CARDIACAI_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
CHEST_CT = SHARED_DATA / "chest-ct"


def _series_folder(case: str) -> Path:
    """The folder holding the DICOM files of a LIDC-IDRI case (<case>/<study>/<series>/)."""
    root = CHEST_CT / case
    if not root.is_dir():
        pytest.skip(f"real chest CT {case} not found at {root} (the ../shared data folder is absent)")
    folders = sorted({p.parent for p in root.rglob("*.dcm")})
    if len(folders) != 1:
        pytest.skip(f"expected one DICOM series under {root}, found {len(folders)}")
    return folders[0]


@pytest.fixture(scope="session")
def lidc1_dir() -> Path:
    """DICOM series folder of LIDC-IDRI-0001: contrast chest CT, GE, 120 kVp, 512x512x133, 0.703x0.703x2.5 mm."""
    return _series_folder("LIDC-IDRI-0001")


@pytest.fixture(scope="session")
def lidc2_dir() -> Path:
    """DICOM series folder of LIDC-IDRI-0002: non-contrast chest CT, 512x512x261, 0.682x0.682x1.25 mm, deflated transfer syntax."""
    return _series_folder("LIDC-IDRI-0002")


@pytest.fixture(scope="session")
def lidc1_image(lidc1_dir):
    """LIDC-IDRI-0001 read once per session as a CardiacAI Image (HU)."""
    from CardiacAI.io import read_image

    return read_image(lidc1_dir)


@pytest.fixture(scope="session")
def lidc2_image(lidc2_dir):
    """LIDC-IDRI-0002 read once per session as a CardiacAI Image (HU)."""
    from CardiacAI.io import read_image

    return read_image(lidc2_dir)
