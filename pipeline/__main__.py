"""``python -m pipeline`` runs the ``petbp`` command line."""

import sys

from pipeline.cli import main

if __name__ == "__main__":  # (not when a doctest collector imports the module)
    sys.exit(main())
