"""`python -m helpers.report [--quick] ...`: the same as `python -m helpers report ...`."""
import sys

from ..cli import main

sys.exit(main(["report", *sys.argv[1:]]))
