"""`python -m staff.console`: the same as clinic-console."""

import sys

from staff.console.server import main

sys.exit(main())
