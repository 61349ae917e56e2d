"""``python -m pyrovae``: the same as the ``pyrovae`` console script."""

import sys

from .cli import main

sys.exit(main())
