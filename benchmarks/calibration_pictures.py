"""Pictures for docs/synthetic.md: ROIs on the real scans, real vs synthetic side by side, a gallery
of protocols and label overlays. Used by calibrate_hu.py --pictures and synthetic_gallery()."""

from __future__ import annotations

from pathlib import Path

import numpy as np

WINDOW = (-160, 240)  # mediastinal window W400/L40 (HU)

#: Heart centre (LPS mm) of the real scans, read off rendered slices, for the orthogonal views.
REAL_CENTRES = {"chest_contrast": (30.0, -10.0, -185.0), "chest_noncontrast": (10.0, -20.0, -195.0)}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _views(image, centre_lps):
    """Axial, coronal, sagittal slices through an LPS point with their extents (mm) for imshow."""
    a = image.array
    sx, sy, sz = image.spacing
    ox, oy, oz = image.origin
    i = int(np.clip(round((centre_lps[0] - ox) / sx), 0, a.shape[2] - 1))
    j = int(np.clip(round((centre_lps[1] - oy) / sy), 0, a.shape[1] - 1))
    k = int(np.clip(round((centre_lps[2] - oz) / sz), 0, a.shape[0] - 1))
    x0, x1 = ox - sx / 2, ox + sx * (a.shape[2] - 0.5)
    y0, y1 = oy - sy / 2, oy + sy * (a.shape[1] - 0.5)
    z0, z1 = oz - sz / 2, oz + sz * (a.shape[0] - 0.5)
    # radiological display: patient right on the left of the picture, anterior up, superior up
    return [(a[k], [x0, x1, y1, y0], "axial"), (a[::-1, j, :], [x0, x1, z0, z1], "coronal"),
            (a[::-1, :, i], [y0, y1, z0, z1], "sagittal")]


def _save(fig, path: Path, dpi: int = 80):
    from CardiacAI.io.atomic import atomic_output

    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")


def write_pictures(real_images: dict, synthetic_cases: dict, rois: dict, out_dir: Path) -> None:
    plt = _plt()
    out_dir.mkdir(parents=True, exist_ok=True)
    from CardiacAI.synthetic.calibration import PROTOCOL_SCANS

    for protocol, scan in PROTOCOL_SCANS.items():
        image = real_images[protocol]
        entry = rois[scan]["rois"]
        zs = sorted({r["center_lps_mm"][2] for r in entry})
        fig, axs = plt.subplots(1, len(zs), figsize=(6 * len(zs), 6))
        for ax, z in zip(np.atleast_1d(axs), zs):
            sl, ext, _ = _views(image, (0, 0, z))[0]
            ax.imshow(sl, cmap="gray", vmin=-1000, vmax=400, extent=ext)
            for r in entry:
                if r["center_lps_mm"][2] == z:
                    c = r["center_lps_mm"]
                    ax.add_patch(plt.Circle(c[:2], r["radius_mm"], color="r", fill=False, lw=1.5))
                    ax.text(c[0] + r["radius_mm"] + 3, c[1], r["tissue"], color="yellow", fontsize=9)
            ax.set_title(f"{scan}, z = {z:g} mm (LPS)")
            ax.set_xlabel("x (mm, patient left +)")
            ax.set_ylabel("y (mm, posterior +)")
        fig.tight_layout()
        _save(fig, out_dir / f"roi_{scan}.png")
        plt.close(fig)

        case = synthetic_cases[protocol]
        fig, axs = plt.subplots(2, 3, figsize=(15, 10))
        for row, (img, centre, title) in enumerate(((image, REAL_CENTRES[protocol], f"real {scan}"),
                                                     (case.image, heart_centre(case), f"synthetic {protocol} (seed {case.parameters['seed']})"))):
            for ax, (sl, ext, view) in zip(axs[row], _views(img, centre)):
                ax.imshow(sl, cmap="gray", vmin=WINDOW[0], vmax=WINDOW[1], extent=ext, aspect="equal")
                ax.set_title(f"{title}: {view}", fontsize=9)
                ax.set_xticks([])
                ax.set_yticks([])
        fig.suptitle(f"{protocol}: real (top) and synthetic (bottom), W400/L40, same mm scale per view")
        fig.tight_layout()
        _save(fig, out_dir / f"real_vs_synthetic_{protocol}.png")
        plt.close(fig)


def heart_centre(case) -> tuple[float, float, float]:
    from CardiacAI.synthetic import anatomy

    p = case.parameters["anatomy"]
    H, e_long, _, _ = anatomy.lv_frame(p)
    return tuple(H + 0.3 * p["lv"]["L_cav"] * e_long)


def synthetic_gallery(out_dir: Path, seed: int = 3) -> None:
    """Protocol gallery (cta, gated non-contrast, chest contrast/non-contrast, SynthSeg) of one
    seed, and label overlays of the whole-heart and IMA/aorta tasks."""
    plt = _plt()
    from matplotlib.colors import ListedColormap

    from CardiacAI.labels import get_label_set
    from CardiacAI.synthetic import GeneratorConfig, generate_case

    out_dir.mkdir(parents=True, exist_ok=True)
    configs = [("cta", False), ("gated_noncontrast", False), ("chest_contrast", False), ("chest_noncontrast", False), ("cta", True)]
    fig, axs = plt.subplots(len(configs), 3, figsize=(13, 4.3 * len(configs)))
    cases = {}
    for row, (protocol, synthseg) in enumerate(configs):
        case = generate_case(seed, GeneratorConfig(protocol=protocol, fov="chest", synthseg=synthseg))
        cases[(protocol, synthseg)] = case
        window = (-300, 900) if synthseg else ((-160, 600) if protocol == "cta" else WINDOW)
        if synthseg:
            window = tuple(np.percentile(case.image.array, [1, 99]))
        for ax, (sl, ext, view) in zip(axs[row], _views(case.image, heart_centre(case))):
            ax.imshow(sl, cmap="gray", vmin=window[0], vmax=window[1], extent=ext)
            ax.set_title(f"{protocol}{' SynthSeg' if synthseg else ''}: {view}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    _save(fig, out_dir / "gallery_protocols.png", dpi=60)
    plt.close(fig)

    case = cases[("cta", False)]
    fig, axs = plt.subplots(2, 3, figsize=(15, 10))
    for row, task in enumerate(("whole-heart", "ima-aorta")):
        labels = case.task_labels(task)
        colours = np.zeros((256, 4))
        for s in get_label_set(task).structures:
            colours[s.value, :3] = np.asarray(s.color_rgb255) / 255.0
            colours[s.value, 3] = 0.55
        cmap = ListedColormap(colours)
        centre = heart_centre(case)
        if task == "ima-aorta":  # through the IMAs: a slice at mid-sternum
            centre = (centre[0], centre[1], centre[2] + 25)
        for ax, (sl, ext, view), (lab, _, _) in zip(axs[row], _views(case.image, centre), _views(labels, centre)):
            ax.imshow(sl, cmap="gray", vmin=-160, vmax=600, extent=ext)
            ax.imshow(lab, cmap=cmap, vmin=0, vmax=255, extent=ext, interpolation="nearest")
            ax.set_title(f"{task} labels: {view}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    _save(fig, out_dir / "labels_overlay.png", dpi=60)
    plt.close(fig)
