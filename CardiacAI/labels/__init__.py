"""Label sets of the segmentation tasks: values, names, colours and DICOM/SNOMED CT codes, as data.

Each task's labels live in a JSON file beside this module (``whole-heart.json``,
``ima-aorta.json``), validated at load time against ``label_set.schema.json``. A label set says,
for every voxel value of a task's label map, which structure it is (stable ``key``, display
``name``), how to show it (``color``) and how to code it in DICOM SEG / Slicer segmentations
(segmentation property category, type, type modifier, anatomic region and its modifier, each a
coded triple; DICOM PS3.16 CID 7150 / 7151 / 244 / 4 / 7166).

Tasks and their fixed values:

* ``whole-heart`` (Dense V-Net whole-heart paper): 1 pulmonary_veins, 2 left_atrium,
  3 left_ventricle_cavity, 4 left_ventricle_myocardium (includes the papillary muscles), 5 aorta,
  6 coronary_sinus, 7 superior_vena_cava, 8 right_atrium, 9 right_ventricle_cavity,
  10 pulmonary_artery.
* ``ima-aorta`` (IMA/aorta SE+Swin paper): 1 left_internal_mammary_artery,
  2 right_internal_mammary_artery, 3 peri_ima_region, 4 aorta, 5 periaortic_region.

Where each code was verified (2025-11):

* DICOM PS3.16 as packaged in pydicom 3 (``pydicom.sr._concepts_dict`` / ``_cid_dict``), which
  ``Testing/test_labels.py`` re-checks for every code: SCT 82471001 Left atrium, 73829009 Right
  atrium, 87878005 Left ventricle, 53085002 Right ventricle, 15825003 Aorta, 81040000 Pulmonary
  artery, 48345005 Superior vena cava, 90219004 Coronary sinus, 122972007 Pulmonary vein,
  69327007 Internal mammary artery (all CID 7151); 49848007 Left Ventricle Myocardium
  (CID 12305); 85756007 Tissue (CID 7150); 55603005 Fat (CID 7166); 7771000 Left and
  24028007 Right (CID 244).
* 3D Slicer ``Modules/Loadable/Terminologies/Resources/SegmentationCategoryTypeModifier-
  SlicerGeneralAnatomy.json`` (Slicer/Slicer, commits 1ef2bf1f and 5ae55643): category
  "Anatomical Structure" = SCT 123037004 (DICOM now lists SCT 91723000 for it; Slicer and
  TotalSegmentator still use 123037004, so we follow them for interoperability); aorta
  15825003 (224,97,76), left ventricle 87878005 (152,55,13), right ventricle 53085002
  (181,85,57), vein colour (0,151,206), fat colour (230,220,70); laterality as type modifier
  7771000 / 24028007. ``...-DICOM-Master.json`` gives the context name
  "Segmentation category and type - DICOM master list".
* TotalSegmentator's ``totalsegmentator_snomed_mapping.csv`` (lassoan/SlicerTotalSegmentator):
  left/right atrium, left/right ventricle, aorta, pulmonary artery, pulmonary vein, and the
  post-coordinated Tissue / Fat (55603005) / anatomic region pattern used here for the
  perivascular regions.
* The ``TerminologyEntry`` string format was checked against Slicer's own
  ``vtkSlicerTerminologiesModuleLogic::SerializeTerminologyEntry`` (Slicer source and the
  slicer-core 5.13 wheel; the test compares them).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any, Iterator

from ..errors import InputError, ModelError

#: Context names Slicer writes into a segment's TerminologyEntry tag. The DICOM master list is
#: the Slicer context whose vocabulary (DICOM PS3.16) all our codes come from.
SLICER_TERMINOLOGY_CONTEXT = "Segmentation category and type - DICOM master list"
SLICER_ANATOMIC_CONTEXT = "Anatomic codes - DICOM master list"

SCHEMA_FILE = "label_set.schema.json"
_PACKAGE = __name__


@dataclasses.dataclass(frozen=True)
class Code:
    """A coded concept (DICOM "code sequence item"): coding scheme, code value, code meaning.

    ``scheme`` is the coding scheme designator ("SCT" = SNOMED CT, "DCM" = DICOM). Two codes
    denote the same concept when scheme and value are equal; the meaning is display text only.
    """

    scheme: str
    value: str
    meaning: str

    def same_concept(self, other: "Code | None") -> bool:
        """True when ``other`` has the same scheme and value (meaning ignored, as DICOM does)."""
        return other is not None and (self.scheme, self.value) == (other.scheme, other.value)

    def to_dict(self) -> dict[str, str]:
        """``{"scheme": ..., "value": ..., "meaning": ...}``."""
        return {"scheme": self.scheme, "value": self.value, "meaning": self.meaning}


@dataclasses.dataclass(frozen=True)
class Structure:
    """One labelled structure of a task.

    Attributes
    ----------
    value: voxel value in the task's label map (1-255; 0 is background).
    key: stable snake_case identifier; the Slicer segment ID.
    name: display name; the Slicer segment name.
    color: (r, g, b) display colour, floats in [0, 1] (the JSON stores 8-bit values).
    category, type: DICOM segmentation property category (CID 7150) and type (CID 7151) codes.
    type_modifier: e.g. laterality (CID 244), or None.
    anatomic_region, anatomic_region_modifier: where a tissue-type structure lies, or None.
    notes: definition and coding rationale.
    derived_from: keys of the structures this one is computed from after inference (the
        perivascular regions from their vessels); empty for structures a model predicts.
    """

    value: int
    key: str
    name: str
    color: tuple[float, float, float]
    category: Code
    type: Code
    type_modifier: Code | None = None
    anatomic_region: Code | None = None
    anatomic_region_modifier: Code | None = None
    notes: str = ""
    derived_from: tuple[str, ...] = ()

    @property
    def color_rgb255(self) -> tuple[int, int, int]:
        """Display colour as 8-bit RGB (as in Slicer's recommendedDisplayRGBValue)."""
        return tuple(int(round(c * 255)) for c in self.color)  # type: ignore[return-value]

    def codes(self) -> dict[str, dict[str, str] | None]:
        """The five coded fields as plain dicts (None where absent)."""
        return {
            name: (code.to_dict() if code is not None else None)
            for name, code in (
                ("category", self.category),
                ("type", self.type),
                ("type_modifier", self.type_modifier),
                ("anatomic_region", self.anatomic_region),
                ("anatomic_region_modifier", self.anatomic_region_modifier),
            )
        }

    def terminology_entry(self) -> str:
        """This structure's codes as a Slicer segment ``TerminologyEntry`` tag value.

        Format (Slicer's ``vtkSlicerTerminologiesModuleLogic::SerializeTerminologyEntry``):
        ``context~CS^value^meaning(category)~type~typeModifier~anatomicContext~region~regionModifier``
        with ``^^`` for an absent code.
        """

        def triple(code: Code | None) -> str:
            return "^^" if code is None else f"{code.scheme}^{code.value}^{code.meaning}"

        return "~".join(
            [
                SLICER_TERMINOLOGY_CONTEXT,
                triple(self.category),
                triple(self.type),
                triple(self.type_modifier),
                SLICER_ANATOMIC_CONTEXT,
                triple(self.anatomic_region),
                triple(self.anatomic_region_modifier),
            ]
        )

    def matches_terminology(self, entry: "TerminologyCodes") -> bool:
        """True when a parsed terminology entry codes the same structure.

        Category, type and type modifier must denote the same concepts; the anatomic region (and
        its modifier) too when this structure has one, because for tissue types (perivascular
        fat) the region is what tells the structures apart.
        """

        def same(mine: Code | None, theirs: Code | None) -> bool:
            return theirs is None if mine is None else mine.same_concept(theirs)

        if not (
            same(self.category, entry.category)
            and same(self.type, entry.type)
            and same(self.type_modifier, entry.type_modifier)
        ):
            return False
        if self.anatomic_region is not None:
            return same(self.anatomic_region, entry.anatomic_region) and same(
                self.anatomic_region_modifier, entry.anatomic_region_modifier
            )
        return True


@dataclasses.dataclass(frozen=True)
class TerminologyCodes:
    """The codes of a parsed Slicer ``TerminologyEntry`` (None where the entry leaves one empty)."""

    category: Code | None
    type: Code | None
    type_modifier: Code | None
    anatomic_region: Code | None
    anatomic_region_modifier: Code | None


def parse_terminology_entry(text: str) -> TerminologyCodes | None:
    """Parse a Slicer segment ``TerminologyEntry`` string; None when it is not one.

    Accepts any context names (they are not needed to identify concepts).
    """
    parts = (text or "").split("~")
    if len(parts) != 7:
        return None

    def code(part: str) -> Code | None:
        fields = part.split("^")
        if len(fields) != 3:
            raise ValueError(part)
        scheme, value, meaning = fields
        return Code(scheme, value, meaning) if scheme and value else None

    try:
        return TerminologyCodes(
            category=code(parts[1]),
            type=code(parts[2]),
            type_modifier=code(parts[3]),
            anatomic_region=code(parts[5]),
            anatomic_region_modifier=code(parts[6]),
        )
    except ValueError:
        return None


@dataclasses.dataclass(frozen=True)
class LabelSet:
    """The structures of one segmentation task, in label-value order.

    Attributes
    ----------
    task: task identifier ("whole-heart", "ima-aorta").
    title: human-readable title.
    structures: tuple of :class:`Structure`, sorted by value.
    source: the paper or standard the structure definitions follow.
    notes: coding rationale.
    """

    task: str
    title: str
    structures: tuple[Structure, ...]
    source: str
    notes: str = ""

    def __iter__(self) -> Iterator[Structure]:
        return iter(self.structures)

    def __len__(self) -> int:
        return len(self.structures)

    @property
    def values(self) -> tuple[int, ...]:
        """Label values, ascending."""
        return tuple(s.value for s in self.structures)

    @property
    def keys(self) -> tuple[str, ...]:
        """Structure keys in label-value order."""
        return tuple(s.key for s in self.structures)

    @property
    def names(self) -> tuple[str, ...]:
        """Display names in label-value order."""
        return tuple(s.name for s in self.structures)

    def by_key(self, key: str) -> Structure:
        """The structure with this key. Raises InputError listing the valid keys."""
        for s in self.structures:
            if s.key == key:
                return s
        raise InputError(
            f"the {self.task} label set has no structure '{key}'",
            f"use one of: {', '.join(self.keys)}",
        )

    def by_value(self, value: int) -> Structure:
        """The structure with this label value. Raises InputError listing the valid values."""
        for s in self.structures:
            if s.value == int(value):
                return s
        raise InputError(
            f"the {self.task} label set has no label value {value}",
            f"valid values are {', '.join(map(str, self.values))} (0 is background)",
        )

    def find(self, text: str) -> Structure | None:
        """The structure whose key or name equals ``text`` (case- and separator-insensitive)."""
        wanted = _normalise(text)
        for s in self.structures:
            if wanted in (_normalise(s.key), _normalise(s.name)):
                return s
        return None

    def to_labels_json(self) -> dict[str, Any]:
        """A ``labels.json``-style dict: task, title, source and, per value (as a string key),
        key, name, colour (0-1 floats and 8-bit) and the five codes."""
        return {
            "task": self.task,
            "title": self.title,
            "source": self.source,
            "labels": {
                str(s.value): {
                    "key": s.key,
                    "name": s.name,
                    "color": list(s.color),
                    "color_rgb255": list(s.color_rgb255),
                    "codes": s.codes(),
                }
                for s in self.structures
            },
        }


def _normalise(text: str) -> str:
    return re.sub(r"[\s_\-]+", " ", str(text)).strip().casefold()


# -- loading -----------------------------------------------------------------------------------


def available_label_sets() -> tuple[str, ...]:
    """Task names of the label sets shipped with CardiacAI, sorted."""
    names = []
    for entry in resources.files(_PACKAGE).iterdir():
        if entry.name.endswith(".json") and entry.name != SCHEMA_FILE:
            names.append(entry.name[: -len(".json")])
    return tuple(sorted(names))


@functools.lru_cache(maxsize=None)
def get_label_set(task: str) -> LabelSet:
    """The shipped label set of a task ("whole-heart", "ima-aorta").

    Raises
    ------
    InputError: unknown task (the message lists the available ones).
    ModelError: the shipped file is broken (names the file and the field).
    """
    if task not in available_label_sets():
        raise InputError(
            f"unknown segmentation task '{task}'",
            f"choose one of: {', '.join(available_label_sets())}",
        )
    resource = resources.files(_PACKAGE) / f"{task}.json"
    label_set = _parse(resource.read_text(encoding="utf-8"), f"{task}.json")
    if label_set.task != task:
        raise ModelError(f"label set file {task}.json declares task '{label_set.task}'",
                         "the file name and its 'task' field must agree; reinstall CardiacAI")
    return label_set


def load_label_set(path: str | Path) -> LabelSet:
    """Load and validate a label set JSON file (e.g. one shipped with a custom model).

    Raises
    ------
    ModelError: file missing, not JSON, or not a valid label set (names the file and field).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ModelError(f"cannot read label set file {path}: {exc.strerror or exc}",
                         "check the path of the model's label set") from None
    return _parse(text, str(path))


@functools.lru_cache(maxsize=1)
def _schema() -> dict[str, Any]:
    return json.loads((resources.files(_PACKAGE) / SCHEMA_FILE).read_text(encoding="utf-8"))


def _parse(text: str, where: str) -> LabelSet:
    import jsonschema

    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelError(f"label set file {where} is not valid JSON (line {exc.lineno}: {exc.msg})",
                         "fix or reinstall the file") from None
    validator = jsonschema.Draft202012Validator(_schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        field = _field_path(first.absolute_path)
        raise ModelError(f"label set file {where} is invalid at {field}: {first.message}",
                         "fix the field to match label_set.schema.json")
    structures = []
    for item in data["structures"]:
        structures.append(
            Structure(
                value=item["value"],
                key=item["key"],
                name=item["name"],
                color=tuple(c / 255.0 for c in item["color"]),  # type: ignore[arg-type]
                category=Code(**item["category"]),
                type=Code(**item["type"]),
                type_modifier=_optional_code(item.get("type_modifier")),
                anatomic_region=_optional_code(item.get("anatomic_region")),
                anatomic_region_modifier=_optional_code(item.get("anatomic_region_modifier")),
                notes=item.get("notes", ""),
                derived_from=tuple(item.get("derived_from", ())),
            )
        )
    for attribute in ("value", "key", "name"):
        seen: dict[Any, int] = {}
        for index, s in enumerate(structures):
            value = getattr(s, attribute)
            if value in seen:
                raise ModelError(
                    f"label set file {where} is invalid at structures[{index}].{attribute}: "
                    f"{value!r} is already used by structures[{seen[value]}]",
                    f"every structure needs its own {attribute}",
                )
            seen[value] = index
    return LabelSet(
        task=data["task"],
        title=data["title"],
        structures=tuple(sorted(structures, key=lambda s: s.value)),
        source=data["source"],
        notes=data.get("notes", ""),
    )


def _optional_code(item: dict[str, str] | None) -> Code | None:
    return None if item is None else Code(**item)


def _field_path(path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "the top level"


__all__ = [
    "Code",
    "LabelSet",
    "SLICER_ANATOMIC_CONTEXT",
    "SLICER_TERMINOLOGY_CONTEXT",
    "Structure",
    "TerminologyCodes",
    "available_label_sets",
    "get_label_set",
    "load_label_set",
    "parse_terminology_entry",
]
