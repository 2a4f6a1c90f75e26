"""``python -m workshop stack``: the local stack (``workshop/local/stack.py``) in the foreground for the demo and
manual runs, until SIGTERM or Ctrl-C; it writes ``DIR/stack.env`` last, so its presence means the stack is ready."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Mapping

from processor.logs import log
from workshop.errors import StackError
from workshop.local.stack import LOCAL_PROPERTIES, LocalStack


def env_file_text(env: Mapping[str, str]) -> str:
    return "".join(f"export {key}={value}\n" for key, value in env.items())


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "stack",
        help="run the embedded local stack (moto + kinesis-mock on 127.0.0.1) until stopped",
        description="Start moto (DynamoDB) and kinesis-mock (Kinesis) on 127.0.0.1, create the stream, write "
        "DIR/stack.env (export lines for boto3 / the Java SDK) and DIR/properties/<template> with "
        "the ports filled in, then wait for SIGTERM or Ctrl-C. stack.env appears last: once it "
        "exists, the stack is ready.",
    )
    parser.add_argument("--dir", required=True, type=Path, help="folder for stack.env, properties and logs")
    parser.add_argument(
        "--properties", type=Path, default=LOCAL_PROPERTIES, help="properties template to render (default: %(default)s)"
    )
    parser.add_argument("--stream", help="stream name (default: streamName of the template)")
    parser.add_argument("--shards", type=int, default=2, help="shard count of the stream (default: 2)")
    parser.add_argument("--moto-port", type=int, help="fixed moto port (default: a free one)")
    parser.add_argument("--kinesis-port", type=int, help="fixed kinesis-mock plain-HTTP port (default: a free one)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from processor.config import read_properties

    directory: Path = args.dir.resolve()
    stream = args.stream or read_properties(args.properties).get("streamName")
    if not stream:
        print(f"workshop stack: {args.properties} has no streamName; pass --stream NAME", file=sys.stderr)
        return 2
    env_file = directory / "stack.env"
    env_file.unlink(missing_ok=True)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        with LocalStack(directory, moto_port=args.moto_port, kinesis_port=args.kinesis_port) as stack:
            stack.create_stream(stream, args.shards)
            props = stack.render_properties(args.properties, streamName=stream)
            env = {**stack.env, "ECS_STATE_PROPERTIES": str(props)}
            tmp = env_file.with_suffix(".tmp")
            tmp.write_text(env_file_text(env), encoding="utf-8")
            tmp.replace(env_file)
            log(
                "stack.ready",
                dynamodb=stack.dynamodb_endpoint,
                kinesis=stack.kinesis_endpoint,
                stream=stream,
                shards=args.shards,
                properties=str(props),
                env_file=str(env_file),
            )
            while not stop.wait(0.5):
                for server in (stack.moto, stack.kinesis):
                    if server is not None and server.proc.poll() is not None:
                        log(
                            "stack.server_died",
                            level="ERROR",
                            server=server.name,
                            code=server.proc.returncode,
                            log=str(server.log_path),
                        )
                        return 1
            log("stack.stopping")
    except (StackError, TimeoutError, RuntimeError) as exc:
        print(f"workshop stack: {exc}", file=sys.stderr)
        return 1
    finally:
        env_file.unlink(missing_ok=True)
    return 0
