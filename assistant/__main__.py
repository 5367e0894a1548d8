"""``python -m assistant`` = the ``assistant`` command."""

import sys

from .cli import main

sys.exit(main())
