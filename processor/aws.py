"""boto3 clients built one way, and the one place that decides the region and the profile.

Endpoint and credentials come only from boto3's standard settings (``AWS_ENDPOINT_URL_DYNAMODB``,
``AWS_ENDPOINT_URL_KINESIS``, the credential chain...), so an emulator needs no code path of its own.

The region follows the AWS CLI's order, then the workers' properties file (``region_from``):
``--region``, ``AWS_REGION``, ``AWS_DEFAULT_REGION``, the profile's ``region``, then ``regionName`` of the
properties file. botocore alone reads only ``AWS_DEFAULT_REGION`` and the profile, so it would ignore a user's
``AWS_REGION``. ``configure`` (called once by the CLI shell before a command runs) resolves the region and the
profile and exports them as ``AWS_REGION`` / ``AWS_DEFAULT_REGION`` / ``AWS_PROFILE``: every session of this
process and every process it starts (the KCL daemon, the processors) then agrees on them. A profile that does not
exist is a ``ConfigError`` here, not a botocore traceback later.

One rule for the tables' region (``region_conflict``): the tables live where the workers write, ``regionName`` of
their properties file. So when a command is given a properties file (``--properties`` or ``ECS_STATE_PROPERTIES``)
whose ``regionName`` differs from the region found before it (``--region``, the environment, the profile), the
command is refused in one line naming both (exit 2), as ``ecs-state run`` refuses it; with no other region,
``regionName`` is the region. Every command (read, operator, setup, run) follows it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

from processor.errors import ConfigError

REGION_ENV = ("AWS_REGION", "AWS_DEFAULT_REGION")


@dataclass(frozen=True)
class Target:
    """What ``configure`` decided: the region (None: none found anywhere) and where it came from, and the profile
    given with ``--profile`` (None: botocore's own choice, ``AWS_PROFILE`` or the default chain)."""

    region: str | None
    source: str
    profile: str | None


_target = Target(region=None, source="botocore", profile=None)


def region_from(
    flag: str | None,
    env: Mapping[str, str],
    profile_region: str | None,
    properties: Mapping[str, str],
    properties_path: str | None = None,
) -> tuple[str | None, str]:
    """The region and where it came from, first found wins (pure): ``--region``, ``AWS_REGION``,
    ``AWS_DEFAULT_REGION``, the profile's region, ``regionName`` of the properties file."""
    if flag:
        return flag, "--region"
    for name in REGION_ENV:
        if env.get(name):
            return env[name], name
    if profile_region:
        return profile_region, "the profile's region"
    if properties.get("regionName"):
        return properties["regionName"], f"regionName in {properties_path or 'the properties file'}"
    return None, "nowhere"


def region_conflict(found: str | None, source: str, properties: Mapping[str, str], path: str | None) -> str | None:
    """The one-line refusal when the properties file's ``regionName`` is not the region found (pure); None when
    they agree, or the file names no region, or the region came from the file itself."""
    wanted = properties.get("regionName")
    if not wanted or not found or found == wanted:
        return None
    return (
        f"regionName = {wanted} in {path or 'the properties file'}, but the region of this command is {found} "
        f"(from {source}): the tables are where the workers write, in {wanted}; pass --region {wanted} (or fix "
        f"regionName), so that this command and the workers use the same region"
    )


def _profile_region(profile: str | None) -> str | None:
    """The ``region`` of the profile (named, or ``AWS_PROFILE`` / default); ConfigError when a named profile does
    not exist."""
    import botocore.session
    from botocore.exceptions import ProfileNotFound

    session = botocore.session.Session(profile=profile)
    try:
        return session.get_scoped_config().get("region")
    except ProfileNotFound:
        raise ConfigError(
            f"AWS profile {session.profile!r} is not in ~/.aws/config or ~/.aws/credentials; "
            f"pass an existing --profile (aws configure list-profiles) or unset AWS_PROFILE"
        ) from None


def configure(
    region: str | None = None,
    profile: str | None = None,
    properties_path: str | None = None,
    env: MutableMapping[str, str] | None = None,
) -> Target:
    """Resolve the region and profile once for this process and export them (see the module docstring)."""
    from processor.config import PROPERTIES_ENV, read_properties

    global _target
    env = os.environ if env is None else env
    explicit = profile or None
    if explicit:
        env["AWS_PROFILE"] = explicit
    profile = explicit or env.get("AWS_PROFILE") or None
    path = str(properties_path) if properties_path else env.get(PROPERTIES_ENV) or None
    try:
        props = read_properties(path) if path else {}
    except ConfigError:
        props = {}  # the command itself reports a file it cannot read, in its own words
    env_region = next((env[name] for name in REGION_ENV if env.get(name)), None)
    # the profile is read when it is named (a missing one is an error) or when it is the region's last source
    profile_region = _profile_region(profile) if profile or not (region or env_region) else None
    found, source = region_from(region, env, profile_region, props, path)
    conflict = region_conflict(found, source, props, path)
    if conflict:
        raise ConfigError(conflict)
    if found:
        for name in REGION_ENV:
            env[name] = found
    _target = Target(region=found, source=source, profile=explicit)
    return _target


def target() -> Target:
    return _target


def session() -> boto3.session.Session:
    """A boto3 session: the region from the environment ``configure`` exported, and the ``--profile`` given as the
    session's own profile, so that, as with the AWS CLI's ``--profile``, its keys win over the environment's
    (``AWS_PROFILE`` alone keeps botocore's order, environment keys first: docs/field-notes.md)."""
    return boto3.session.Session(profile_name=_target.profile)


def client(
    service: str, *, pool: int = 10, timeout: float = 10.0, botocore_retries: int = 3, validate: bool = True
) -> Any:
    """A low-level client with a connection pool of ``pool`` and the given botocore retry attempts
    (``botocore_retries=1`` turns botocore's own retries off for callers that retry themselves;
    ``validate=False`` skips client-side parameter validation on hot paths whose requests we build)."""
    config = Config(
        max_pool_connections=pool,
        connect_timeout=timeout,
        read_timeout=timeout,
        retries={"mode": "standard", "total_max_attempts": botocore_retries},
        tcp_keepalive=True,
        parameter_validation=validate,
    )
    return session().client(service, config=config)
