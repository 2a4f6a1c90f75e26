"""``python -m workshop faults``: the DynamoDB fault-injection proxy (``workshop/testing/fault_proxy.py``) as a
command, for tests and demos: rules given as JSON with ``--rule``, the proxy's URL printed, running until stopped."""

from __future__ import annotations

import argparse
import json
import signal
import threading
from typing import Any

from workshop.testing.fault_proxy import CONTROL_PATH, FaultProxy, Rule


def _rule_arg(text: str) -> Rule:
    try:
        return Rule.from_dict(json.loads(text))
    except (ValueError, TypeError) as exc:
        raise argparse.ArgumentTypeError(f"--rule {text!r}: {exc}") from exc


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--upstream", required=True, help="the emulator's URL, e.g. http://127.0.0.1:5000")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free port)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault RNG")
    parser.add_argument(
        "--rule",
        type=_rule_arg,
        action="append",
        default=[],
        help='a rule as JSON, e.g. \'{"kind":"throttle","probability":0.3,"operations":["PutItem"]}\''
        " (repeatable; change them later with PUT /__faults__/rules)",
    )


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("faults", help="run the DynamoDB fault-injection proxy (for tests and demos)")
    add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    proxy = FaultProxy(args.upstream, args.rule, seed=args.seed, port=args.port).start()
    print(
        json.dumps(
            {
                "event": "fault_proxy",
                "endpoint": proxy.endpoint,
                "upstream": args.upstream,
                "control": proxy.endpoint + CONTROL_PATH,
                "rules": [r.to_dict() for r in proxy.rules],
            }
        ),
        flush=True,
    )
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    proxy.stop()
    print(json.dumps({"event": "fault_proxy_stopped", **proxy.snapshot()}), flush=True)
    return 0
