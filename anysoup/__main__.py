"""``python -m anysoup URL``."""

import sys

from ._cli import main

sys.exit(main())
