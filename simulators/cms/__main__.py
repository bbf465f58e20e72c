"""`python -m cardstation.simulators.cms ...`: the same as `cardstation sim cms ...`."""

import argparse
import sys

from cardstation.simulators.cms.server import add_arguments, run

parser = argparse.ArgumentParser(prog="cardstation sim cms", description=__doc__)
add_arguments(parser)
sys.exit(run(parser.parse_args()))
