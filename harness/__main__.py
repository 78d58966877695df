"""`python -m memcycle`: the same as the `memcycle` command."""

import sys

from .cli import main

sys.exit(main())
