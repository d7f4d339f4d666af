"""Errors raised by CardiacAI.

Every error a user can trigger with bad input derives from :class:`CardiacAIError` and carries a
message in two parts: what is wrong, and what to do about it. Callers (the CLI, the Slicer modules)
show ``str(error)`` as it is; they never need a traceback to understand the problem.
"""

from __future__ import annotations


class CardiacAIError(Exception):
    """Base class of every error CardiacAI raises on purpose.

    Parameters
    ----------
    problem:
        What is wrong, naming the file, series or value concerned.
    remedy:
        What the user can do about it. Optional, but given wherever there is something to do.
    """

    def __init__(self, problem: str, remedy: str | None = None) -> None:
        self.problem = problem.rstrip(". ")
        self.remedy = _sentence(remedy.rstrip(". ")) if remedy else None
        message = self.problem + "."
        if self.remedy:
            message += " " + self.remedy + "."
        super().__init__(message)


def _sentence(text: str) -> str:
    """Capitalise the first letter without touching the rest (file names, UIDs, units)."""
    return text[:1].upper() + text[1:]


class InputError(CardiacAIError, ValueError):
    """The input image, file or folder cannot be used (wrong kind, damaged, implausible)."""


class DicomError(InputError):
    """A DICOM folder or file cannot be turned into one consistent CT volume."""


class UnsupportedFormatError(InputError):
    """A file format CardiacAI does not read or write."""


class ModelError(CardiacAIError):
    """A model, its weights or its catalog entry is missing, corrupt or inconsistent."""


class OperationCancelled(CardiacAIError):
    """The user cancelled a long-running operation; nothing was written."""
