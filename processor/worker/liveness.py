"""The container health check: ``python -m processor.worker.liveness`` (the image's HEALTHCHECK and the template's
task health check) or ``ecs-state status --liveness``: exit 0 when this container's worker is processing or idle
with nothing to do, 1 when it is not, 2 when ``ECS_STATE_HEARTBEAT_DIR`` is unset.

Cheap by design: one ``stat`` per liveness file (``shard/heartbeat.py`` writes them and holds the rule), no AWS
call, no boto3 import (the module form starts in ~50 ms; ``ecs-state status`` imports the whole CLI). The fleet-wide
question (does every shard have a live owner?) is ``ecs-state status --check``, which reads KCL's lease table.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Mapping, TextIO

from processor.shard.heartbeat import DEFAULT_STALE_S, HEARTBEAT_ENV, heartbeat_dir, judge, read_ages


def probe(stale_s: float = DEFAULT_STALE_S, env: Mapping[str, str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    folder = heartbeat_dir(env)
    if folder is None:
        print(
            f"liveness: {HEARTBEAT_ENV} is not set, so no worker writes heartbeats here; set it (the image sets "
            f"/tmp/ecs-state/heartbeat) for ecs-state run and for this probe",
            file=out,
        )
        return 2
    verdict = judge(read_ages(folder), stale_s)
    print(f"liveness: {'healthy' if verdict.healthy else 'UNHEALTHY'}: {verdict.reason}", file=out)
    return 0 if verdict.healthy else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m processor.worker.liveness",
        description="container health check of an ecs-state worker (no AWS call)",
    )
    parser.add_argument(
        "--stale-seconds",
        type=float,
        default=DEFAULT_STALE_S,
        help=f"a heartbeat older than this is a stuck worker (default {DEFAULT_STALE_S:.0f})",
    )
    args = parser.parse_args(argv)
    return probe(args.stale_seconds, os.environ)


if __name__ == "__main__":
    sys.exit(main())
