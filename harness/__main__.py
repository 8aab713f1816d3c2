"""``python -m harness`` is the ``conform`` command."""

import sys

from harness.cli import main

sys.exit(main())
