"""`python -m sentinel.chaos`: the fault-injection suite, as `scripts/chaos` runs it."""

import argparse
import logging
import sys

from sentinel.chaos import harness

parser = argparse.ArgumentParser(
    prog="scripts/chaos",
    description=harness.DESCRIPTION,
    formatter_class=argparse.RawDescriptionHelpFormatter,
)
harness.add_arguments(parser)
arguments = parser.parse_args()
logging.basicConfig(level=logging.INFO, format="chaos: %(message)s", stream=sys.stderr)
logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise
sys.exit(harness.run(arguments))
