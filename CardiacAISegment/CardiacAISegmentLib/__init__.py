"""Testable logic of the CardiacAISegment Slicer module (no Qt, CTK, ``slicer.app`` or ``slicer.modules``).

* :mod:`.dependencies` — check the Python requirements and install them after a confirmation
  (standard library only, so it works before anything is installed).
* :mod:`.worker` — :class:`~.worker.BackgroundJob`: a segmentation in a background thread with
  progress and cancel, polled by the widget's QTimer.
* :mod:`.logic` — :class:`~.logic.SegmentationLogic`: volume node -> segmentation node
  (display, 3D surface, reference geometry) + measurements table node, never overwriting a
  segmentation without a way back.

Submodules are imported on demand: :mod:`.logic` needs CardiacAI's requirements (installed on
first use), the other two do not.
"""
