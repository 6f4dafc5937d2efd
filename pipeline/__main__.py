"""``python -m pipeline`` runs the ``petbp`` command line."""

import sys

from pipeline.cli import main

sys.exit(main())
