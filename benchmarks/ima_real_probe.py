"""What an IMA/aorta model sees at the real internal mammary arteries (IMAs) of LIDC-IDRI-0001.

No real scan here has IMA labels, so this measures the model's IMA probability along the two real arteries,
tracked slice by slice as the brightest voxel near a starting point read off the scan (benchmarks/ima_position.py
shows them), in three situations:

* the real scan as it is;
* the real scan with a sharp synthetic-looking artery painted along the track (320 or 450 HU, radius 1-1.5 mm):
  if the model finds the painted one but not the real one, the artery's own appearance is what differs;
  if it finds neither, what lies around it is;
* crops of +-25 to 60 mm around the right artery, so that the model sees little beyond it.

Prints, per situation and side, the median and maximum over the track of the largest left/right-IMA probability
within about 2 mm. Usage: python benchmarks/ima_real_probe.py [--model ID] [--catalog CATALOG.json] [--weights MODEL.pt]
(default: the catalog's default IMA/aorta model). Not a test: it describes one real scan.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

REAL = ROOT.parent / "shared" / "data" / "chest-ct" / "LIDC-IDRI-0001"
#: (k, j, i) of each real IMA on one slice through the sternal body (right, left), read off the scan.
STARTS = {"right": (75, 142, 215), "left": (75, 141, 300)}
#: The region around the sternum the model is run on (k, j, i), large enough for its 96-voxel windows' context.
CHEST_WALL = (slice(50, 114), slice(90, 260), slice(130, 390))


def track(hu: np.ndarray, start, k_range=range(55, 100), search=3, min_hu=150.0) -> dict[int, tuple[int, int]]:
    """Slice -> (j, i) of the artery: from ``start``, the brightest voxel within ``search`` voxels of the last
    position on each next slice, up and down, until it is below ``min_hu``."""
    k0, j0, i0 = start
    points = {k0: (j0, i0)}
    for step in (1, -1):
        j, i, k = j0, i0, k0 + step
        while k in k_range:
            window = hu[k, j - search:j + search + 1, i - search:i + search + 1]
            if window.max() < min_hu:
                break
            dj, di = np.unravel_index(np.argmax(window), window.shape)
            j, i = j - search + dj, i - search + di
            points[k] = (j, i)
            k += step
    return points


def main(argv=None) -> int:
    import torch

    from CardiacAI.inference import choose_device
    from CardiacAI.io import read_image
    from CardiacAI.segmentation import crop_image, load_network
    from model_choice import add_model_arguments, chosen_model
    from CardiacAI.training.preprocessing import normalise_intensity, to_model_grid

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", type=Path, help="a state dict of the same network (default: the shipped model)")
    add_model_arguments(ap)
    args = ap.parse_args(argv)
    if not REAL.is_dir():
        print(f"LIDC-IDRI-0001 not found at {REAL}")
        return 1
    _, entry = chosen_model(args)
    net = load_network(entry, choose_device(False).device)
    if args.weights:
        state = torch.load(args.weights, map_location="cpu", weights_only=False)
        net.load_state_dict(state.get("model", state) if isinstance(state, dict) else state)
    print(f"model: {args.weights or f'{entry.id} {entry.version}'}")
    image = read_image(REAL)
    hu = image.array.astype(np.float32)
    tracks = {side: track(hu, start) for side, start in STARTS.items()}

    def probabilities(array, box):
        grid = to_model_grid(crop_image(image.with_array(array), box), entry.input_spacing_mm)
        x = torch.as_tensor(normalise_intensity(grid.array, entry.intensity["window"],
                                                entry.intensity["output_range"])[None, None].astype(np.float32))
        pad = [(-s) % 16 for s in x.shape[2:]]
        x = torch.nn.functional.pad(x, (0, pad[2], 0, pad[1], 0, pad[0]), mode="replicate")
        with torch.inference_mode():
            p = torch.softmax(net(x), 1)[0].numpy()
        return grid, np.maximum(p[1], p[2])  # either IMA label

    def along(grid, p, points, ks=None):
        to_grid = np.linalg.inv(grid.ijk_to_lps) @ image.ijk_to_lps
        values = []
        for k, (j, i) in points.items():
            if ks is not None and k not in ks:
                continue
            gi, gj, gk = np.round(to_grid @ [i, j, k, 1.0])[:3].astype(int)
            near = p[max(gk - 1, 0):gk + 2, max(gj - 2, 0):gj + 3, max(gi - 2, 0):gi + 3]
            if near.size:
                values.append(float(near.max()))
        return f"median {np.median(values):.3f}, max {np.max(values):.3f} over {len(values)} slices"

    grid, p = probabilities(hu, CHEST_WALL)
    print("real scan:", " | ".join(f"{side} IMA {along(grid, p, pts)}" for side, pts in tracks.items()))
    jj, ii = np.mgrid[0:hu.shape[1], 0:hu.shape[2]]
    for value, radius in ((320.0, 1.0), (320.0, 1.5), (450.0, 1.5)):
        painted = hu.copy()
        for points in tracks.values():
            for k, (j, i) in points.items():
                painted[k][np.hypot((jj - j) * image.spacing[1], (ii - i) * image.spacing[0]) <= radius] = value
        grid, p = probabilities(painted, CHEST_WALL)
        print(f"painted {value:.0f} HU, radius {radius} mm:",
              " | ".join(f"{side} IMA {along(grid, p, pts)}" for side, pts in tracks.items()))
    right = tracks["right"]
    j0, i0 = right[STARTS["right"][0]]
    for half_mm in (60, 40, 25):
        hj, hi = int(half_mm / image.spacing[1]), int(half_mm / image.spacing[0])
        box = (slice(58, 94), slice(j0 - hj, j0 + hj), slice(i0 - hi, i0 + hi))
        grid, p = probabilities(hu, box)
        print(f"crop +-{half_mm} mm around the right IMA: {along(grid, p, right, range(58, 94))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
