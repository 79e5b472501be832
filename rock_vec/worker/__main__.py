"""``python -m rock_vec.worker``: the worker program (``rock_vec.worker.program``)."""

import sys

from .program import main

sys.exit(main())
