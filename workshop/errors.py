"""The workshop's own errors: subclasses of the product's one base (``processor.errors.EcsStateError``), so the one
mapping to exit codes (``processor.errors.exit_code_for``) serves them too."""

from __future__ import annotations

from processor.errors import ConfigError, EcsStateError


class FaultConfigError(ConfigError):
    """A fault-proxy rule is malformed."""


class StackError(EcsStateError):
    """The local stack (emulators) could not be started or used."""


class BenchError(EcsStateError):
    """The benchmark could not run (its stack, a contender, or a check failed)."""


class DriverProtocolError(EcsStateError):
    """A MultiLang protocol violation seen by the test driver (a message out of order, a non-protocol line)."""
