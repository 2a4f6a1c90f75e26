"""Where the development tooling finds the project's files: one rule, not paths relative to a module's file.

``$ECS_STATE_HOME`` wins; otherwise the source checkout this package was installed from in editable mode (the
folder holding ``setup.cfg`` two levels above this package); otherwise the current folder. Under it live
``.local/node`` (kinesis-mock, installed by scripts/bootstrap), ``properties/`` and ``bench/``. Production code
never needs any of these.
"""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "ECS_STATE_HOME"


def project_dir() -> Path:
    configured = os.environ.get(HOME_ENV)
    if configured:
        return Path(configured)
    source = Path(__file__).resolve().parents[2]
    if (source / "setup.cfg").is_file() and (source / "processor").is_dir():
        return source
    return Path.cwd()
