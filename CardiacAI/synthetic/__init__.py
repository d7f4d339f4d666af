"""Synthetic, anatomically labelled chest and cardiac CT for training and testing (issue #3).

Real annotated cardiac CT is not available to this project, so its models learn from this
generator: analytic anatomy (body wall, lungs, spine, ribs, sternum, upper abdomen, the heart with
the 10 whole-heart structures, coronary arteries, internal mammary arteries, calcified plaques)
rendered with CT physics for four protocols, or with SynthSeg-style random appearance.

    from CardiacAI.synthetic import GeneratorConfig, generate_case
    case = generate_case(7, GeneratorConfig(protocol="cta", spacing_mm=(1, 1, 1), fov="chest"))
    case.image, case.anatomy, case.task_labels("whole-heart"), case.present, case.parameters

See docs/synthetic.md for the anatomy, the HU calibration against real scans and pictures.
"""

#: Version of the generated cases (anatomy and physics): training caches are keyed on it, so bump it
#: whenever the same seed would give a different case. 0.2: upper abdomen (liver lobes and veins,
#: stomach, spleen, colon), scanner table, whole-chest field of view 6-14 cm below the diaphragm.
#: 0.2.1: IMAs in an extrapleural fat sleeve, motion blur only on what beats. 0.2.2: anterior chest
#: wall as on real scans (sternum level with the cartilages, IMAs at its depth, anterior lungs up to
#: the manubrium). 0.2.3: IMAs 1.6-2.8 mm, in 0.5-2 mm of fat with the lung close behind, their vein
#: beside them half the time. 0.2.4: the pectoral muscle thins to a sheet beside the sternum, with fat
#: behind it, and no muscle over the sternum (as on LIDC-IDRI-0001 and 0002). 0.2.5: the IMAs run in a
#: plate of extrapleural fat from the sternal border to 5-15 mm beyond them, the lung behind, not beside them.
#: 0.2.6: the abdominal aorta in front of the vertebral bodies, in the crura. 0.2.7: the body bends forward
#: below the chest (lumbar lordosis; the table stays flat), the abdominal aorta's width drawn per patient;
#: cases record this version (earlier ones recorded the package's, 0.1.0). 0.2.8: the bend's slope 0.15-0.45
#: (0.2.7: 0.10-0.32), as the vertebral bodies of LIDC-IDRI-0001 and 0002 measure. 0.2.9: the IMAs run
#: unbroken in front of the heart (0.2.8 left a 30-80 mm gap in the left IMA, label and image, where the right
#: ventricle reached the chest wall, in 8 of 12 seeds). 0.2.10: intercostal muscle, not fat, between the
#: costal cartilages in front of the IMAs. 0.2.11: with contrast the right atrium is IVC blood with swirls of
#: SVC blood, and routine contrast chest CTs draw dense injected veins with streaks (as LIDC-IDRI-0001).
#: 0.2.12: a tube's wall is partial volume once, not twice where its capsules overlap (an IMA's covered
#: fractions summed to 11-36 % more than its volume), and cases keep the IMAs' partial-volume fractions.
__version__ = "0.2.12"

# The generator's fields of view (``GeneratorConfig.fov``) and CT protocols (``GeneratorConfig.protocol``;
# docs/synthetic.md) are defined here, not in the generator and its physics, so that the command line and the
# training configuration can offer them without importing the generator and SciPy at start-up.
#: Fields of view.
FOVS = ("chest", "cardiac", "heart_region", "narrow", "random")
#: CT protocols (``CardiacAI.synthetic.physics`` renders each).
PROTOCOLS = ("cta", "gated_noncontrast", "chest_noncontrast", "chest_contrast")

#: public name -> the submodule that defines it, imported on first use (PEP 562)
_LAZY = {"ANATOMY_LABELS": "anatomy_labels", "LABEL_NAMES": "anatomy_labels", "TASKS": "anatomy_labels",
         "task_structures": "anatomy_labels", "GeneratorConfig": "generator", "SyntheticCase": "generator",
         "generate_case": "generator"}

__all__ = ["ANATOMY_LABELS", "LABEL_NAMES", "TASKS", "FOVS", "PROTOCOLS", "GeneratorConfig", "SyntheticCase",
           "generate_case", "task_structures"]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
