"""CardiacAI: cardiac CT segmentation and quantification logic shared by the Slicer modules.

Nothing in this package imports Qt, CTK or Slicer's application objects: it runs the same inside
3D Slicer and in a plain Python environment (``pip install .``; console script ``cardiacai``).
"""

__version__ = "0.1.0"

from .errors import CardiacAIError, DicomError, InputError, ModelError, OperationCancelled  # noqa: E402,F401
from .image import Image  # noqa: E402,F401
