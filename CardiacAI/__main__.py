"""``python -m CardiacAI`` runs the ``cardiacai`` command line."""

import sys

from .cli import console_main

sys.exit(console_main())
