"""``python -m CardiacAI.training [train] OPTIONS`` (the same as ``cardiacai train``)."""

import sys

from .cli import main

sys.exit(main())
