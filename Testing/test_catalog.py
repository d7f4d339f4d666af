"""Model catalog: schema validation, checksummed weights (shipped and downloaded), cache management.

Downloads are served by a local ``http.server`` on 127.0.0.1 only; nothing leaves the machine.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import socket
import threading
from pathlib import Path

import pytest

from CardiacAI.errors import InputError, ModelError, OperationCancelled
from CardiacAI.labels import get_label_set
from CardiacAI.models import (
    CACHE_ENV_VAR,
    DEFAULT_CATALOG_PATH,
    MAX_SHIPPED_WEIGHTS_BYTES,
    ModelCatalog,
    catalog_entry_from_card,
    list_cached,
    remove_cached,
)
from CardiacAI.training.model_card import validate_model_card

WEIGHTS = bytes(range(256)) * 1200  # 307200 bytes: several download chunks
WEIGHTS_SHA = hashlib.sha256(WEIGHTS).hexdigest()


# -- fixtures ---------------------------------------------------------------------------------------


def make_card(task: str = "whole-heart", data: bytes = WEIGHTS) -> dict:
    """A model card that validates against CardiacAI/training/model_card.schema.json."""
    labels = [{"value": s.value, "key": s.key, "name": s.name} for s in get_label_set(task).structures]
    card = {
        "schema_version": 1,
        "name": f"test {task}",
        "created": "2025-11-21T00:00:00Z",
        "task": task,
        "labels": labels,
        "input": {
            "channels": 1,
            "spacing_mm": [1.5, 1.5, 2.0],
            "orientation": {"coordinate_system": "LPS", "direction": [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
                            "array_axes": "k,j,i"},
            "intensity": {"unit": "HU", "window": [-1000, 1000], "output_range": [-1, 1], "clip": True,
                          "method": "linear"},
            "patch_size": [64, 96, 96],
            "divisible_by": 16,
        },
        "network": {"name": "densevnet", "params": {}, "in_channels": 1,
                    "out_channels": len(labels) + 1, "parameter_count": 1000},
        "model_file": {"path": "model.pt", "format": "torch-state-dict", "size_bytes": len(data),
                       "sha256": hashlib.sha256(data).hexdigest()},
        "training": {"command": "cardiacai train --task " + task, "config": {}, "generator": {},
                     "train_seeds": [1], "validation_seeds": [2], "steps": 10, "stopped_because": "steps",
                     "training_time_s": 1.0,
                     "machine": {"device": "cpu", "cpu": "x", "threads": 2, "torch": "2", "monai": "1",
                                 "python": "3"}},
        "metrics": {"validation_seeds": [2], "best_step": 10, "val_loss": 0.5, "mean_dice": 0.8,
                    "dice": {labels[0]["key"]: 0.8}},
    }
    validate_model_card(card)  # the fixture itself must be a valid card
    return card


def make_entry(model_id="heart-test", version="1.0.0", *, url=None, file="weights/heart.pt",
               data: bytes = WEIGHTS, default=None) -> dict:
    weights = {"sha256": hashlib.sha256(data).hexdigest(), "size_bytes": len(data), "format": "torch-state-dict"}
    if url is not None:
        weights["url"] = url
    else:
        weights["file"] = file
    entry = {"id": model_id, "version": version, "title": "Test model", "task": "whole-heart",
             "label_set": "whole-heart", "weights": weights, "card": make_card(data=data)}
    if default is not None:
        entry["default"] = default
    return entry


def write_catalog(folder: Path, entries: list[dict]) -> Path:
    path = folder / "catalog.json"
    path.write_text(json.dumps({"schema_version": 1, "models": entries}), encoding="utf-8")
    return path


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


@pytest.fixture
def http_server():
    """A loopback HTTP server: ``files`` maps URL paths to bytes; ``hits`` counts requests per path."""
    files: dict[str, bytes] = {}
    hits: dict[str, int] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits[self.path] = hits.get(self.path, 0) + 1
            body = files.get(self.path)
            if body is None:
                self.send_error(404, "Not Found")
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # keep pytest output clean
            pass

    server = _Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    server.files, server.hits = files, hits
    server.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def closed_port_url() -> str:
    """A loopback URL on which nothing listens (connection refused at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/heart.pt"


def folder_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


# -- the packaged catalog ---------------------------------------------------------------------------


def test_packaged_catalog_is_valid_and_shipped_weights_are_small_and_intact():
    catalog = ModelCatalog.load()
    assert catalog.source == str(DEFAULT_CATALOG_PATH)
    from CardiacAI.networks import available_networks

    for entry in catalog.models():
        assert entry.architecture in available_networks(), entry.id
        if entry.is_shipped:
            path = entry.catalog_dir / entry.weights_file
            assert path.stat().st_size <= MAX_SHIPPED_WEIGHTS_BYTES, f"{path} is over the 25 MB package limit"
            assert entry.weights_path(download=False) == path  # sha256 verified
    for task in catalog.tasks():
        assert catalog.default_for(task).task == task


# -- schema and consistency --------------------------------------------------------------------------


def test_valid_catalog_loads_with_card_fields(tmp_path):
    shipped = make_entry("heart-test", "1.9.0", default=True)
    newer = make_entry("heart-test", "1.10.0")
    remote = make_entry("heart-remote", "2.0.0", url="https://example.invalid/models/heart-remote.pt")
    catalog = ModelCatalog.load(write_catalog(tmp_path, [shipped, newer, remote]))

    assert len(catalog) == 3 and catalog.ids() == ["heart-test", "heart-remote"]
    assert catalog.get("heart-test").version == "1.10.0"  # numeric, not string, version order
    assert catalog.get("heart-test", "1.9.0").default
    assert catalog.default_for("whole-heart").version == "1.9.0"
    entry = catalog.get("heart-remote")
    assert entry.architecture == "densevnet" and entry.out_channels == 11
    assert entry.input_spacing_mm == (1.5, 1.5, 2.0)
    assert entry.intensity["window"] == [-1000, 1000]
    assert entry.patch_size_kji == (64, 96, 96)
    assert entry.labels[5] == "aorta"
    assert entry.training_command.startswith("cardiacai train")
    assert entry.weights_file_name == "heart-remote.pt" and not entry.is_shipped
    assert entry.max_inference_window_kji is None  # the engine's default


def test_a_model_may_set_its_largest_inference_window(tmp_path):
    entry = make_entry("heart-test", "1.0.0", default=True)
    entry["max_inference_window"] = [96, 160, 120]
    catalog = ModelCatalog.load(write_catalog(tmp_path, [entry]))
    assert catalog.get("heart-test").max_inference_window_kji == (96, 160, 120)


def test_card_may_be_a_file_next_to_the_catalog(tmp_path):
    (tmp_path / "cards").mkdir()
    (tmp_path / "cards" / "heart.json").write_text(json.dumps(make_card()), encoding="utf-8")
    entry = make_entry()
    entry["card"] = "cards/heart.json"
    catalog = ModelCatalog.load(write_catalog(tmp_path, [entry]))
    assert catalog.get("heart-test").metrics["mean_dice"] == 0.8


def _set(data, path, value):
    for key in path[:-1]:
        data = data[key]
    if value is _DELETE:
        del data[path[-1]]
    else:
        data[path[-1]] = value


_DELETE = object()


@pytest.mark.parametrize(
    "path, value, expected_field, expected_text",
    [
        (("weights", "sha256"), _DELETE, "weights.sha256", "missing required field"),
        (("weights", "sha256"), 12345, "weights.sha256", "is not of type 'string'"),
        (("weights", "sha256"), "abc", "weights.sha256", "does not match"),
        (("version",), "1.0", "version", "does not match"),
        (("task",), _DELETE, "task", "missing required field"),
        (("weights", "sha265"), "0" * 64, "weights", "sha265"),
        (("weights", "url"), "https://example.invalid/a.pt", "weights", "exactly one of 'file'"),
        (("weights", "file"), "../outside.pt", "weights.file", "does not match"),
        (("card", "training", "command"), _DELETE, "card", "training"),
        (("card",), 3, "card", "model card itself"),
        (("max_inference_window",), [96, 160], "max_inference_window", "is too short"),
        (("max_inference_window",), [96, 8, 96], "max_inference_window.1", "less than the minimum"),
    ],
)
def test_schema_rejects_missing_or_mistyped_fields_naming_file_entry_and_field(
        tmp_path, path, value, expected_field, expected_text):
    entry = make_entry("broken-model")
    _set(entry, path, value)
    catalog_path = write_catalog(tmp_path, [make_entry("good-model"), entry])
    with pytest.raises(ModelError) as err:
        ModelCatalog.load(catalog_path)
    message = str(err.value)
    assert str(catalog_path) in message
    assert "'broken-model' (models[1])" in message
    assert f"field {expected_field}" in message
    assert expected_text in message


@pytest.mark.parametrize(
    "mutate, expected_text",
    [
        (lambda e: e.update(task="ima-aorta"), "card's task is 'whole-heart'"),
        (lambda e: e["weights"].update(sha256="0" * 64), "weights.sha256 differs"),
        (lambda e: e["card"]["labels"][0].update(key="left_atrium"), "label set 'whole-heart' has 'pulmonary_veins'"),
        (lambda e: e.update(label_set="no-such-set"), "unknown label set"),
        (lambda e: (e["weights"].update(size_bytes=MAX_SHIPPED_WEIGHTS_BYTES + 1),
                    e["card"]["model_file"].update(size_bytes=MAX_SHIPPED_WEIGHTS_BYTES + 1)), "package limit"),
    ],
)
def test_entry_and_card_must_agree(tmp_path, mutate, expected_text):
    entry = make_entry("broken-model")
    mutate(entry)
    with pytest.raises(ModelError, match="broken-model") as err:
        ModelCatalog.load(write_catalog(tmp_path, [entry]))
    assert expected_text in str(err.value)


def test_duplicate_versions_and_two_defaults_are_refused(tmp_path):
    with pytest.raises(ModelError, match="listed twice"):
        ModelCatalog.load(write_catalog(tmp_path, [make_entry(), make_entry()]))
    with pytest.raises(ModelError, match="2 default models"):
        ModelCatalog.load(write_catalog(tmp_path, [make_entry("a", default=True), make_entry("b", default=True)]))


def test_unreadable_catalog_files_name_the_file(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        ModelCatalog.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelError, match=str(bad).replace("\\", "\\\\")):
        ModelCatalog.load(bad)


def test_unknown_model_or_version_lists_what_exists(tmp_path):
    catalog = ModelCatalog.load(write_catalog(tmp_path, [make_entry("heart-a"), make_entry("heart-b", "0.2.0")]))
    with pytest.raises(ModelError) as err:
        catalog.get("heart-c")
    assert "heart-a" in str(err.value) and "heart-b" in str(err.value)
    with pytest.raises(ModelError, match="(?i)available versions: 0.2.0"):
        catalog.get("heart-b", "9.9.9")
    with pytest.raises(ModelError, match="no model for the task 'ima-aorta'.*whole-heart"):
        catalog.default_for("ima-aorta")
    assert catalog.default_for("whole-heart").id == "heart-a"  # no explicit default: first listed


# -- shipped weights -----------------------------------------------------------------------------------


def test_shipped_weights_are_verified_and_corruption_is_detected(tmp_path):
    (tmp_path / "weights").mkdir()
    weights = tmp_path / "weights" / "heart.pt"
    weights.write_bytes(WEIGHTS)
    entry = ModelCatalog.load(write_catalog(tmp_path, [make_entry()])).get("heart-test")
    assert entry.weights_path(download=False) == weights

    damaged = bytearray(WEIGHTS)
    damaged[1000] ^= 0xFF  # same size, one flipped byte
    weights.write_bytes(bytes(damaged))
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 1_000_000))
    with pytest.raises(ModelError, match="(?i)damaged.*reinstall"):
        entry.weights_path()


