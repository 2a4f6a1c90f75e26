"""One error base for everything ecs-state raises on purpose, and the one mapping from errors to exit codes.

Every failure is one of three classes, each with one behaviour (README, "Failures"):
- record-level: anything about one record or its item -> a dead letter, never an exception that leaves the core;
- transient: throttling, 5xx, timeouts, connection errors -> retried while the shard's lease is held;
- configuration: tables, key schemas, settings, permissions -> found at start, one line naming the fix, exit 2.

Commands raise a subclass of ``EcsStateError`` whose message is one line: what is wrong, where, and the fix. The
CLI shell (``ops/cli.py``) and the shard entry point (``shard/main.py``) turn it into ``exit_code_for(exc)``;
nothing else picks exit codes.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1  # the command ran and found a problem (a verify mismatch, a drift, a failed scenario)
EXIT_CONFIG = 2  # configuration: fix the named setting, table or permission and start again
EXIT_WRITE_FAILED = 3  # the shard's writes failed past a finite retry budget; nothing was checkpointed past them
EXIT_BUG = 4  # an unexpected exception in the processor; nothing was checkpointed past it
EXIT_INTERRUPTED = 130


class EcsStateError(Exception):
    """Base of every deliberate error; ``exit_code`` is what a command ends with when it escapes."""

    exit_code = EXIT_FAILED


class ConfigError(EcsStateError, ValueError):
    """A setting, file, table or permission is missing or wrong; the message names it and the fix."""

    exit_code = EXIT_CONFIG


class LaunchError(ConfigError):
    """The KCL daemon cannot be started (Java, jars, properties, endpoints); one line per problem."""


class WriteFailed(EcsStateError):
    """A DynamoDB request that stayed failed through a finite retry budget (the message says which and why)."""

    exit_code = EXIT_WRITE_FAILED


class ReadError(EcsStateError):
    """A read-side command cannot answer (bad ARN, unknown cluster, missing table)."""

    exit_code = EXIT_CONFIG


class ProduceError(EcsStateError):
    """The producer could not put its records into the stream."""




def exit_code_for(exc: BaseException) -> int:
    """The exit code of a command that ended with ``exc``."""
    if isinstance(exc, EcsStateError):
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    try:
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:  # pragma: no cover - botocore is a dependency
        return EXIT_BUG
    if isinstance(exc, (ClientError, BotoCoreError)):
        return EXIT_CONFIG  # outside the shard, an AWS error that escapes is credentials, endpoint, table or IAM
    return EXIT_BUG
