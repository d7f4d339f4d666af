"""The command line as a short-lived process: PyTorch's and MONAI's objects are frozen out of the garbage
collector once imported (a full collection otherwise walks them all, 0.5-0.6 s of a 6 s run on 2 CPU cores), and
glibc's malloc keeps freed memory for reuse; only there: a process that goes on (Slicer, these tests) keeps its
collector and allocator as they were. Tiny untrained model: no accuracy claims."""

from __future__ import annotations

import ctypes
import gc
import json
import platform

import numpy as np
import pytest

from CardiacAI import allocator, cli, segmentation
from CardiacAI.image import Image
from CardiacAI.io import write_image
from CardiacAI.models import catalog_entry_from_card
from CardiacAI.models import catalog as catalog_module
from model_fixtures import write_random_model


@pytest.fixture
def collector():
    """Start with nothing frozen; leave the collector as found."""
    was_enabled = gc.isenabled()
    gc.unfreeze()
    yield
    gc.unfreeze()
    (gc.enable if was_enabled else gc.disable)()


@pytest.fixture
def packaged(tmp_path_factory, monkeypatch):
    root = tmp_path_factory.mktemp("catalog")
    entry = catalog_entry_from_card(write_random_model(root / "wh", "whole-heart", 1), "wh", "1.0.0", "WH",
                                    catalog_dir=root, default=True)
    path = root / "catalog.json"
    path.write_text(json.dumps({"schema_version": 1, "models": [entry]}))
    monkeypatch.setattr(catalog_module, "DEFAULT_CATALOG_PATH", path)


def _ct_file(path):
    arr = np.random.default_rng(0).normal(40, 15, (12, 20, 20))
    arr[:, :, :3] = -1000
    write_image(Image(arr.astype(np.int16), spacing=(3.0, 3.0, 3.0), origin=(0.0, 0.0, 0.0), modality="CT"), path)
    return path


def test_libraries_are_frozen_only_when_asked_and_the_collector_is_left_as_it_was(collector):
    segmentation.import_inference_libraries(freeze=False)
    assert gc.get_freeze_count() == 0 and gc.isenabled()
    segmentation.import_inference_libraries(freeze=True)
    assert gc.get_freeze_count() > 0 and gc.isenabled()
    gc.unfreeze()
    gc.disable()  # a host that switched the collector off keeps it off
    segmentation.import_inference_libraries(freeze=True)
    assert gc.get_freeze_count() > 0 and not gc.isenabled()


@pytest.mark.parametrize("cohort", [False, True], ids=["one scan", "cohort"])
def test_only_a_short_lived_command_freezes_the_libraries(packaged, collector, monkeypatch, tmp_path, cohort):
    calls = []
    real = segmentation.import_inference_libraries

    def recording(*, freeze=False):
        calls.append(freeze)
        return real(freeze=freeze) + 0.25  # a recognisable import time

    monkeypatch.setattr(segmentation, "import_inference_libraries", recording)
    ct = _ct_file(tmp_path / "patient.nii.gz")
    inputs = [str(ct), str(ct)] if cohort else [str(ct)]
    for short_lived in (False, True):
        calls.clear()
        out = tmp_path / f"out-{short_lived}"
        assert cli.main(["segment", *inputs, "--task", "whole-heart", "-o", str(out), "--cpu", "--no-overview",
                         "--quiet"], short_lived=short_lived) == 0
        assert (True in calls) == short_lived
        assert gc.get_freeze_count() > 0 if short_lived else gc.get_freeze_count() == 0
        if not cohort:  # the command line's import is in the run record
            run = json.loads((out / "run.json").read_text())
            assert run["timings_s"]["import_libraries_s"] >= 0.25


class FakeLibc:
    """Records mallopt calls; answers ``result`` (glibc: 1 on success, 0 when it refuses)."""

    def __init__(self, result: int = 1):
        self.calls: list[tuple[int, int]] = []
        self.result = result

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append((param, value))
        return self.result


def test_freed_memory_is_kept_by_turning_off_separate_mappings_and_trimming():
    libc = FakeLibc()
    assert allocator.keep_freed_memory_for_reuse({}, libc)
    assert libc.calls == [(allocator.M_MMAP_MAX, 0), (allocator.M_TRIM_THRESHOLD, 2**31 - 1)]
    # glibc's <malloc.h> numbers, and a threshold a C int can hold
    assert (allocator.M_MMAP_MAX, allocator.M_TRIM_THRESHOLD) == (-4, -1)


def test_the_allocator_is_left_alone_when_opted_out_or_when_glibc_refuses():
    libc = FakeLibc()
    assert not allocator.keep_freed_memory_for_reuse({allocator.OPT_OUT_VARIABLE: "0"}, libc)
    assert libc.calls == []
    assert not allocator.keep_freed_memory_for_reuse({}, FakeLibc(result=0))


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt is looked up only on glibc")
def test_glibc_is_found_with_its_mallopt_typed():
    libc = allocator._glibc()
    assert libc is not None and libc.mallopt.argtypes == [ctypes.c_int, ctypes.c_int]


def test_the_console_script_keeps_freed_memory_before_running_the_command(collector, monkeypatch):
    order = []
    monkeypatch.setattr(allocator, "keep_freed_memory_for_reuse", lambda: order.append("allocator") or True)
    monkeypatch.setattr(cli, "main", lambda argv=None, *, short_lived=False: order.append(("main", short_lived)) or 0)
    assert cli.console_main() == 0
    assert order == ["allocator", ("main", True)]
