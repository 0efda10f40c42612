"""`python -m gamesync` runs the command line."""

import sys

from gamesync.cli import main

sys.exit(main())
