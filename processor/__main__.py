"""``python -m processor COMMAND ...`` is ``ecs-state COMMAND ...``."""

import sys

from processor.ops.cli import main

sys.exit(main())
