"""``python -m tools.nxcdr``, which the ``nxcdr`` script at the repository's top runs."""

import sys

from tools.nxcdr.cli import main

if __name__ == "__main__":
    sys.exit(main())