def test_missing_shipped_weights_give_a_clear_error(tmp_path):
    entry = ModelCatalog.load(write_catalog(tmp_path, [make_entry()])).get("heart-test")
    assert not entry.is_available()
    with pytest.raises(ModelError) as err:
        entry.weights_path()
    assert "missing from the CardiacAI installation" in str(err.value)
    assert str(tmp_path / "weights" / "heart.pt") in str(err.value)


def test_catalog_entry_from_a_training_card(tmp_path):
    folder = tmp_path / "weights" / "heart"
    folder.mkdir(parents=True)
    (folder / "model.pt").write_bytes(WEIGHTS)
    (folder / "card.json").write_text(json.dumps(make_card()), encoding="utf-8")
    item = catalog_entry_from_card(folder / "card.json", "heart-own", "1.0.0", "Own model",
                                   catalog_dir=tmp_path, default=True)
    assert item["weights"]["file"] == "weights/heart/model.pt"
    entry = ModelCatalog.load(write_catalog(tmp_path, [item])).default_for("whole-heart")
    assert entry.weights_path() == folder / "model.pt"


# -- downloads -----------------------------------------------------------------------------------------


def _remote_entry(tmp_path, url, data=WEIGHTS):
    catalog_dir = tmp_path / "catalog"
    catalog_dir.mkdir(exist_ok=True)
    return ModelCatalog.load(write_catalog(catalog_dir, [make_entry("heart-remote", "2.1.0", url=url, data=data)])
                             ).get("heart-remote")


