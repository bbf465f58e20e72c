"""`python -m cardstation.simulators.idreader`: same as `cardstation sim idreader`."""

import sys

from cardstation.simulators.idreader.server import main

sys.exit(main())
