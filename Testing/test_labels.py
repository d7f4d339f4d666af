"""Label sets: fixed values/keys, real DICOM codes, Slicer terminology format, validation of broken files."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from CardiacAI.errors import InputError, ModelError
from CardiacAI.labels import (
    available_label_sets,
    get_label_set,
    load_label_set,
    parse_terminology_entry,
)

WHOLE_HEART = {
    1: "pulmonary_veins", 2: "left_atrium", 3: "left_ventricle_cavity", 4: "left_ventricle_myocardium",
    5: "aorta", 6: "coronary_sinus", 7: "superior_vena_cava", 8: "right_atrium",
    9: "right_ventricle_cavity", 10: "pulmonary_artery",
}
IMA_AORTA = {
    1: "left_internal_mammary_artery", 2: "right_internal_mammary_artery", 3: "peri_ima_region",
    4: "aorta", 5: "periaortic_region",
}

#: The one code not taken from current DICOM PS3.16: Slicer's and TotalSegmentator's category code.
SLICER_ANATOMICAL_STRUCTURE = ("SCT", "123037004", "Anatomical Structure")


def test_shipped_tasks_are_listed():
    assert available_label_sets() == ("ima-aorta", "whole-heart")


@pytest.mark.parametrize("task, expected", [("whole-heart", WHOLE_HEART), ("ima-aorta", IMA_AORTA)])
def test_values_and_keys_are_the_fixed_contract(task, expected):
    label_set = get_label_set(task)
    assert label_set.task == task
    assert dict(zip(label_set.values, label_set.keys, strict=True)) == expected
    for value, key in expected.items():
        assert label_set.by_value(value).key == key
        assert label_set.by_key(key).value == value


def test_unknown_task_key_and_value_are_input_errors_listing_valid_ones():
    with pytest.raises(InputError, match="whole-heart"):
        get_label_set("coronaries-v9")
    label_set = get_label_set("whole-heart")
    with pytest.raises(InputError, match="left_atrium"):
        label_set.by_key("left_auricle")
    with pytest.raises(InputError, match="10"):
        label_set.by_value(11)


def _dicom_concepts():
    concepts = pytest.importorskip("pydicom.sr._concepts_dict").concepts
    meanings: dict[tuple[str, str], set[str]] = {}
    for scheme, by_keyword in concepts.items():
        for entries in by_keyword.values():
            for value, (meaning, _cids) in entries.items():
                meanings.setdefault((scheme, value), set()).add(meaning.casefold())
    return meanings


@pytest.mark.parametrize("task", ["whole-heart", "ima-aorta"])
def test_every_code_is_a_dicom_ps3_16_concept_with_its_meaning(task):
    meanings = _dicom_concepts()
    for structure in get_label_set(task):
        for field, code in structure.codes().items():
            if code is None:
                continue
            triple = (code["scheme"], code["value"], code["meaning"])
            if field == "category" and triple == SLICER_ANATOMICAL_STRUCTURE:
                continue
            key = (code["scheme"], code["value"])
            assert key in meanings, f"{structure.key}.{field}: {triple} is not a DICOM concept"
            assert code["meaning"].casefold() in meanings[key], (
                f"{structure.key}.{field}: meaning '{code['meaning']}' differs from DICOM's {meanings[key]}"
            )


@pytest.mark.parametrize("task", ["whole-heart", "ima-aorta"])
def test_each_structure_has_a_unique_coding_and_matches_only_its_own_entry(task):
    label_set = get_label_set(task)
    for structure in label_set:
        parsed = parse_terminology_entry(structure.terminology_entry())
        assert parsed is not None
        matching = [s.key for s in label_set if s.matches_terminology(parsed)]
        assert matching == [structure.key]


def test_terminology_entry_is_slicers_own_serialisation():
    slicer = pytest.importorskip("slicer")
    logic = slicer.vtkSlicerTerminologiesModuleLogic
    for task in available_label_sets():
        for structure in get_label_set(task):
            entry = slicer.vtkSlicerTerminologyEntry()
            assert logic.DeserializeTerminologyEntry(structure.terminology_entry(), entry)
            assert logic.SerializeTerminologyEntry(entry) == structure.terminology_entry()
            assert entry.GetTypeObject().GetCodeValue() == structure.type.value
            assert entry.GetCategoryObject().GetCodeValue() == structure.category.value
            modifier = entry.GetTypeModifierObject().GetCodeValue() or None
            assert modifier == (structure.type_modifier.value if structure.type_modifier else None)
            region = entry.GetAnatomicRegionObject().GetCodeValue() or None
            assert region == (structure.anatomic_region.value if structure.anatomic_region else None)


def test_parse_terminology_entry_rejects_non_entries():
    assert parse_terminology_entry("") is None
    assert parse_terminology_entry("Aorta") is None
    assert parse_terminology_entry("a~b~c~d~e~f~g") is None


@pytest.mark.parametrize("task", ["whole-heart", "ima-aorta"])
def test_colours_are_valid_and_distinguishable(task):
    label_set = get_label_set(task)
    for structure in label_set:
        assert all(0.0 <= c <= 1.0 for c in structure.color)
    for a, b in itertools.combinations(label_set, 2):
        distance = np.linalg.norm(np.subtract(a.color_rgb255, b.color_rgb255))
        assert distance >= 40, f"{a.key} and {b.key} colours are too alike ({distance:.0f}/441)"


def test_slicer_anatomy_colours_are_used_where_slicer_defines_them():
    # recommendedDisplayRGBValue in Slicer's SegmentationCategoryTypeModifier-SlicerGeneralAnatomy.json
    whole_heart = get_label_set("whole-heart")
    assert whole_heart.by_key("aorta").color_rgb255 == (224, 97, 76)
    assert whole_heart.by_key("left_ventricle_cavity").color_rgb255 == (152, 55, 13)
    assert whole_heart.by_key("right_ventricle_cavity").color_rgb255 == (181, 85, 57)
    assert get_label_set("ima-aorta").by_key("aorta").color_rgb255 == (224, 97, 76)


def test_find_matches_key_or_name_ignoring_case_and_separators():
    label_set = get_label_set("whole-heart")
    assert label_set.find("Left ventricular myocardium").key == "left_ventricle_myocardium"
    assert label_set.find("SUPERIOR-VENA-CAVA").key == "superior_vena_cava"
    assert label_set.find("liver") is None


def test_labels_json_dict_is_serialisable_and_consistent():
    label_set = get_label_set("ima-aorta")
    data = json.loads(json.dumps(label_set.to_labels_json()))
    assert data["task"] == "ima-aorta"
    assert sorted(int(v) for v in data["labels"]) == list(label_set.values)
    for structure in label_set:
        entry = data["labels"][str(structure.value)]
        assert entry["key"] == structure.key and entry["name"] == structure.name
        assert tuple(entry["color_rgb255"]) == structure.color_rgb255
        assert entry["codes"]["type"]["value"] == structure.type.value
    assert data["labels"]["1"]["codes"]["type_modifier"]["meaning"] == "Left"
    assert data["labels"]["5"]["codes"]["anatomic_region"]["meaning"] == "Aorta"


# -- broken files -----------------------------------------------------------------------------


def _shipped(task: str) -> dict:
    from importlib import resources

    return json.loads((resources.files("CardiacAI.labels") / f"{task}.json").read_text())


def _write(tmp_path, data) -> str:
    path = tmp_path / "custom.json"
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return str(path)


def test_a_copy_of_a_shipped_file_loads_identically(tmp_path):
    assert load_label_set(_write(tmp_path, _shipped("whole-heart"))) == get_label_set("whole-heart")


def test_duplicate_value_names_file_and_field(tmp_path):
    data = _shipped("whole-heart")
    data["structures"][1]["value"] = 1
    with pytest.raises(ModelError, match=r"custom\.json.*structures\[1\]\.value"):
        load_label_set(_write(tmp_path, data))


def test_missing_code_field_names_file_and_field(tmp_path):
    data = _shipped("ima-aorta")
    del data["structures"][2]["type"]["value"]
    with pytest.raises(ModelError, match=r"custom\.json.*structures\[2\]\.type.*value"):
        load_label_set(_write(tmp_path, data))


def test_out_of_range_colour_and_bad_key_are_refused(tmp_path):
    data = _shipped("ima-aorta")
    data["structures"][0]["color"] = [300, 0, 0]
    with pytest.raises(ModelError, match=r"structures\[0\]\.color\[0\]"):
        load_label_set(_write(tmp_path, data))
    data = _shipped("ima-aorta")
    data["structures"][4]["key"] = "Periaortic Region"
    with pytest.raises(ModelError, match=r"structures\[4\]\.key"):
        load_label_set(_write(tmp_path, data))


def test_separator_characters_in_meanings_are_refused(tmp_path):
    # '~' and '^' would corrupt Slicer's TerminologyEntry serialisation.
    data = _shipped("whole-heart")
    data["structures"][0]["type"]["meaning"] = "Pulmonary^vein"
    with pytest.raises(ModelError, match=r"structures\[0\]\.type\.meaning"):
        load_label_set(_write(tmp_path, data))


def test_not_json_and_missing_file_are_model_errors(tmp_path):
    with pytest.raises(ModelError, match="not valid JSON"):
        load_label_set(_write(tmp_path, "{ not json"))
    with pytest.raises(ModelError, match="cannot read"):
        load_label_set(tmp_path / "absent.json")
