"""``python -m bench``: every benchmark and one table of ratios (see ``bench.summary``)."""

import sys

from bench.summary import main

sys.exit(main())
