"""Overview pictures: axial, coronal and sagittal slices of a CT with coloured label contours.

Used for ``overview.png`` in segmentation output folders and for the pictures in the docs. Slices
are shown in radiological convention (patient's right on the left of the axial view, anterior at
the top; head at the top of coronal and sagittal views) at their true physical aspect ratio, for
grids whose direction is axis-aligned (the usual axial CT); oblique grids are shown in index space
and say so in the title.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .image import Image
from .io.atomic import atomic_output


def _centre_of(mask: np.ndarray) -> tuple[int, int, int]:
    """Rounded centroid (k, j, i) of a non-empty bool mask.

    From the mask's projections on each axis (exact integer sums, so the same value as the mean
    of ``np.argwhere(mask)``, without listing every voxel's indices).
    """
    count = int(np.count_nonzero(mask))
    centre = []
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        per_index = np.count_nonzero(mask, axis=others)
        centre.append(int(np.dot(per_index.astype(np.int64), np.arange(per_index.size, dtype=np.int64))) / count)
    return tuple(int(v) for v in np.round(centre))  # (k, j, i)


def render_overview(image: Image, path: str | Path, *, labelmap: Image | None = None, label_set=None,
                    window: tuple[float, float] = (-160.0, 440.0), centre_kji: Sequence[int] | None = None,
                    title: str = "", dpi: int = 110) -> Path:
    """Write a PNG with the axial, coronal and sagittal slices through ``centre_kji``.

    Parameters
    ----------
    image: the CT (HU).
    labelmap: optional integer label map on the same grid; each structure of ``label_set`` present
        is drawn as a contour in its colour, with a legend.
    window: display window (low, high) in HU; the default is a mediastinal window.
    centre_kji: voxel index (k, j, i) the three planes pass through; default the centroid of the
        labelled voxels, else the volume centre.

    Returns the written path (written atomically). Raises InputError if the label map is on
    another grid.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from .errors import InputError

    if labelmap is not None and not labelmap.same_geometry(image, atol=1e-4):
        raise InputError("the label map is not on the CT's grid", "resample it onto the CT before drawing")
    arr = image.array
    labels = None if labelmap is None else np.asarray(labelmap.array)
    if centre_kji is None:
        centre_kji = _centre_of(labels > 0) if labels is not None and labels.any() else tuple(s // 2 for s in arr.shape)
    k, j, i = (int(c) for c in centre_kji)
    si, sj, sk = image.spacing
    axis_aligned = np.allclose(np.abs(image.direction), np.eye(3), atol=1e-3)
    # Radiological convention: the patient's left on the viewer's right. With +i pointing to the
    # patient's left (LPS, the usual case) column order already does that; flip only when +i points right.
    flip_lr = axis_aligned and image.direction[0, 0] < 0
    # (view name, CT slice, label slice, physical aspect = row spacing / column spacing)
    views = [
        ("axial", arr[k], None if labels is None else labels[k], sj / si),
        ("coronal", arr[:, j, :][::-1], None if labels is None else labels[:, j, :][::-1], sk / si),
        ("sagittal", arr[:, :, i][::-1], None if labels is None else labels[:, :, i][::-1], sk / sj),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(15, 5.6), facecolor="black")
    # Derived regions (perivascular) first, so the vessel contour they share a boundary with stays visible.
    structures = sorted(label_set.structures, key=lambda s: not getattr(s, "derived_from", ())) \
        if label_set is not None else []
    shown = set()
    for ax, (name, ct, lab, aspect) in zip(axes, views):
        if flip_lr and name in ("axial", "coronal"):
            ct = ct[:, ::-1]
            lab = None if lab is None else lab[:, ::-1]
        ax.imshow(ct, cmap="gray", vmin=window[0], vmax=window[1], aspect=aspect, interpolation="bilinear")
        if lab is not None:
            for s in structures:
                m = lab == s.value
                if m.any():
                    ax.contour(m.astype(np.float32), levels=[0.5], colors=[s.color], linewidths=1.2)
                    shown.add(s.value)
        ax.set_title(name, color="white", fontsize=11)
        ax.axis("off")
    if structures and shown:
        handles = [Line2D([0], [0], color=s.color, lw=3, label=s.name) for s in structures if s.value in shown]
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 5), frameon=False,
                   labelcolor="white", fontsize=9)
    note = "" if axis_aligned else "  (oblique grid: index space)"
    fig.suptitle((title + note).strip(), color="white", fontsize=12)
    fig.tight_layout(rect=(0, 0.08 if shown else 0, 1, 0.95))
    with atomic_output(path) as tmp:
        # zlib level 1: the same pixels, written several times faster than at the default level 6
        fig.savefig(tmp, dpi=dpi, facecolor="black", format="png", pil_kwargs={"compress_level": 1})
    plt.close(fig)
    return Path(path)
