#!/usr/bin/env python3
"""Thin wrapper: ``python scripts/produce.py [options]`` is ``ecs-state produce [options]`` without installing."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from processor.producer import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
