import sys

from cardstation.cli import main

sys.exit(main())