def test_download_is_verified_cached_and_not_repeated(tmp_path, http_server):
    http_server.files["/m/heart.pt"] = WEIGHTS
    entry = _remote_entry(tmp_path, http_server.base_url + "/m/heart.pt")
    cache = tmp_path / "cache"
    seen = []

    path = entry.weights_path(cache_dir=cache, progress=lambda done, total: seen.append((done, total)), timeout_s=5)
    assert path == cache / "heart-remote" / "2.1.0" / "heart.pt"
    assert path.read_bytes() == WEIGHTS
    assert seen[0] == (0, len(WEIGHTS)) and seen[-1] == (len(WEIGHTS), len(WEIGHTS))
    assert all(a[0] < b[0] for a, b in zip(seen, seen[1:]))
    assert folder_files(cache) == ["heart.pt"]  # no temporary files left

    assert entry.weights_path(cache_dir=cache, timeout_s=5) == path
    assert entry.weights_path(cache_dir=cache, download=False) == path
    assert http_server.hits == {"/m/heart.pt": 1}

    # a damaged cached copy is discarded and fetched again
    path.write_bytes(b"x" * len(WEIGHTS))
    assert entry.weights_path(cache_dir=cache, timeout_s=5).read_bytes() == WEIGHTS
    assert http_server.hits["/m/heart.pt"] == 2
    entry.weights_path(cache_dir=cache, force_download=True, timeout_s=5)
    assert http_server.hits["/m/heart.pt"] == 3


