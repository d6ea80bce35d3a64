"""`python -m threadline ...`: the `threadline` command (threadline.cli), for environments without the script."""

import sys

from .cli import main

# Guarded: `serve --workers N` spawns processes that import this module again as `__mp_main__`.
if __name__ == "__main__":
    sys.exit(main())
