"""Training data: synthetic cases from a case source, put on the model grid, cached in memory and on disk.

A *case source* is anything callable as ``source(seed) -> case`` where ``case.image`` is a CT
:class:`CardiacAI.image.Image` (HU) and ``case.task_labels(task)`` the label map of a task on the
same grid (the contract of ``CardiacAI.synthetic.generate_case``). The real source is
:class:`GeneratorCaseSource`; tests may pass any object following :class:`CaseSource`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import InputError, ModelError
from ..image import Image
from ..io.atomic import atomic_output
from .config import GeneratorSettings
from .preprocessing import to_model_grid


class SyntheticCaseLike(Protocol):
    """What a case source returns (``CardiacAI.synthetic.SyntheticCase`` follows it)."""

    image: Image
    present: dict
    parameters: dict

    def task_labels(self, task: str) -> Image: ...


class CaseSource(Protocol):
    """Makes the case of a seed; the same seed must always give the same case.

    ``cache_key`` (str) names the source's settings for the disk cache; ``settings_for(seed)``
    returns the JSON-serialisable settings the case of ``seed`` was generated with.
    """

    cache_key: str

    def __call__(self, seed: int) -> SyntheticCaseLike: ...

    def settings_for(self, seed: int) -> dict[str, Any]: ...


#: Coarsest voxel size the synthetic generator renders (mm).
MAX_GENERATOR_SPACING_MM = 3.0


class GeneratorCaseSource:
    """The synthetic CT generator (``CardiacAI.synthetic``) as a case source.

    Each seed draws its protocol from ``settings.protocols`` (weights) and SynthSeg mode with
    probability ``settings.synthseg_fraction``, using ``numpy.random.default_rng(seed)``, so the
    case of a seed is reproducible. Cases are generated at ``spacing_mm`` (i, j, k), each value
    capped at the generator's coarsest spacing (:data:`MAX_GENERATOR_SPACING_MM`); coarser model
    grids (a localiser's) are reached by resampling in :func:`prepare_case`, as real scans are.

    Raises
    ------
    ModelError: when ``CardiacAI.synthetic`` is not installed.
    """

    def __init__(self, settings: GeneratorSettings, spacing_mm) -> None:
        try:
            from .. import synthetic
        except ImportError as exc:
            raise ModelError(
                f"the synthetic CT generator (CardiacAI.synthetic) cannot be imported: {exc}",
                "install the complete CardiacAI package; training needs the generator",
            ) from exc
        self._synthetic = synthetic
        self.settings = settings
        self.spacing_mm = tuple(min(float(s), MAX_GENERATOR_SPACING_MM) for s in spacing_mm)
        names = sorted(settings.protocols)
        weights = np.array([settings.protocols[n] for n in names], float)
        self._protocols, self._weights = names, weights / weights.sum()
        version = getattr(synthetic, "__version__", "")
        key = json.dumps([dataclasses.asdict(settings), self.spacing_mm, version], sort_keys=True)
        self.cache_key = "gen-" + hashlib.sha256(key.encode()).hexdigest()[:16]

    def settings_for(self, seed: int) -> dict[str, Any]:
        """Generator keyword arguments used for ``seed`` (protocol, synthseg, fov, spacing, extras)."""
        rng = np.random.default_rng([int(seed), 7919])
        protocol = str(rng.choice(self._protocols, p=self._weights))
        synthseg = bool(rng.random() < self.settings.synthseg_fraction)
        out = dict(self.settings.extra)
        out.update(protocol=protocol, spacing_mm=self.spacing_mm, fov=self.settings.fov, synthseg=synthseg)
        return out

    def __call__(self, seed: int):
        cfg = self._synthetic.GeneratorConfig(**self.settings_for(seed))
        return self._synthetic.generate_case(int(seed), cfg)


@dataclasses.dataclass
class PreparedCase:
    """One case on the model grid.

    Attributes
    ----------
    seed: the generator seed.
    image_hu: int16/float32 array (K, J, I), HU, on the model grid (LPS-aligned, ``spacing_mm``).
    label: uint8 array (K, J, I), task label values (0 = background).
    spacing_mm: (i, j, k) mm.
    present: structure key -> present in this case (from the generator).
    settings: the generator settings of the case.
    fractions: partial-volume (soft) labels where the source gives them: task label value -> uint8
        array (K, J, I), the fraction of each voxel the structure covers in 1/255ths
        (``SyntheticCase.task_fractions``, the IMAs); empty when the source gives none.
    """

    seed: int
    image_hu: np.ndarray
    label: np.ndarray
    spacing_mm: tuple[float, float, float]
    present: dict[str, bool]
    settings: dict[str, Any]
    fractions: dict[int, np.ndarray] = dataclasses.field(default_factory=dict)


def prepare_case(case: SyntheticCaseLike, task: str, spacing_mm, seed: int,
                 settings: dict[str, Any] | None = None) -> PreparedCase:
    """Put a generated case on the model grid (see :func:`to_model_grid`).

    Raises InputError when the label map does not share the image grid.
    """
    labels = case.task_labels(task)
    if not labels.same_geometry(case.image, atol=1e-4):
        raise InputError(f"the {task} label map of case {seed} is not on the image grid")
    image = to_model_grid(case.image, spacing_mm)
    label = to_model_grid(labels, spacing_mm, is_label=True)
    # Derived structures (perivascular regions) are computed from the predicted vessels after
    # inference, so the network is not asked to predict them: they count as background here.
    from ..labels import get_label_set

    derived = [s.value for s in get_label_set(task).structures if s.derived_from]
    if derived:
        label = label.with_array(np.where(np.isin(label.array, derived), 0, label.array))
    present = dict((case.present or {}).get(task, {})) if isinstance(case.present, dict) else {}
    fractions = {}
    for value, fraction in (case.task_fractions(task) if hasattr(case, "task_fractions") else {}).items():
        on_grid = to_model_grid(fraction.with_array(fraction.array.astype(np.float32)), spacing_mm).array
        fractions[int(value)] = np.rint(np.clip(on_grid, 0.0, 1.0) * 255.0).astype(np.uint8)
    return PreparedCase(seed=int(seed), image_hu=image.array, label=label.array.astype(np.uint8),
                        spacing_mm=tuple(float(s) for s in image.spacing), present=present,
                        settings=dict(settings or {}), fractions=fractions)


def case_fractions(case: PreparedCase, values, names: dict[int, str] | None = None) -> np.ndarray:
    """The partial-volume fractions of ``values`` (label values) as one uint8 array (S, K, J, I), 1/255ths.

    A structure with no voxel in the case's label map and no fractions (outside its field of view)
    gets zeros. Raises InputError when the label map has the structure but the case no fractions for
    it: its source does not make partial-volume labels (soft targets need ``CardiacAI.synthetic``).
    """
    out = np.zeros((len(values), *case.label.shape), np.uint8)
    for n, value in enumerate(values):
        if int(value) in case.fractions:
            out[n] = case.fractions[int(value)]
        elif np.any(case.label == value):
            name = (names or {}).get(int(value), f"label {int(value)}")
            raise InputError(f"case {case.seed} has no partial-volume fractions for {name}",
                             "train soft targets on cases of the synthetic generator, or drop --soft-targets")
    return out


class CaseStore:
    """Cases by seed: generated once, kept in memory, and cached to disk as compressed ``.npz``.

    The disk cache (``cache_dir``; None = memory only) lets repeated runs skip generation; a
    file name holds the task, spacing, the source's ``cache_key`` and the seed, so different
    generator settings never share files. Files are written atomically. With ``need_fractions`` a cached
    file written before cases kept their partial-volume fractions counts as missing (made again).
    """

    def __init__(self, source: CaseSource, task: str, spacing_mm, cache_dir: str | Path | None = None,
                 need_fractions: bool = False) -> None:
        self.source = source
        self.task = task
        self.need_fractions = bool(need_fractions)
        self.spacing_mm = tuple(float(s) for s in spacing_mm)
        self.cache_dir = Path(cache_dir) if cache_dir else None
        if self.cache_dir is not None:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
        self._memory: dict[int, PreparedCase] = {}

    def _path(self, seed: int) -> Path:
        spacing = "x".join(f"{s:g}" for s in self.spacing_mm)
        key = getattr(self.source, "cache_key", "custom")
        return self.cache_dir / f"{self.task}_{spacing}mm_{key}_seed{int(seed)}.npz"  # type: ignore[operator]

    def _settings(self, seed: int) -> dict[str, Any]:
        fn = getattr(self.source, "settings_for", None)
        return fn(seed) if fn else {}

    def get(self, seed: int) -> PreparedCase:
        """The prepared case of ``seed`` (from memory, the disk cache or the source, in that order)."""
        seed = int(seed)
        if seed in self._memory:
            return self._memory[seed]
        case = self._load(seed) if self.cache_dir is not None else None
        if case is None:
            case = prepare_case(self.source(seed), self.task, self.spacing_mm, seed, self._settings(seed))
            if self.cache_dir is not None:
                self._save(case)
        self._memory[seed] = case
        return case

    def prefetch(self, seeds, workers: int = 1) -> None:
        """Prepare the cases of ``seeds`` that are neither in memory nor in the disk cache, in ``workers``
        processes at once (the generator takes 4-9 s per IMA/aorta case on one core).

        Each case is the same as :meth:`get` makes it: a seed's case does not depend on which worker
        made it. With ``workers`` <= 1, or on a platform without ``fork``, cases are made one after
        the other. The source must be usable in a forked child (the generator is: numpy and scipy).
        """
        missing = [int(s) for s in dict.fromkeys(seeds) if int(s) not in self._memory]
        if self.cache_dir is not None:
            missing = [s for s in missing if not self._cached(s)]
        import multiprocessing

        if int(workers) <= 1 or len(missing) <= 1 or "fork" not in multiprocessing.get_all_start_methods():
            for seed in missing:
                self.get(seed)
            return
        global _FORKED_STORE
        _FORKED_STORE = self  # inherited by the forked workers; nothing of the store is pickled
        try:
            with multiprocessing.get_context("fork").Pool(min(int(workers), len(missing))) as pool:
                for case in pool.imap_unordered(_get_in_forked_worker, missing):
                    self._memory[case.seed] = case
        finally:
            _FORKED_STORE = None

    def _cached(self, seed: int) -> bool:
        """Whether the disk cache holds a usable file for ``seed`` (with fractions where needed)."""
        path = self._path(seed)
        if not path.is_file():
            return False
        if not self.need_fractions:
            return True
        try:
            with np.load(path, allow_pickle=False) as data:
                return self._usable(data.files)
        except (OSError, ValueError):
            return False

    def _usable(self, names) -> bool:
        """Whether a cache file holding the arrays ``names`` serves this store: one written before cases kept
        their partial-volume fractions does not when they are needed."""
        return not self.need_fractions or "fraction_values" in names

    def _load(self, seed: int) -> PreparedCase | None:
        path = self._path(seed)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                if not self._usable(data.files):
                    return None  # made again
                meta = json.loads(str(data["meta"]))
                fractions = {}
                if "fraction_values" in data.files:
                    fractions = {int(v): f for v, f in zip(data["fraction_values"], data["fractions"])}
                return PreparedCase(seed=seed, image_hu=data["image"], label=data["label"],
                                    spacing_mm=tuple(meta["spacing_mm"]), present=meta["present"],
                                    settings=meta["settings"], fractions=fractions)
        except (OSError, ValueError, KeyError):
            return None  # a damaged cache file is regenerated, not fatal

    def _save(self, case: PreparedCase) -> None:
        meta = json.dumps({"spacing_mm": case.spacing_mm, "present": case.present, "settings": case.settings})
        values = sorted(case.fractions)
        # always written (empty when the case has none), so a file without them is an older one
        fractions = (np.stack([case.fractions[v] for v in values]) if values
                     else np.zeros((0, *case.label.shape), np.uint8))
        with atomic_output(self._path(case.seed)) as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, image=case.image_hu, label=case.label, meta=np.array(meta),
                                    fraction_values=np.array(values, np.int32), fractions=fractions)


_FORKED_STORE: CaseStore | None = None


def _get_in_forked_worker(seed: int) -> PreparedCase:
    """:meth:`CaseStore.get` in a worker forked by :meth:`CaseStore.prefetch` (writes the disk cache too)."""
    assert _FORKED_STORE is not None, "only called in workers forked by CaseStore.prefetch"
    return _FORKED_STORE.get(seed)
