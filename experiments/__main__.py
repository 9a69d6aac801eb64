"""``python -m experiments`` is the ``emvi`` command."""

import sys

from .cli import main

sys.exit(main())