def test_checksum_mismatch_fails_and_leaves_no_file(tmp_path, http_server):
    tampered = b"\xff" + WEIGHTS[1:]  # same size, first byte changed
    http_server.files["/m/heart.pt"] = tampered
    entry = _remote_entry(tmp_path, http_server.base_url + "/m/heart.pt")
    cache = tmp_path / "cache"
    with pytest.raises(ModelError) as err:
        entry.weights_path(cache_dir=cache, timeout_s=5)
    message = str(err.value)
    assert WEIGHTS_SHA in message and hashlib.sha256(tampered).hexdigest() in message
    assert http_server.base_url + "/m/heart.pt" in message
    assert "discarded" in message
    assert folder_files(cache) == []


def test_server_sending_more_than_the_catalog_size_is_refused(tmp_path, http_server):
    http_server.files["/m/heart.pt"] = WEIGHTS + b"extra"
    entry = _remote_entry(tmp_path, http_server.base_url + "/m/heart.pt")
    with pytest.raises(ModelError, match="more than the"):
        entry.weights_path(cache_dir=tmp_path / "cache", timeout_s=5)
    assert folder_files(tmp_path / "cache") == []


def test_offline_error_says_where_to_put_a_manual_download(tmp_path):
    url = closed_port_url()
    entry = _remote_entry(tmp_path, url)
    cache = tmp_path / "cache"
    with pytest.raises(ModelError) as err:
        entry.weights_path(cache_dir=cache, timeout_s=5)
    message = str(err.value)
    assert url in message
    assert str(cache / "heart-remote" / "2.1.0" / "heart.pt") in message
    assert CACHE_ENV_VAR in message and "models/heart-remote/2.1.0/heart.pt" in message
    assert WEIGHTS_SHA in message
    assert folder_files(cache) == []

    # the remedy works: put the file there by hand and it is used without any network
    target = cache / "heart-remote" / "2.1.0" / "heart.pt"
    target.write_bytes(WEIGHTS)
    assert entry.weights_path(cache_dir=cache, timeout_s=5) == target


