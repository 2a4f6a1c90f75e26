"""The CLI's shared conventions, pure: the region order, every command taking --region / --profile, the daemon and
the processors in the same region, and the one-line messages of botocore's errors."""

from __future__ import annotations

from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, NoRegionError

from processor.aws import region_from
from processor.errors import EXIT_CONFIG, describe, exit_code_for
from processor.ops.cli import _leaf_parsers, build_parser
from processor.worker.preflight import check_region


def test_the_region_comes_from_the_flag_then_aws_region_then_aws_default_region_then_profile_then_properties() -> None:
    env = {"AWS_REGION": "a", "AWS_DEFAULT_REGION": "b"}
    props = {"regionName": "d"}
    assert region_from("f", env, "c", props) == ("f", "--region")
    assert region_from(None, env, "c", props) == ("a", "AWS_REGION")
    assert region_from(None, {"AWS_DEFAULT_REGION": "b"}, "c", props) == ("b", "AWS_DEFAULT_REGION")
    assert region_from(None, {}, "c", props)[0] == "c"
    assert region_from(None, {}, None, props, "my.properties") == ("d", "regionName in my.properties")
    assert region_from(None, {}, None, {}) == (None, "nowhere")


def test_every_command_takes_region_and_profile() -> None:
    leaves = _leaf_parsers(build_parser())
    assert len(leaves) >= 12
    for parser in leaves:
        options = {option for action in parser._actions for option in action.option_strings}
        assert {"--region", "--profile"} <= options, parser.prog


def test_run_refuses_a_region_other_than_the_properties_regionname() -> None:
    assert check_region({"regionName": "eu-west-1"}, "p", {"AWS_REGION": "eu-west-1"}) == []
    assert check_region({}, "p", {"AWS_REGION": "eu-west-1"}) == []
    [problem] = check_region({"regionName": "eu-west-1"}, "p", {"AWS_REGION": "us-east-1"})
    assert "regionName = eu-west-1" in problem and "us-east-1" in problem


def test_botocore_errors_a_user_can_fix_are_one_line_and_exit_2() -> None:
    denied = ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "Scan")
    expired = ClientError({"Error": {"Code": "ExpiredTokenException", "Message": "old"}}, "PutItem")
    errors = [NoRegionError(), NoCredentialsError(), EndpointConnectionError(endpoint_url="https://x"), denied, expired]
    for exc in errors:
        assert exit_code_for(exc) == EXIT_CONFIG
        assert "\n" not in describe(exc)
    assert "--region" in describe(NoRegionError())
    assert "OperatorPolicy" in describe(denied) and "Scan" in describe(denied)
    assert "refresh" in describe(expired)


def test_a_properties_region_that_is_not_the_commands_is_refused_naming_both() -> None:
    from processor.aws import region_conflict

    props = {"regionName": "eu-west-1"}
    assert region_conflict("eu-west-1", "AWS_REGION", props, "w.properties") is None
    assert region_conflict(None, "nowhere", props, "w.properties") is None
    assert region_conflict("us-east-1", "AWS_REGION", {}, None) is None
    problem = region_conflict("us-east-1", "AWS_REGION", props, "w.properties")
    assert problem is not None and "\n" not in problem
    assert "regionName = eu-west-1 in w.properties" in problem and "us-east-1 (from AWS_REGION)" in problem
    assert "--region eu-west-1" in problem
