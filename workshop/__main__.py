"""``python -m workshop COMMAND ...``: the development and testing commands (the local stack, the demo, the fault
proxy and scenarios, the benchmark)."""

import sys

from workshop.cli import main

sys.exit(main())
