"""Anatomy label values of the synthetic generator and their mapping onto the task label sets.

``ANATOMY_LABELS`` maps a tissue/structure key to its value in ``SyntheticCase.anatomy`` (uint8,
0 = air outside the body). The task label sets ("whole-heart", "ima-aorta") come from
:mod:`CardiacAI.labels`; the keys of the 10 whole-heart structures and of the IMA/aorta vessels are
the same keys here, so the mapping is by name.
"""

from __future__ import annotations

#: Anatomy key -> label value in ``SyntheticCase.anatomy``. Fixed: models and reports rely on it.
ANATOMY_LABELS: dict[str, int] = {
    "background": 0,
    "skin": 1,
    "subcutaneous_fat": 2,
    "muscle": 3,
    "lung": 4,
    "pulmonary_vessels": 5,          # intrapulmonary arteries and veins
    "airway": 6,                     # trachea and main bronchi (wall and lumen)
    "esophagus": 7,
    "vertebra": 8,
    "spinal_canal": 9,
    "intervertebral_disc": 10,
    "rib": 11,
    "costal_cartilage": 12,
    "sternum": 13,
    "liver": 14,
    "upper_abdomen": 15,             # visceral fat and other tissue below the diaphragm
    "mediastinal_fat": 16,
    "pericardial_fat": 17,           # fat outside the pericardium
    "pericardium": 18,
    "epicardial_fat": 19,            # fat inside the pericardium, around the heart and coronaries
    "pulmonary_veins": 20,
    "left_atrium": 21,               # including the appendage
    "left_ventricle_cavity": 22,
    "left_ventricle_myocardium": 23,  # including the papillary muscles (whole-heart paper)
    "aorta": 24,                     # root, ascending, arch, descending
    "coronary_sinus": 25,
    "superior_vena_cava": 26,
    "right_atrium": 27,              # including the appendage
    "right_ventricle_cavity": 28,
    "pulmonary_artery": 29,          # trunk and main branches
    "right_ventricle_myocardium": 30,
    "inferior_vena_cava": 31,
    "supra_aortic_arteries": 32,     # brachiocephalic trunk, carotids, subclavian arteries
    "brachiocephalic_veins": 33,
    "left_main_coronary_artery": 34,
    "left_anterior_descending_artery": 35,  # with diagonal branches
    "left_circumflex_artery": 36,    # with obtuse marginal branches
    "right_coronary_artery": 37,     # with the posterior descending artery
    "left_internal_mammary_artery": 38,
    "right_internal_mammary_artery": 39,
    "internal_mammary_veins": 40,
    "coronary_calcium": 41,
    "aortic_wall_calcium": 42,
    "aortic_valve_calcium": 43,
    "mitral_annulus_calcium": 44,
    "stomach": 45,                   # wall, contents and gas
    "spleen": 46,
    "bowel": 47,                     # colon (splenic flexure, transverse colon): wall, contents and gas
    "table": 48,                     # the scanner table, outside the body
}

LABEL_NAMES: dict[int, str] = {v: k for k, v in ANATOMY_LABELS.items()}

#: Tasks whose label maps a SyntheticCase produces.
TASKS = ("whole-heart", "ima-aorta")

# Fallback when CardiacAI.labels is unavailable: the fixed values of the common label sets.
_FIXED_TASK_STRUCTURES = {
    "whole-heart": {
        "pulmonary_veins": 1, "left_atrium": 2, "left_ventricle_cavity": 3,
        "left_ventricle_myocardium": 4, "aorta": 5, "coronary_sinus": 6, "superior_vena_cava": 7,
        "right_atrium": 8, "right_ventricle_cavity": 9, "pulmonary_artery": 10,
    },
    "ima-aorta": {
        "left_internal_mammary_artery": 1, "right_internal_mammary_artery": 2,
        "peri_ima_region": 3, "aorta": 4, "periaortic_region": 5,
    },
}


def task_structures(task: str) -> dict[str, int]:
    """Structure key -> label value of a task label set (from ``CardiacAI.labels`` when present).

    Raises InputError for an unknown task.
    """
    from ..errors import InputError

    if task not in _FIXED_TASK_STRUCTURES:
        raise InputError(f"unknown segmentation task {task!r}",
                         f"use one of {', '.join(TASKS)}")
    try:
        from ..labels import get_label_set
    except ImportError:  # the label-set package is optional for the generator
        return dict(_FIXED_TASK_STRUCTURES[task])
    return {s.key: int(s.value) for s in get_label_set(task).structures}


#: Structures of the whole-heart task taken 1:1 from anatomy labels of the same key.
WHOLE_HEART_FROM_ANATOMY = tuple(_FIXED_TASK_STRUCTURES["whole-heart"])
