"""The ECS client for a cluster of any account and region: what ``reconcile`` (and ``--repair``) read ECS with.

Rules:
- A cluster in the caller's own account (STS GetCallerIdentity, which needs no permission) is read with the
  caller's credentials, in the cluster's region.
- A cluster of another account is read through that account's read-only role, ``ecsState.memberReadRole``
  (default ``ecs-state-member-read``, made by the member template): STS AssumeRole of
  ``arn:PARTITION:iam::ACCOUNT:role/NAME`` by the caller, then an ECS client in the cluster's region with the
  temporary credentials. A refusal (the role missing, or not trusting the caller) is one line naming the role and
  the fix (``ConfigError``: exit 2).
- Only ECS is read through the member role; the tables (``--repair`` included) are always written with the
  caller's own credentials, in the central tables.
"""

from __future__ import annotations

from typing import Any

from processor.core.catalog import parse_cluster_arn
from processor.errors import ConfigError, ReadError

SESSION_NAME = "ecs-state-reconcile"


def member_role_arn(partition: str, account: str, role: str) -> str:
    """The read-only role of a member account (pure); ``role`` is the role's name (with its path, if any)."""
    return f"arn:{partition}:iam::{account}:role/{role.lstrip('/')}"


def ecs_for_cluster(cluster_arn: str, role: str) -> tuple[Any, str | None]:
    """An ECS client that can read ``cluster_arn``, and the role assumed for it (None: the caller's own)."""
    from botocore.exceptions import ClientError

    from processor import aws

    ref = parse_cluster_arn(cluster_arn)
    if ref is None:
        raise ReadError(f"{cluster_arn!r} is not a cluster ARN (arn:PARTITION:ecs:REGION:ACCOUNT:cluster/NAME)")
    own = aws.client("sts").get_caller_identity()["Account"]
    if ref.account == own:
        return aws.session().client("ecs", region_name=ref.region), None
    role_arn = member_role_arn(ref.partition, ref.account, role)
    try:
        credentials = aws.client("sts").assume_role(RoleArn=role_arn, RoleSessionName=SESSION_NAME)["Credentials"]
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise ConfigError(
            f"cannot assume {role_arn} to read cluster {ref.path} ({error.get('Code')}: {error.get('Message')}); "
            f"deploy the member template with its read role in account {ref.account}, let the caller assume it, "
            f"or set ecsState.memberReadRole to the role's name"
        ) from None
    ecs = aws.session().client(
        "ecs",
        region_name=ref.region,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )
    return ecs, role_arn