def test_http_error_is_reported_with_status(tmp_path, http_server):
    entry = _remote_entry(tmp_path, http_server.base_url + "/m/missing.pt")
    with pytest.raises(ModelError, match="HTTP 404"):
        entry.weights_path(cache_dir=tmp_path / "cache", timeout_s=5)


def test_not_downloaded_and_downloads_disabled(tmp_path, http_server):
    http_server.files["/m/heart.pt"] = WEIGHTS
    entry = _remote_entry(tmp_path, http_server.base_url + "/m/heart.pt")
    with pytest.raises(ModelError, match="not been downloaded"):
        entry.weights_path(cache_dir=tmp_path / "cache", download=False)
    assert http_server.hits == {}


def test_download_can_be_cancelled_by_callback_or_event(tmp_path, http_server):
    http_server.files["/m/heart.pt"] = WEIGHTS
    entry = _remote_entry(tmp_path, http_server.base_url + "/m/heart.pt")
    cache = tmp_path / "cache"
    with pytest.raises(OperationCancelled):
        entry.weights_path(cache_dir=cache, progress=lambda done, total: done < 100_000, timeout_s=5)
    assert folder_files(cache) == []

    stop = threading.Event()

    def progress(done, total):
        if done > 0:
            stop.set()  # as a Cancel button in another thread would

    with pytest.raises(OperationCancelled):
        entry.weights_path(cache_dir=cache, progress=progress, cancel=stop, timeout_s=5)
    assert folder_files(cache) == []


def test_cache_dir_environment_variable(tmp_path, monkeypatch, http_server):
    http_server.files["/m/heart.pt"] = WEIGHTS
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path / "shared-cache"))
    entry = _remote_entry(tmp_path, http_server.base_url + "/m/heart.pt")
    path = entry.weights_path(timeout_s=5)
    assert path == tmp_path / "shared-cache" / "models" / "heart-remote" / "2.1.0" / "heart.pt"
    assert [c.model_id for c in list_cached()] == ["heart-remote"]


def test_list_and_remove_cached_models(tmp_path, http_server):
    http_server.files["/m/heart.pt"] = WEIGHTS
    cache = tmp_path / "cache"
    entry = _remote_entry(tmp_path, http_server.base_url + "/m/heart.pt")
    entry.weights_path(cache_dir=cache, timeout_s=5)
    (cache / "heart-remote" / "0.9.0").mkdir()  # empty leftovers are not listed
    (cache / "heart-remote" / "0.9.0" / ".heart.pt.tmp.partial.pt").write_bytes(b"x")

    cached = list_cached(cache)
    assert [(c.model_id, c.version, c.size_bytes) for c in cached] == [("heart-remote", "2.1.0", len(WEIGHTS))]

    assert remove_cached("heart-remote", "2.1.0", cache_dir=cache) == [cache / "heart-remote" / "2.1.0"]
    assert list_cached(cache) == [] and not entry.is_available(cache)
    assert remove_cached("heart-remote", cache_dir=cache) == [cache / "heart-remote"]
    assert not (cache / "heart-remote").exists()
    assert remove_cached("heart-remote", cache_dir=cache) == []
    with pytest.raises(InputError):
        remove_cached("../etc", cache_dir=cache)
