"""``python -m rock_vec.cli``: the ``rock-vec`` command."""

import sys

from .main import main

sys.exit(main())
