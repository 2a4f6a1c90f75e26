"""The per-event Lambda contender's child process: ``python -m workshop.bench.lambda_child SPEC`` (started by the
benchmark, one per run, so its CPU is measured by rusage apart from the benchmark's own)."""

from __future__ import annotations

import sys

from workshop.bench.lambda_way import lambda_child

sys.exit(lambda_child(sys.argv[1]))
