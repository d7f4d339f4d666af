"""``python -m CardiacAI`` runs the ``cardiacai`` command line."""

import sys

from .cli import main

sys.exit(main())
