"""Run a long CardiacAI job (a segmentation, a model download) in the background with progress and cancel.

Why a Python thread and not a subprocess (as SlicerMONAIAuto3DSeg uses)
-----------------------------------------------------------------------
* :func:`CardiacAI.segmentation.segment` already reports progress through a callback and stops at
  the next sliding window when a :class:`threading.Event` is set, so a thread needs no protocol
  between processes.
* The heavy work (PyTorch convolutions, SimpleITK resampling, numpy/scipy post-processing)
  runs in C/C++ code that releases the GIL, so Slicer's Qt event loop keeps running; the short
  pure-Python parts between those calls hold the GIL only for milliseconds.
* A subprocess would need the CT written to a temporary file (hundreds of MB, and a copy of
  patient data outside the scene) and a second Python with CardiacAI and PyTorch loaded
  (seconds to start, GPU memory held twice while Slicer also uses the GPU for rendering).

What a thread cannot give is isolation from a crash in native code, and cancellation that
interrupts a single running window (cancel takes effect between windows, well under a second on
a GPU, a few seconds on a CPU).

Thread-safety rule: the job function must not touch the MRML scene or any Qt object. The caller
gives it plain data (a :class:`CardiacAI.image.Image` copy of the volume) and applies the result
to the scene on the main thread when :meth:`BackgroundJob.state` says it succeeded — the widget
polls it with a ``QTimer`` every 100-200 ms.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from CardiacAI.errors import CardiacAIError, OperationCancelled

#: progress(fraction in [0, 1], message)
ProgressCallback = Callable[[float, str], None]

IDLE, RUNNING, SUCCEEDED, FAILED, CANCELLED = "idle", "running", "succeeded", "failed", "cancelled"


@dataclasses.dataclass(frozen=True)
class JobState:
    """A consistent snapshot of a :class:`BackgroundJob` (safe to read from any thread).

    Attributes
    ----------
    status: "idle", "running", "succeeded", "failed" or "cancelled".
    fraction: progress in [0, 1], never decreasing while the job runs.
    message: the last progress message, or the error message when the job failed.
    result: what the job function returned (only when ``status`` is "succeeded").
    error: the exception that ended the job ("failed" or "cancelled"), else None.
    details: the traceback of an unexpected (non-CardiacAI) error, for the log; else "".
    elapsed_s: seconds since :meth:`BackgroundJob.start` (frozen when the job ended).
    """

    status: str
    fraction: float
    message: str
    result: Any = None
    error: BaseException | None = None
    details: str = ""
    elapsed_s: float = 0.0

    @property
    def finished(self) -> bool:
        """True once the job succeeded, failed or was cancelled."""
        return self.status in (SUCCEEDED, FAILED, CANCELLED)


class BackgroundJob:
    """Runs ``work(progress, cancel)`` once in a daemon thread.

    Parameters
    ----------
    work: the job; it receives a progress callback ``(fraction, message)`` and a
        :class:`threading.Event` that is set when the user cancels, and must raise
        :class:`CardiacAI.errors.OperationCancelled` when it stops because of it.
    name: thread name (shown in debuggers and logs).
    listener: optional callback, called in the worker thread after every progress report with
        (fraction, message) — for logging; it must not touch the scene or Qt.

    Use :meth:`start`, poll :meth:`state` from the GUI thread, :meth:`cancel` to stop,
    :meth:`wait` in scripts and tests.
    """

    def __init__(self, work: Callable[[ProgressCallback, threading.Event], Any], *, name: str = "CardiacAI job",
                 listener: ProgressCallback | None = None) -> None:
        self._work = work
        self._listener = listener
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._state = JobState(IDLE, 0.0, "")
        self._started_at: float | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    # -- control --------------------------------------------------------------------------------
    def start(self) -> BackgroundJob:
        """Start the thread (once); returns self. Raises RuntimeError when started twice."""
        with self._lock:
            if self._state.status != IDLE:
                raise RuntimeError("a BackgroundJob runs only once; create a new one")
            self._started_at = time.perf_counter()
            self._state = dataclasses.replace(self._state, status=RUNNING, message="starting")
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Ask the job to stop; it ends as "cancelled" (its result, if it still finishes, is dropped)."""
        self._cancel.set()

    @property
    def cancel_requested(self) -> bool:
        """True once :meth:`cancel` was called."""
        return self._cancel.is_set()

    def state(self) -> JobState:
        """The current state (a snapshot, with ``elapsed_s`` up to now while running)."""
        with self._lock:
            state = self._state
            started = self._started_at
        if state.status == RUNNING and started is not None:
            state = dataclasses.replace(state, elapsed_s=time.perf_counter() - started)
        return state

    def wait(self, timeout: float | None = None) -> JobState:
        """Block until the job ends (or ``timeout`` seconds pass); returns the state."""
        if self._thread.is_alive() or self._thread.ident is not None:
            self._thread.join(timeout)
        return self.state()

    # -- worker thread ----------------------------------------------------------------------------
    def _progress(self, fraction: float, message: str) -> None:
        fraction = min(max(float(fraction), 0.0), 1.0)
        with self._lock:
            self._state = dataclasses.replace(self._state, fraction=max(fraction, self._state.fraction),
                                              message=str(message))
        if self._listener is not None:
            self._listener(fraction, message)

    def _run(self) -> None:
        result, error, details = None, None, ""
        try:
            result = self._work(self._progress, self._cancel)
            # A cancel that arrives after the last check still wins: the user asked for no result.
            status = CANCELLED if self._cancel.is_set() else SUCCEEDED
        except OperationCancelled as exc:
            status, error = CANCELLED, exc
        except CardiacAIError as exc:
            status, error = FAILED, exc
        except Exception as exc:  # an unexpected bug must still end the job and reach the GUI
            status, error, details = FAILED, exc, traceback.format_exc()
        elapsed = time.perf_counter() - (self._started_at or time.perf_counter())
        with self._lock:
            if status == SUCCEEDED:
                message = "done"
            elif status == CANCELLED:
                message = "cancelled"
            elif isinstance(error, CardiacAIError):
                message = str(error)
            else:
                message = f"unexpected error: {type(error).__name__}: {error}"
            fraction = 1.0 if status == SUCCEEDED else self._state.fraction
            self._state = JobState(status, fraction, message, result if status == SUCCEEDED else None,
                                   error, details, elapsed)
