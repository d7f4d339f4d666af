"""The model catalog: which segmentation models CardiacAI offers and where their weights are.

The catalog is a JSON file (``catalog.json`` beside this module by default) validated against
``catalog.schema.json``. Each entry gives a model id and MAJOR.MINOR.PATCH version, its task and
label set, its weights — a file shipped inside the package (at most
:data:`MAX_SHIPPED_WEIGHTS_BYTES`) or a URL downloaded on first use into the user cache (see
:mod:`CardiacAI.models.download`) — with their sha256 and size, and its model card
(``CardiacAI/training/model_card.schema.json``, embedded or as a file next to the catalog). The
card is the single source of the architecture and its parameters, the input spacing, the
intensity normalisation, the patch size, the training command and the validation metrics; the
catalog checks that card and entry agree (task, weights checksum and size, label values and keys
against ``CardiacAI.labels``).

Several models may serve one task (e.g. the Dense V-Net and U-Net whole-heart models, kept side by
side with their figures); ``"default": true`` marks the one used unless the user picks another.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import CardiacAIError, ModelError
from .download import (
    DEFAULT_TIMEOUT_S,
    ProgressCallback,
    download_file,
    file_matches_sha256,
    models_cache_dir,
    version_key,
)

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_CATALOG_PATH = PACKAGE_DIR / "catalog.json"
SCHEMA_PATH = PACKAGE_DIR / "catalog.schema.json"
#: Largest weights file shipped inside the package (25 MB); larger weights are downloaded.
MAX_SHIPPED_WEIGHTS_BYTES = 25_000_000


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """One model version of the catalog.

    Attributes
    ----------
    id, version: model identifier and MAJOR.MINOR.PATCH version.
    title, description: for display.
    task: segmentation task ("whole-heart", "ima-aorta").
    label_set: name of the CardiacAI label set whose values the model outputs.
    default: True for the task's default model.
    sha256, size_bytes: checksum (hex) and size of the weights file.
    weights_file: shipped weights path relative to ``catalog_dir``, or None.
    weights_url: download URL, or None (exactly one of weights_file / weights_url is set).
    weights_file_name: file name of downloaded weights in the cache.
    card: the model card (dict, validated against the model card schema).
    catalog_dir: folder of the catalog file, base of shipped paths.
    license: licence of the weights, "" when not stated.
    """

    id: str
    version: str
    title: str
    description: str
    task: str
    label_set: str
    default: bool
    sha256: str
    size_bytes: int
    weights_file: str | None
    weights_url: str | None
    weights_file_name: str
    card: dict[str, Any]
    catalog_dir: Path
    license: str = ""
    #: two-stage models: {"model": id, "version": optional, "margin_mm": float}; None for one stage.
    localizer: dict[str, Any] | None = None
    #: structure key -> smallest plausible volume (mL); below it a structure is reported absent.
    min_volume_ml: dict[str, float] = dataclasses.field(default_factory=dict)
    #: True for stage-only models (e.g. a localiser) that are not offered to the user.
    hidden: bool = False
    #: one-stage models: width (mm) of the left-right band around the body's midline that inference
    #: covers (None: the body's whole bounding box); see CardiacAI.segmentation.midline_band.
    midline_band_mm: float | None = None
    #: {"reference": key, "below_hu": HU, "weights": {key: factor}}: class weights before the argmax on an
    #: unenhanced scan (the reference structure's predicted voxels below ``below_hu`` on average); see
    #: CardiacAI.segmentation.unenhanced_class_weights. None: the plain argmax.
    unenhanced_weights: dict[str, Any] | None = None
    #: largest sliding window (k, j, i) in voxels of the model grid at inference; None: 96 on each axis
    #: (CardiacAI.segmentation.MAX_INFERENCE_WINDOW). A larger window lets the network see more around a structure.
    max_inference_window_kji: tuple[int, int, int] | None = None
    #: {"structures": [key, ...], "redraw": bool, "descending_aorta": key, "unenhanced_ascending_aorta": key},
    #: each part optional: thin enhanced arteries followed along their lumen after the network
    #: (CardiacAI.lumen_tracking.follow_thin_arteries), the descending aorta continued below the network's lower
    #: end, enhanced or not (follow_descending_aorta), and an unenhanced ascending aorta drawn at its width
    #: (follow_unenhanced_ascending_aorta), an enhanced aorta widened to its lumen (draw_enhanced_aorta_lumen,
    #: "enhanced_aorta_lumen": key; other large enhanced vessels drawn as a core the same way, "enhanced_lumen_widen":
    #: [key, ...]) and enhanced veins drawn too wide trimmed to their lumen (CardiacAI.lumen_trim.trim_to_enhanced_lumen,
    #: "enhanced_lumen_trim": [key, ...]); None: the network's labels as they are.
    lumen_tracking: dict[str, Any] | None = None

    # -- what the card says -----------------------------------------------------------------------
    @property
    def architecture(self) -> str:
        """Network name for :func:`CardiacAI.networks.build_network` (e.g. "densevnet")."""
        return self.card["network"]["name"]

    @property
    def architecture_params(self) -> dict[str, Any]:
        """Network parameters for :func:`CardiacAI.networks.build_network` (a copy)."""
        return copy.deepcopy(self.card["network"]["params"])

    @property
    def in_channels(self) -> int:
        return int(self.card["network"]["in_channels"])

    @property
    def out_channels(self) -> int:
        """Output classes including background."""
        return int(self.card["network"]["out_channels"])

    @property
    def input_spacing_mm(self) -> tuple[float, float, float]:
        """Voxel size (i, j, k) in mm the model expects its input resampled to."""
        return tuple(float(s) for s in self.card["input"]["spacing_mm"])  # type: ignore[return-value]

    @property
    def intensity(self) -> dict[str, Any]:
        """Intensity normalisation (card ``input.intensity``: HU window, output range, clip, method)."""
        return copy.deepcopy(self.card["input"]["intensity"])

    @property
    def patch_size_kji(self) -> tuple[int, int, int]:
        """Sliding-window patch size (k, j, i) in voxels."""
        return tuple(int(s) for s in self.card["input"]["patch_size"])  # type: ignore[return-value]

    @property
    def labels(self) -> dict[int, str]:
        """Output label value -> structure key (background 0 not listed)."""
        return {int(item["value"]): item["key"] for item in self.card["labels"]}

    @property
    def metrics(self) -> dict[str, Any]:
        """Validation metrics of the card (mean Dice, per-structure Dice, ...)."""
        return copy.deepcopy(self.card["metrics"])

    @property
    def training_command(self) -> str:
        """The command that produced the weights."""
        return self.card["training"]["command"]

    @property
    def is_shipped(self) -> bool:
        """True when the weights are inside the package (no download needed)."""
        return self.weights_file is not None

    # -- weights ----------------------------------------------------------------------------------
    def cache_path(self, cache_dir: str | os.PathLike | None = None) -> Path:
        """Where downloaded weights live: ``<models cache>/<id>/<version>/<file name>``.

        ``cache_dir`` is the models cache folder (default: ``$CARDIACAI_CACHE_DIR/models`` or the
        per-user cache, see :func:`CardiacAI.models.download.models_cache_dir`).
        """
        return models_cache_dir(cache_dir) / self.id / self.version / self.weights_file_name

    def is_available(self, cache_dir: str | os.PathLike | None = None) -> bool:
        """True when the weights are on this computer (shipped or cached); does not hash them."""
        path = self.catalog_dir / self.weights_file if self.weights_file else self.cache_path(cache_dir)
        return path.is_file()

    def weights_path(
        self,
        cache_dir: str | os.PathLike | None = None,
        download: bool = True,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        force_download: bool = False,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> Path:
        """The verified weights file, downloading it into the cache first when needed.

        Shipped weights are checked against the catalog's sha256 (a damaged installation is
        detected). Cached weights are checked too; a damaged cached copy is discarded and
        downloaded again (when ``download``). ``force_download`` re-downloads even a good copy.
        ``progress(bytes_done, bytes_total)`` returning False, or setting ``cancel``, stops a
        download (see :func:`CardiacAI.models.download.download_file`).

        Raises
        ------
        ModelError: shipped file missing or damaged (reinstall), weights not downloaded and
            ``download`` False, network failure (message with the manual download URL, sha256 and
            exact cache path), checksum mismatch of a download (file discarded).
        OperationCancelled: the download was cancelled; nothing was saved.
        """
        what = f"the weights of model '{self.id}' version {self.version}"
        if self.weights_file is not None:
            path = self.catalog_dir / self.weights_file
            if not path.is_file():
                raise ModelError(
                    f"{what} ({path}) are missing from the CardiacAI installation",
                    "reinstall CardiacAI (or the Slicer extension); the file is part of the package",
                )
            if not file_matches_sha256(path, self.sha256):
                raise ModelError(
                    f"{what} ({path}) are damaged: their sha256 differs from the catalog's {self.sha256}",
                    "reinstall CardiacAI (or the Slicer extension) to restore the file",
                )
            return path

        dest = self.cache_path(cache_dir)
        if dest.is_file() and not force_download:
            if file_matches_sha256(dest, self.sha256):
                return dest
            if not download:
                raise ModelError(
                    f"the cached copy of {what} ({dest}) is damaged (sha256 differs from the catalog's "
                    f"{self.sha256})",
                    "download it again (e.g. 'manage models' > re-download), or delete the file",
                )
        if not download:
            raise ModelError(
                f"{what} have not been downloaded yet (expected at {dest})",
                f"download them (allow downloads), or fetch {self.weights_url} by hand "
                f"(sha256 {self.sha256}) and put it at {dest}",
            )
        return download_file(
            self.weights_url,  # type: ignore[arg-type]
            dest,
            self.sha256,
            size_bytes=self.size_bytes,
            what=what,
            progress=progress,
            cancel=cancel,
            timeout_s=timeout_s,
        )


class ModelCatalog:
    """The validated list of :class:`ModelEntry`, in catalog order. Build with :meth:`load`."""

    def __init__(self, entries: Iterable[ModelEntry], source: str = "<memory>") -> None:
        self._entries = list(entries)
        self.source = source

    # -- loading ---------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> ModelCatalog:
        """Read and validate a catalog file (default: the packaged ``catalog.json``).

        Raises
        ------
        ModelError: missing or unreadable file, invalid JSON, schema violation, invalid model
            card, or inconsistent entries; the message names the file, the entry (id and index)
            and the field.
        """
        path = Path(path) if path is not None else DEFAULT_CATALOG_PATH
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelError(f"model catalog {path} not found",
                             "reinstall CardiacAI, or give the path of an existing catalog file") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelError(f"model catalog {path} cannot be read as JSON: {exc}",
                             "fix or replace the file") from None
        return cls.from_dict(data, catalog_dir=path.resolve().parent, source=str(path))

    @classmethod
    def from_dict(cls, data: Any, catalog_dir: str | os.PathLike, source: str = "<memory>") -> ModelCatalog:
        """Validate catalog data (as parsed from JSON); shipped paths are relative to ``catalog_dir``.

        Raises ModelError as :meth:`load` does.
        """
        import jsonschema

        catalog_dir = Path(catalog_dir)
        validator = jsonschema.Draft202012Validator(_schema())
        errors = sorted(validator.iter_errors(data), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
        if errors:
            raise ModelError(_describe_schema_error(errors[0], data, source),
                             "fix the entry (see CardiacAI/models/catalog.schema.json)")
        entries = []
        for index, item in enumerate(data["models"]):
            entries.append(_entry_from_json(item, index, catalog_dir, source))
        _check_consistency(entries, source)
        return cls(entries, source=source)

    # -- queries ----------------------------------------------------------------------------------
    def __iter__(self):
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def models(self, task: str | None = None) -> list[ModelEntry]:
        """All entries (every version), in catalog order; only those of ``task`` when given."""
        return [e for e in self._entries if task is None or e.task == task]

    def ids(self, task: str | None = None) -> list[str]:
        """Distinct model ids, in catalog order."""
        return list(dict.fromkeys(e.id for e in self.models(task)))

    def tasks(self) -> list[str]:
        """Tasks that have at least one model, in catalog order."""
        return list(dict.fromkeys(e.task for e in self._entries))

    def get(self, model_id: str, version: str | None = None) -> ModelEntry:
        """The entry ``model_id`` at ``version`` (default: its highest version).

        Raises ModelError for an unknown id (listing the available ones) or version (listing the
        id's versions).
        """
        candidates = [e for e in self._entries if e.id == model_id]
        if not candidates:
            available = ", ".join(self.ids()) or "none"
            raise ModelError(f"no model '{model_id}' in the catalog {self.source}",
                             f"available models: {available}")
        if version is None:
            return max(candidates, key=lambda e: version_key(e.version))
        for entry in candidates:
            if entry.version == version:
                return entry
        versions = ", ".join(sorted((e.version for e in candidates), key=version_key))
        raise ModelError(f"model '{model_id}' has no version {version} in the catalog {self.source}",
                         f"available versions: {versions}")

    def default_for(self, task: str) -> ModelEntry:
        """The model a task uses unless the user picks another.

        That is the entry marked ``"default": true`` for the task, else the highest version of
        the task's first-listed model id. Raises ModelError when the catalog has no model for
        the task (naming the tasks it does have).
        """
        entries = [e for e in self.models(task) if not e.hidden]
        if not entries:
            have = ", ".join(self.tasks()) or "none"
            raise ModelError(
                f"the model catalog {self.source} has no model for the task '{task}' (tasks with models: {have})",
                "install a CardiacAI version that ships one, or train a model and add it to the catalog",
            )
        for entry in entries:
            if entry.default:
                return entry
        return self.get(entries[0].id)


def catalog_entry_from_card(card_path: str | os.PathLike, model_id: str, version: str, title: str, *,
                            url: str | None = None, catalog_dir: str | os.PathLike | None = None,
                            default: bool = False, embed_card: bool = True) -> dict[str, Any]:
    """A catalog entry (JSON dict) for a model written by the training pipeline.

    ``card_path`` is a model card whose ``model_file`` lies next to it. With ``url`` the weights are
    to be downloaded from there; otherwise they are shipped and ``catalog_dir`` (the folder of the
    catalog that will list them) must contain the card's folder, so a relative path can be given.
    The card is embedded (``embed_card``) or referenced by its relative path.

    Raises ModelError for an invalid card, a model file not matching it, shipped weights larger than
    :data:`MAX_SHIPPED_WEIGHTS_BYTES`, or a card outside ``catalog_dir``.
    """
    from ..training.model_card import load_model_card

    card_path = Path(card_path).resolve()
    card = load_model_card(card_path, check_file=True)
    weights_file = card_path.parent / card["model_file"]["path"]
    weights: dict[str, Any] = {
        "sha256": card["model_file"]["sha256"],
        "size_bytes": card["model_file"]["size_bytes"],
        "format": card["model_file"]["format"],
    }
    base = Path(catalog_dir).resolve() if catalog_dir is not None else None
    if url is None or not embed_card:
        if base is None or not card_path.is_relative_to(base):
            raise ModelError(f"the card {card_path} is not inside the catalog folder {base}",
                             "copy the card and its model file into the catalog's folder first")
    if url is None:
        if weights["size_bytes"] > MAX_SHIPPED_WEIGHTS_BYTES:
            raise ModelError(
                f"{weights_file} has {weights['size_bytes']} bytes, more than the "
                f"{MAX_SHIPPED_WEIGHTS_BYTES} allowed inside the package",
                "publish it for download and give its URL",
            )
        weights["file"] = weights_file.relative_to(base).as_posix()  # type: ignore[arg-type]
    else:
        weights["url"] = url
    return {
        "id": model_id,
        "version": version,
        "title": title,
        "task": card["task"],
        "label_set": card["task"],
        "default": default,
        "weights": weights,
        "card": card if embed_card else card_path.relative_to(base).as_posix(),  # type: ignore[arg-type]
    }


# -- helpers ----------------------------------------------------------------------------------------


_schema_cache: dict[str, Any] = {}


def _schema() -> dict[str, Any]:
    if not _schema_cache:
        _schema_cache.update(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))
    return _schema_cache


def _entry_name(data: Any, index: int) -> str:
    try:
        model_id = data["models"][index].get("id")
    except (KeyError, IndexError, TypeError, AttributeError):
        model_id = None
    return f"entry '{model_id}' (models[{index}])" if isinstance(model_id, str) else f"entry models[{index}]"


def _describe_schema_error(error, data: Any, source: str) -> str:
    path = list(error.absolute_path)
    if len(path) >= 2 and path[0] == "models" and isinstance(path[1], int):
        where = _entry_name(data, path[1])
        field_path = path[2:]
    else:
        where = "top level"
        field_path = path
    message = error.message
    if error.validator == "required":
        # jsonschema says "'x' is a required property"; name the full field instead.
        missing = message.split("'")[1] if message.count("'") >= 2 else message
        field_path = field_path + [missing]
        message = "missing required field"
    elif error.validator == "oneOf" and field_path[-1:] == ["weights"]:
        message = "needs exactly one of 'file' (weights shipped in the package) or 'url' (downloaded)"
    elif error.validator == "oneOf" and field_path[-1:] == ["card"]:
        message = "must be the model card itself (an object) or the relative path of a card .json file"
    elif error.validator == "additionalProperties":
        message = f"unknown field(s): {message.split('(')[-1].rstrip(')')}" if "(" in message else message
    field = ".".join(str(p) for p in field_path) or "(whole entry)"
    return f"model catalog {source}, {where}, field {field}: {message}"


def _entry_from_json(item: dict[str, Any], index: int, catalog_dir: Path, source: str) -> ModelEntry:
    where = f"model catalog {source}, entry '{item['id']}' (models[{index}])"
    card = item["card"]
    if isinstance(card, str):
        card_path = catalog_dir / card
        try:
            card = json.loads(card_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelError(f"{where}, field card: the card file {card_path} is missing",
                             "reinstall CardiacAI, or fix the card path") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelError(f"{where}, field card: {card_path} cannot be read as JSON: {exc}") from None
    from ..training.model_card import validate_model_card

    try:
        validate_model_card(card, None)
    except CardiacAIError as exc:
        raise ModelError(f"{where}, field card: {exc.problem}", exc.remedy) from None

    weights = item["weights"]
    problems = []
    if card["task"] != item["task"]:
        problems.append(f"field task is '{item['task']}' but the card's task is '{card['task']}'")
    if card["model_file"]["sha256"] != weights["sha256"]:
        problems.append("field weights.sha256 differs from the card's model_file.sha256")
    if card["model_file"]["size_bytes"] != weights["size_bytes"]:
        problems.append("field weights.size_bytes differs from the card's model_file.size_bytes")
    if "file" in weights and weights["size_bytes"] > MAX_SHIPPED_WEIGHTS_BYTES:
        problems.append(f"field weights.size_bytes: shipped weights of {weights['size_bytes']} bytes exceed the "
                        f"{MAX_SHIPPED_WEIGHTS_BYTES}-byte package limit (give a url instead)")
    problems.extend(_label_problems(item["label_set"], card["labels"]))
    problems.extend(_unenhanced_weight_problems(item["label_set"], item.get("unenhanced_weights")))
    tracking = item.get("lumen_tracking", {})
    problems.extend(_structure_key_problems(item["label_set"], "lumen_tracking",
                                            [*tracking.get("structures", []), *tracking.get("enhanced_lumen_trim", []),
                                             *tracking.get("enhanced_lumen_widen", []),
                                             # the aorta followers' parts name a structure each
                                             *(value for value in tracking.values() if isinstance(value, str))]))
    if problems:
        raise ModelError(f"{where}: " + "; ".join(problems), "fix the entry or its card so they agree")

    url = weights.get("url")
    file_name = weights.get("file_name") or (url.rstrip("/").rsplit("/", 1)[-1] if url else Path(weights["file"]).name)
    if url and not _valid_file_name(file_name):
        raise ModelError(f"{where}, field weights.url: cannot take a cache file name from {url}",
                         "add weights.file_name")
    return ModelEntry(
        id=item["id"],
        version=item["version"],
        title=item["title"],
        description=item.get("description", ""),
        task=item["task"],
        label_set=item["label_set"],
        default=bool(item.get("default", False)),
        sha256=weights["sha256"],
        size_bytes=int(weights["size_bytes"]),
        weights_file=weights.get("file"),
        weights_url=url,
        weights_file_name=file_name,
        card=card,
        catalog_dir=catalog_dir,
        license=item.get("license", ""),
        localizer=item.get("localizer"),
        min_volume_ml={k: float(v) for k, v in item.get("min_volume_ml", {}).items()},
        hidden=bool(item.get("hidden", False)),
        midline_band_mm=float(item["midline_band_mm"]) if "midline_band_mm" in item else None,
        unenhanced_weights=copy.deepcopy(item.get("unenhanced_weights")),
        max_inference_window_kji=(tuple(int(n) for n in item["max_inference_window"])  # type: ignore[arg-type]
                                  if "max_inference_window" in item else None),
        lumen_tracking=copy.deepcopy(item.get("lumen_tracking")),
    )


def _valid_file_name(name: str) -> bool:
    import re

    return bool(re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*$", name))


def _unenhanced_weight_problems(label_set_name: str, rule: dict[str, Any] | None) -> list[str]:
    if rule is None:
        return []
    return _structure_key_problems(label_set_name, "unenhanced_weights", [rule["reference"], *rule["weights"]])


def _structure_key_problems(label_set_name: str, field: str, keys) -> list[str]:
    from ..labels import available_label_sets, get_label_set

    if label_set_name not in available_label_sets():
        return []
    known = {s.key for s in get_label_set(label_set_name).structures}
    return [f"field {field}: '{key}' is not a structure of label set '{label_set_name}'"
            for key in keys if key not in known]


def _label_problems(label_set_name: str, card_labels: list[dict[str, Any]]) -> list[str]:
    from ..labels import available_label_sets, get_label_set

    if label_set_name not in available_label_sets():
        return [f"field label_set: unknown label set '{label_set_name}' (known: {', '.join(available_label_sets())})"]
    label_set = get_label_set(label_set_name)
    known = {s.value: s.key for s in label_set.structures}
    problems = []
    for item in card_labels:
        if known.get(item["value"]) != item["key"]:
            problems.append(
                f"the card's label {item['value']} is '{item['key']}' but label set '{label_set_name}' "
                f"has {repr(known.get(item['value'])) if item['value'] in known else 'no such value'}"
            )
    return problems


def _check_consistency(entries: list[ModelEntry], source: str) -> None:
    seen: set[tuple[str, str]] = set()
    for entry in entries:
        if (entry.id, entry.version) in seen:
            raise ModelError(f"model catalog {source}: entry '{entry.id}' version {entry.version} is listed twice",
                             "give each version of a model once")
        seen.add((entry.id, entry.version))
    tasks: dict[str, list[str]] = {}
    for entry in entries:
        if entry.default:
            tasks.setdefault(entry.task, []).append(f"'{entry.id}' {entry.version}")
    for task, names in tasks.items():
        if len(names) > 1:
            raise ModelError(f"model catalog {source}: task '{task}' has {len(names)} default models ({', '.join(names)})",
                             "mark only one entry per task with \"default\": true")
    by_id = {(e.id, e.version): e for e in entries}
    for entry in entries:
        if entry.localizer is not None and entry.midline_band_mm is not None:
            raise ModelError(f"model catalog {source}: entry '{entry.id}' has both a localizer and a midline band",
                             "a two-stage model takes its region from the localizer: remove midline_band_mm")
        if entry.localizer is None:
            continue
        wanted = entry.localizer["model"]
        matches = [e for (i, _), e in by_id.items() if i == wanted
                   and entry.localizer.get("version") in (None, e.version)]
        if not matches:
            raise ModelError(f"model catalog {source}: entry '{entry.id}' names the localizer '{wanted}', "
                             "which the catalog does not list", "add the localizer model or remove the field")
        if any(m.task != entry.task for m in matches):
            raise ModelError(f"model catalog {source}: the localizer '{wanted}' of '{entry.id}' is for another task",
                             "a localizer must segment the same task at coarse resolution")
