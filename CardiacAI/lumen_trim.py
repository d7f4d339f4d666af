"""Trim a contrast-enhanced vessel that a network draws too wide to its lumen at half maximum.

The whole-heart model draws the contrast-filled coronary sinus too large: on the synthetic tuning scans (generator
0.2.12, seeds 800000-800002) 1.26 times the truth's volume on CTA and 1.34 times on contrast chest CT, with 70 % of
its voxels in the truth; the rest lies round the vein in the atrioventricular groove: fat, the vein's wall and its
partial-volume rim (median 24-67 HU, a tenth below -90 HU, against the truth's median 163-418 HU). The truth, like a
radiologist's lumen outline, is the lumen at half maximum: the voxels at or above halfway between the lumen's HU and
the surrounding tissue's (the full-width-at-half-maximum edge used to measure vessel lumens on CT, as for the aorta
in :mod:`CardiacAI.lumen_tracking`).

:func:`trim_to_enhanced_lumen` keeps, of each listed structure, the voxels at or above that level. It only removes:
a vessel the network draws too narrow is not widened here, and a scan without contrast is left as it is.
Measured in docs/segmentation.md ("Trimming the coronary sinus to its lumen").
"""

from __future__ import annotations

import dataclasses
from typing import Iterable

import numpy as np
from scipy import ndimage as ndi

from .lumen_tracking import checked_label_inputs
from .postprocess import label_boxes


@dataclasses.dataclass(frozen=True)
class LumenTrimSettings:
    """How the lumen's edge is found (HU; mm).

    ``lumen_percentile``: the lumen's HU is this percentile of the HU of the network's voxels of the structure (a
    network that draws the vessel too wide puts a quarter to a third of its voxels outside the lumen, so the median
    would fall towards the fat); at least ``min_lumen_hu`` (enhanced blood), else nothing is done.
    ``ring_mm``: the surrounding tissue is the voxels this far (above the first, up to the second) from the
    structure, not lung (above ``lung_below_hu``); its HU is their median, at most ``max_background_hu`` (a ring
    that takes in a bright chamber beside the vessel must not lift the edge into the lumen).
    """

    min_lumen_hu: float = 150.0
    lumen_percentile: float = 75.0
    ring_mm: tuple[float, float] = (2.0, 4.0)
    lung_below_hu: float = -400.0
    max_background_hu: float = 50.0


@dataclasses.dataclass
class LumenTrimReport:
    """What trimming did to one structure: whether it was trimmed and why (not), the lumen's, the surroundings' and
    the edge's HU, and the volume removed (mL)."""

    trimmed: bool = False
    reason: str = ""
    lumen_hu: float | None = None
    background_hu: float | None = None
    level_hu: float | None = None
    removed_ml: float = 0.0

    def as_dict(self) -> dict:
        """The report for the run record (``run.json``)."""
        return {"trimmed": self.trimmed, "reason": self.reason,
                "lumen_hu": None if self.lumen_hu is None else round(self.lumen_hu, 1),
                "background_hu": None if self.background_hu is None else round(self.background_hu, 1),
                "level_hu": None if self.level_hu is None else round(self.level_hu, 1),
                "removed_ml": round(self.removed_ml, 3)}


def trim_to_enhanced_lumen(labelmap: np.ndarray, label_set, ct_hu: np.ndarray, spacing_ijk, *, keys: Iterable[str],
                           settings: LumenTrimSettings = LumenTrimSettings()
                           ) -> tuple[np.ndarray, dict[str, LumenTrimReport]]:
    """Each structure of ``keys`` trimmed to its lumen at half maximum, when it is enhanced.

    Per structure: the lumen's HU (``settings.lumen_percentile`` of its voxels' HU, at least ``min_lumen_hu``), the
    surrounding tissue's (the median of the non-lung voxels ``ring_mm`` from it, at most ``max_background_hu``) and
    the level halfway between them; its voxels below the level become background, except where they are enclosed
    by voxels at or above it (noise inside the lumen: holes are filled back). A structure with no voxel at or above
    the level, or without surrounding tissue, is left as drawn.

    Parameters
    ----------
    labelmap: integer label map (K, J, I) with ``label_set``'s values.
    label_set: a :class:`CardiacAI.labels.LabelSet` holding every key of ``keys``.
    ct_hu: the CT in Hounsfield units on the same (K, J, I) grid.
    spacing_ijk: voxel size (i, j, k) in mm.
    keys: structure keys to trim (the whole-heart catalog entry: the coronary sinus).
    settings: :class:`LumenTrimSettings`.

    Returns
    -------
    (a new label map; {key: :class:`LumenTrimReport`}). Only the listed structures' voxels change, and only to
    background. Raises InputError for a non-integer label map, a CT of another shape, a spacing that is not three
    positive numbers, or a key not in the label set (the error lists its keys).
    """
    labels, spacing = checked_label_inputs(labelmap, ct_hu, spacing_ijk)
    values = {key: label_set.by_key(key).value for key in keys}  # InputError naming the label set's keys
    sampling = spacing[::-1]  # (k, j, i) mm
    voxel_ml = float(np.prod(spacing)) / 1000.0
    margin = [int(np.ceil(settings.ring_mm[1] / s)) + 1 for s in sampling]
    out = labels.copy()
    # every structure's box in one pass (trimming one structure leaves the others' boxes as they are)
    boxes = label_boxes(out, max(values.values(), default=0))
    reports: dict[str, LumenTrimReport] = {}
    for key, value in values.items():
        report = reports[key] = LumenTrimReport()
        found = boxes[value - 1] if value <= len(boxes) else None
        if found is None:
            report.reason = "not found"
            continue
        # the work is done in the structure's box grown by the ring
        box = tuple(slice(max(b.start - m, 0), min(b.stop + m, n)) for b, m, n in zip(found, margin, out.shape))
        vessel, hu = out[box] == value, ct_hu[box]
        lumen = float(np.percentile(hu[vessel], settings.lumen_percentile))
        report.lumen_hu = lumen
        if lumen < settings.min_lumen_hu:
            report.reason = f"not enhanced (lumen {lumen:.0f} HU < {settings.min_lumen_hu:.0f})"
            continue
        distance = ndi.distance_transform_edt(~vessel, sampling=sampling)
        ring = (distance > settings.ring_mm[0]) & (distance <= settings.ring_mm[1]) & (hu > settings.lung_below_hu)
        if not ring.any():
            report.reason = "no surrounding tissue to measure the edge against"
            continue
        background = min(float(np.median(hu[ring])), settings.max_background_hu)
        level = background + 0.5 * (lumen - background)
        report.background_hu, report.level_hu = background, level
        kept = ndi.binary_fill_holes(vessel & (hu >= level)) & vessel
        if not kept.any():
            report.reason = "nothing at half maximum"
            continue
        removed = vessel & ~kept
        out[box][removed] = 0
        report.trimmed = True
        report.removed_ml = float(np.count_nonzero(removed)) * voxel_ml
        report.reason = f"trimmed to the lumen at half maximum ({level:.0f} HU)"
    return out, reports
