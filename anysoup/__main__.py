"""``python -m anysoup URL``."""

import sys

from ._cli.main import main

sys.exit(main())
