"""The ``cardiacai`` command line on the real chest CTs: info, convert, and clear errors."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

from CardiacAI.cli import _volume_text, main, orientation_description
from CardiacAI.io import read_image, read_labelmap


def test_info_reports_lidc1_size_spacing_modality_kvp(lidc1_dir, capsys):
    assert main(["info", str(lidc1_dir), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    first = pydicom.dcmread(next(lidc1_dir.glob("*.dcm")), stop_before_pixels=True)
    assert info["size_ijk"] == [first.Columns, first.Rows, 133]
    assert info["size_ijk"] == [512, 512, 133]
    assert info["spacing_mm"] == pytest.approx([0.703, 0.703, 2.5], abs=1e-3)
    assert info["modality"] == "CT" and info["kvp"] == 120.0
    assert info["manufacturer"].startswith("GE")
    assert info["orientation"].startswith("LPS (axial")
    assert info["hu_min"] < -900 and info["hu_max"] > 1000


def test_info_text_output_is_readable(lidc1_dir, capsys):
    assert main(["info", str(lidc1_dir)]) == 0
    out = capsys.readouterr().out
    assert "512 x 512 x 133 voxels" in out and "0.7031 x 0.7031 x 2.5 mm" in out
    assert "kVp:           120" in out and "Modality:      CT" in out


@pytest.mark.parametrize("command", ["python -m CardiacAI", "cardiacai"])
def test_console_script_errors_are_one_clear_line(tmp_path, command):
    """Both ways to start the command line (the installed ``cardiacai`` script and ``python -m``)
    return main's exit status and print the error as one line."""
    script = Path(sys.executable).with_name("cardiacai")
    if command == "cardiacai" and not script.exists():
        pytest.skip(f"the console script is not installed next to {sys.executable} (pip install -e .)")
    argv = [sys.executable, "-m", "CardiacAI"] if command.startswith("python") else [str(script)]
    run = subprocess.run([*argv, "info", str(tmp_path / "missing")], capture_output=True, text=True)
    assert run.returncode == 2
    assert "does not exist" in run.stderr and "Traceback" not in run.stderr


def test_convert_dicom_to_nifti_keeps_voxels_and_geometry(lidc1_dir, lidc1_image, tmp_path):
    out = tmp_path / "ct.nii.gz"
    assert main(["convert", str(lidc1_dir), str(out)]) == 0
    back = read_image(out)
    assert np.array_equal(back.array, lidc1_image.array)
    assert back.same_geometry(lidc1_image, atol=1e-4)


def test_convert_refuses_unknown_output_format_and_writes_nothing(lidc1_dir, tmp_path, capsys):
    assert main(["convert", str(lidc1_dir), str(tmp_path / "ct.jpg")]) == 2
    assert "error" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_convert_labelmap_needs_a_task(tmp_path, capsys):
    from CardiacAI.image import Image
    from CardiacAI.io import write_labelmap

    lm = tmp_path / "lm.nii.gz"
    write_labelmap(Image(np.ones((4, 4, 4), np.uint8), spacing=(1, 1, 1)), lm)
    assert main(["convert", str(lm), str(tmp_path / "lm.seg.nrrd")]) == 2
    assert "--task" in capsys.readouterr().err
    assert main(["convert", str(lm), str(tmp_path / "lm.nrrd"), "--labelmap", "--task", "whole-heart"]) == 0
    assert np.array_equal(read_labelmap(tmp_path / "lm.nrrd").array, np.ones((4, 4, 4)))


def test_orientation_description_of_oblique_grid():
    a = np.radians(30)
    d = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    assert "oblique by 30.0°" in orientation_description(d)
    assert orientation_description(np.diag([1.0, 1.0, 1.0])) == "LPS (axial, not oblique)"


def test_convert_labelmap_to_seg_nrrd_and_back_on_real_ct_grid(lidc1_dir, lidc1_image, tmp_path):
    from CardiacAI.io import write_labelmap
    from CardiacAI.labels import get_label_set

    labels = np.zeros(lidc1_image.array.shape, np.uint8)
    labels[60:70, 200:260, 200:300] = 5  # "aorta" box
    labels[60:70, 300:340, 200:260] = 4  # "LV myocardium" box
    lm_path = tmp_path / "labels.nii.gz"
    write_labelmap(lidc1_image.with_array(labels), lm_path)
    seg = tmp_path / "labels.seg.nrrd"
    assert main(["convert", str(lm_path), str(seg), "--task", "whole-heart", "--reference", str(lidc1_dir)]) == 0
    back = tmp_path / "back.nrrd"
    assert main(["convert", str(seg), str(back), "--task", "whole-heart", "--reference", str(lidc1_dir)]) == 0
    result = read_labelmap(back, reference=lidc1_image)
    assert np.array_equal(result.array, labels)
    names = [s.name for s in get_label_set("whole-heart").structures]
    assert "Aorta" in names


def test_small_present_volume_is_never_printed_as_zero():
    """A present 30 mm internal mammary artery is 0.05 mL: the terminal must not say "0.0 mL present"."""
    assert _volume_text(0.049).strip() == "0.049"
    assert _volume_text(106.656).strip() == "106.7"
    assert _volume_text(0.0).strip() == "0.0"
    assert len({len(_volume_text(v)) for v in (0.0, 0.049, 1.0, 723.4)}) == 1  # the columns stay aligned


def test_building_the_command_line_imports_neither_the_generator_nor_torch():
    """Every command builds the whole parser first (``cardiacai --help`` included): the generator's fields of view
    and the training options are offered from their names alone, so start-up stays light (0.09 s against 0.30 s
    with the generator and SciPy on this project's machine)."""
    code = ("import sys\nfrom CardiacAI.cli import build_parser\nparser = build_parser()\n"
            "parser.parse_args(['generate', '-o', 'x', '--fov', 'heart_region'])\n"
            "print(sorted(m for m in ('CardiacAI.synthetic.generator', 'scipy.ndimage', 'torch', 'monai')"
            " if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
