"""``python -m cirlib``: the ``cirlib`` command, for an environment whose scripts folder is not on PATH."""

import sys

from cirlib.cli import main

if __name__ == "__main__":
    sys.exit(main())
