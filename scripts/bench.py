#!/usr/bin/env python3
"""``python scripts/bench.py [options]``: ecs-state's processor vs the per-event Lambda on one stream and one moto
DynamoDB (see processor/bench.py; ``--help`` lists the options). Prints a markdown table and writes
bench/results.json and bench/results.png."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from processor.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
