"""``python -m msa.report``: see :mod:`msa.report.build`."""

import sys

from msa.report.build import main

sys.exit(main())
