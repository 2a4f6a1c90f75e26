"""One error base for everything ecs-state raises on purpose, and the one mapping from errors to exit codes.

Every failure is one of three classes, each with one behaviour (docs/design.md, "Failure classes"):
- record-level: anything about one record or its item -> a dead letter, never an exception that leaves the core;
- transient: throttling, 5xx, timeouts, connection errors -> retried while the shard's lease is held;
- configuration: tables, key schemas, settings, permissions -> found at start, one line naming the fix, exit 2.

Commands raise a subclass of ``EcsStateError`` whose message is one line: what is wrong, where, and the fix. The
CLI shell (``ops/cli.py``) and the shard entry point (``shard/main.py``) turn it into ``exit_code_for(exc)``;
nothing else picks exit codes.

An AWS error that escapes a command (botocore's ``NoRegionError``, ``NoCredentialsError``,
``EndpointConnectionError``, a ``ClientError`` such as ``AccessDenied``) is something the user can fix: exit 2, and
``describe(exc)`` is its one line naming the fix. Outside the shard nothing retries it further (the shard has its
own classifier, ``shard/failures.py``, for which most of these are transient). Anything else that escapes is a bug:
exit 4, with its traceback.
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


#: the one line that says how to get the worker's daemon (amazon-kclpy and its KCL jars are the ``worker`` extra:
#: ``pip install .`` alone gives the operator and read commands, without Java or the jars)
WORKER_EXTRA_FIX = (
    "the worker's KCL daemon is not installed here (amazon-kclpy and its jars come with the worker extra); "
    "install it: pip install 'ecs-state[worker]' (from a checkout: pip install '.[worker]')"
)


def worker_extra_missing() -> str | None:
    """``WORKER_EXTRA_FIX`` when amazon-kclpy cannot be imported, else None (nothing is imported)."""
    from importlib.util import find_spec

    try:
        found = find_spec("amazon_kclpy") is not None
    except ImportError:
        found = False
    return None if found else WORKER_EXTRA_FIX


class WriteFailed(EcsStateError):
    """A DynamoDB request that stayed failed through a finite retry budget (the message says which and why)."""

    exit_code = EXIT_WRITE_FAILED


class ReadError(EcsStateError):
    """A read-side command cannot answer (bad ARN, unknown cluster, missing table)."""

    exit_code = EXIT_CONFIG


class ProduceError(EcsStateError):
    """The producer could not put its records into the stream."""


#: ClientError codes that mean "these credentials are not accepted" rather than "not allowed"
_BAD_CREDENTIALS = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "InvalidAccessKeyId",
        "AuthFailure",
    }
)
_DENIED = frozenset(
    {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedException", "AuthorizationError"}
)


def describe(exc: BaseException) -> str:
    """One line for an error a user can fix: what went wrong and what to do."""
    from botocore import exceptions as b

    if isinstance(exc, EcsStateError):
        return str(exc)
    if isinstance(exc, b.NoRegionError):
        return (
            "no AWS region: pass --region, set AWS_REGION (or AWS_DEFAULT_REGION, or the profile's region), "
            "or put regionName in the --properties file"
        )
    if isinstance(exc, b.ProfileNotFound):
        return f"{exc}; pass an existing --profile (aws configure list-profiles) or unset AWS_PROFILE"
    if isinstance(exc, (b.NoCredentialsError, b.PartialCredentialsError, b.CredentialRetrievalError)):
        return (
            f"no usable AWS credentials ({exc}); configure them (aws configure, --profile / AWS_PROFILE, "
            f"AWS_ACCESS_KEY_ID, an instance or task role)"
        )
    if isinstance(exc, (b.EndpointConnectionError, b.ConnectTimeoutError, b.ConnectionClosedError, b.ReadTimeoutError)):
        return (
            f"cannot reach AWS: {exc}; check the network and the region (--region / AWS_REGION), and unset "
            f"AWS_ENDPOINT_URL* unless you mean an emulator"
        )
    if isinstance(exc, b.ClientError):
        error = exc.response.get("Error", {})
        code, message = error.get("Code", "?"), error.get("Message", "")
        operation = getattr(exc, "operation_name", "the call")
        if code in _DENIED:
            return (
                f"{operation} was denied ({code}: {message}); give the caller the permission: the stack's "
                f"OperatorPolicy for the operator commands, WorkerPolicy for workers (docs/deploy.md)"
            )
        if code in _BAD_CREDENTIALS:
            return (
                f"{operation}: the AWS credentials were refused ({code}: {message}); refresh them or pick "
                f"another --profile"
            )
        if code == "ResourceNotFoundException":
            import os

            region = os.environ.get("AWS_REGION") or "the configured region"
            return (
                f"{operation}: {message or code} in {region}; check the table and stream names of the "
                f"--properties file and the region (--region / AWS_REGION)"
            )
        return f"{operation} failed: {code}: {message}"
    if isinstance(exc, b.BotoCoreError):
        return f"AWS: {exc}"
    return f"{type(exc).__name__}: {exc}"


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
