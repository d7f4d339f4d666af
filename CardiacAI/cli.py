"""The ``cardiacai`` command line: ``info`` and ``convert`` (more subcommands join as modules arrive).

Errors a user can cause (a wrong path, a damaged series, an unsupported format) are printed as one
clear line on stderr with exit status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

import numpy as np

from . import __version__
from .errors import CardiacAIError, InputError


def orientation_description(direction: np.ndarray) -> str:
    """Describe a 3x3 LPS direction matrix as an orientation code plus its obliquity.

    Returns e.g. ``"LPS (axial, not oblique)"`` or ``"LPS (oblique by 12.0°)"``. The three letters
    are the patient directions the i, j, k index axes point to most closely (ITK/DICOM
    convention). Obliquity is the largest angle between an index axis and its nearest patient axis.
    """
    import SimpleITK as sitk

    d = np.asarray(direction, float).reshape(3, 3)
    code = sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(tuple(d.ravel()))
    cosines = np.clip(np.abs(d).max(axis=0), -1.0, 1.0)
    angle = float(np.degrees(np.arccos(cosines)).max())
    if angle < 0.01:
        plane = {2: "axial", 1: "coronal", 0: "sagittal"}[int(np.argmax(np.abs(d[:, 2])))]
        return f"{code} ({plane}, not oblique)"
    return f"{code} (oblique by {angle:.1f}°)"


def image_summary(image) -> dict:
    """A JSON-serialisable summary of an Image: what ``cardiacai info`` prints."""
    md = image.metadata
    i, j, k = image.shape_ijk
    arr = image.array
    summary = {
        "source": str(md.get("source_path", "")),
        "format": md.get("format", ""),
        "series_instance_uid": md.get("series_instance_uid"),
        "series_description": md.get("series_description"),
        "series_choice": md.get("selection_reason"),
        "modality": image.modality or md.get("modality") or "unknown",
        "manufacturer": md.get("manufacturer"),
        "manufacturer_model": md.get("manufacturer_model"),
        "kvp": md.get("kvp"),
        "contrast_agent": md.get("contrast_agent"),
        "size_ijk": [i, j, k],
        "spacing_mm": [round(s, 4) for s in image.spacing],
        "origin_lps_mm": [round(o, 3) for o in image.origin],
        "orientation": orientation_description(image.direction),
        "hu_min": float(arr.min()),
        "hu_max": float(arr.max()),
        "hu_median": float(np.median(arr)),
        "dtype": str(arr.dtype),
    }
    return summary


def _format_summary(s: dict) -> str:
    def fmt(v):
        if v is None or v == "":
            return "-"
        if isinstance(v, float):
            return f"{v:g}"
        return str(v)

    lines = [
        f"Source:        {fmt(s['source'])} ({fmt(s['format'])})",
        f"Series:        {fmt(s['series_description'])}  UID {fmt(s['series_instance_uid'])}",
    ]
    if s.get("series_choice"):
        lines.append(f"Series choice: {s['series_choice']}")
    lines += [
        f"Modality:      {fmt(s['modality'])}",
        f"Manufacturer:  {fmt(s['manufacturer'])} {fmt(s['manufacturer_model'])}",
        f"kVp:           {fmt(s['kvp'])}",
        f"Contrast:      {fmt(s['contrast_agent'])}",
        "Size:          {} x {} x {} voxels (i x j x k)".format(*s["size_ijk"]),
        "Spacing:       {:g} x {:g} x {:g} mm".format(*s["spacing_mm"]),
        "Origin:        {:g}, {:g}, {:g} mm (LPS)".format(*s["origin_lps_mm"]),
        f"Orientation:   {s['orientation']}",
        f"HU range:      {s['hu_min']:g} .. {s['hu_max']:g} (median {s['hu_median']:g})",
    ]
    return "\n".join(lines)


def _cmd_info(args) -> int:
    from .io import read_image

    image = read_image(args.path, series_uid=args.series_uid, require_ct=False)
    summary = image_summary(image)
    print(json.dumps(summary, indent=2) if args.json else _format_summary(summary))
    return 0


def _cmd_convert(args) -> int:
    from .io import read_image, read_labelmap, write_image, write_labelmap
    from .io.atomic import full_suffix

    out_is_seg = full_suffix(args.output) == ".seg.nrrd"
    in_is_seg = full_suffix(args.input) == ".seg.nrrd"
    if in_is_seg or out_is_seg or args.labelmap:
        from .labels import get_label_set
        from . import slicer_bridge

        if not args.task:
            raise InputError("converting a label map needs the label set that names its values",
                             "add --task whole-heart or --task ima-aorta")
        label_set = get_label_set(args.task)
        reference = read_image(args.reference, require_ct=False) if args.reference else None
        if in_is_seg:
            if reference is None:
                raise InputError("reading a .seg.nrrd needs the image grid to put the label map on",
                                 "add --reference IMAGE (the CT the segmentation was made on)")
            labelmap = slicer_bridge.read_seg_nrrd(args.input, label_set, reference)
        else:
            labelmap = read_labelmap(args.input, reference=reference)
        if out_is_seg:
            slicer_bridge.write_seg_nrrd(labelmap, label_set, args.output, reference=reference)
        else:
            write_labelmap(labelmap, args.output)
    else:
        image = read_image(args.input, series_uid=args.series_uid, require_ct=False)
        write_image(image, args.output)
    print(f"wrote {args.output}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``cardiacai`` argument parser (subcommands info, convert and, when available, train)."""
    parser = argparse.ArgumentParser(prog="cardiacai", description="CardiacAI: cardiac CT segmentation and quantification.")
    parser.add_argument("--version", action="version", version=f"CardiacAI {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    info = sub.add_parser("info", help="describe a CT: series chosen, modality, scanner, size, spacing, orientation, HU range")
    info.add_argument("path", help="DICOM folder or file, or a NIfTI/NRRD/MHA volume")
    info.add_argument("--series-uid", help="pick this DICOM series when the folder holds several")
    info.add_argument("--json", action="store_true", help="print JSON instead of text")
    info.set_defaults(func=_cmd_info)

    conv = sub.add_parser("convert", help="convert an image or label map between DICOM, NIfTI, NRRD, MHA and .seg.nrrd")
    conv.add_argument("input", help="DICOM folder/file or volume file (a label map with --labelmap, or a .seg.nrrd)")
    conv.add_argument("output", help="output file; the format follows the extension (.nii.gz, .nrrd, .mha, .seg.nrrd)")
    conv.add_argument("--series-uid", help="pick this DICOM series when the folder holds several")
    conv.add_argument("--labelmap", action="store_true", help="the input is an integer label map")
    conv.add_argument("--task", help="label set naming the label values (whole-heart, ima-aorta)")
    conv.add_argument("--reference", help="image whose grid the label map is on (needed to read a .seg.nrrd)")
    conv.set_defaults(func=_cmd_convert)

    for register in _optional_subcommands():
        register(sub)
    return parser


def _optional_subcommands():
    """Subcommand registrars of subpackages (imported lazily: none may import torch at parse time)."""
    registrars = []
    try:
        from .training.cli import add_train_parser
    except ImportError:
        pass
    else:
        registrars.append(add_train_parser)
    return registrars


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cardiacai`` console script; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CardiacAIError as error:
        print(f"cardiacai {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"cardiacai {args.command}: cancelled", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
