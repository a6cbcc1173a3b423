"""``python -m tinygan ...`` runs the ``tinygan`` command (see :mod:`tinygan.cli`)."""

import sys

from tinygan.cli import main

sys.exit(main())
