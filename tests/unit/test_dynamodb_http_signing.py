"""The pure parts of the thin DynamoDB client (processor/shard/dynamodb_http.py and its signer,
processor/shard/sigv4.py): the SigV4 signature is botocore's for the same request and time, the signer's day key
is derived again for a new day or secret, refreshed credentials are picked up by the next request, and the
endpoint, region and CA bundle resolve from the environment as documented. No socket is opened (building the
client only sets up a connection pool)."""

from __future__ import annotations

import datetime
from typing import Any

import botocore.session
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, RefreshableCredentials

from processor.errors import ConfigError
from processor.shard import dynamodb_http as ddb
from processor.shard.http_connection import redact_url
from processor.shard.sigv4 import SigV4Signer

TARGET = "DynamoDB_20120810.PutItem"


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_DYNAMODB",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_CA_BUNDLE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def put_body(arn: str = "arn:task/sig") -> bytes:
    return ddb.serialise(
        {
            "TableName": "tasks",
            "Item": {"taskArn": {"S": arn}, "version": {"N": "3"}, "blob": {"B": b"\x00\x01"}},
            "ConditionExpression": "attribute_not_exists(#k) OR #v < :v",
        }
    )


def botocore_headers(credentials: Any, endpoint: str, body: bytes, region: str) -> dict[str, str]:
    request = AWSRequest(
        "POST",
        endpoint.rstrip("/") + "/",
        data=body,
        headers={"Content-Type": ddb.CONTENT_TYPE, "X-Amz-Target": TARGET},
    )
    SigV4Auth(credentials.get_frozen_credentials(), "dynamodb", region).add_auth(request)
    return dict(request.headers.items())


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://127.0.0.1:8000",
        "https://dynamodb.eu-west-1.amazonaws.com",
        "https://DynamoDB.eu-west-1.amazonaws.com:443/",
    ],
)
@pytest.mark.parametrize("token", [None, "FwoGZXIvYXdzEJr//////////wEaDH+token/with=chars"])
def test_the_signature_is_the_one_botocore_computes_for_the_same_request_and_time(
    endpoint: str, token: str | None
) -> None:
    session = botocore.session.get_session()
    session._credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    client = ddb.DynamoDBHttp("eu-west-1", endpoint, session=session)
    body = put_body()
    expected = botocore_headers(session.get_credentials(), endpoint, body, "eu-west-1")
    ours = client.sign(TARGET, body, amz_date=expected["X-Amz-Date"])
    assert ours["Authorization"] == expected["Authorization"]
    assert ours.get("X-Amz-Security-Token") == expected.get("X-Amz-Security-Token")
    # the next day's signature uses a new signing key, still botocore's
    later = client.sign(TARGET, body, amz_date="20991231T235959Z")
    assert "/20991231/eu-west-1/dynamodb/aws4_request" in later["Authorization"]
    assert later["Authorization"] != ours["Authorization"]


def test_the_signer_alone_signs_as_botocore_and_derives_its_day_key_once_per_secret_and_day() -> None:
    """The pure signer, given credentials and a date: no session, no client, no socket."""
    signer = SigV4Signer("eu-west-1", "dynamodb.eu-west-1.amazonaws.com", "/")
    body = put_body()
    for secret in ("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "another/secret"):
        credentials = Credentials("AKIDEXAMPLE", secret, "token")
        expected = botocore_headers(credentials, "https://dynamodb.eu-west-1.amazonaws.com", body, "eu-west-1")
        ours = signer.sign(TARGET, body, credentials.get_frozen_credentials(), amz_date=expected["X-Amz-Date"])
        assert ours == {k: v.decode() if isinstance(v, bytes) else v for k, v in expected.items()} | {
            "Host": "dynamodb.eu-west-1.amazonaws.com"
        }
    today = signer.day_key("s", "20270101")
    assert signer.day_key("s", "20270101") is today  # cached
    assert signer.day_key("s", "20270102") != today and signer.day_key("t", "20270102") != today


@pytest.mark.parametrize("region", ["cn-north-1", "us-gov-west-1", "eu-west-1"])
def test_non_ascii_bodies_and_the_key_rotating_at_utc_midnight_sign_as_botocore_signs(
    monkeypatch: pytest.MonkeyPatch, region: str
) -> None:
    """botocore's clock frozen one second before and at UTC midnight: the signing key of each day is botocore's."""
    session = botocore.session.get_session()
    session._credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "token")
    client = ddb.DynamoDBHttp(region, "https://dynamodb.example", session=session)
    body = ddb.serialise({"TableName": "tâches", "Item": {"taskArn": {"S": "arn:é/日本/\U0001f600"}}})
    assert "é".encode() in body  # raw UTF-8 on the wire, not \u escapes
    for moment in (datetime.datetime(2026, 12, 31, 23, 59, 59), datetime.datetime(2027, 1, 1, 0, 0, 0)):
        monkeypatch.setattr("botocore.auth.get_current_datetime", lambda moment=moment: moment)
        expected = botocore_headers(session.get_credentials(), "https://dynamodb.example", body, region)
        ours = client.sign(TARGET, body, amz_date=moment.strftime("%Y%m%dT%H%M%SZ"))
        assert ours["Authorization"] == expected["Authorization"]
        assert f"/{moment:%Y%m%d}/{region}/dynamodb/" in ours["Authorization"]


def test_refreshed_credentials_sign_the_next_request() -> None:
    issued: list[str] = []

    def refresh() -> dict[str, str]:
        n = len(issued)
        issued.append(f"ASIA{n}")
        expiry = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
        return {
            "access_key": f"ASIA{n}",
            "secret_key": f"secret{n}",
            "token": f"token{n}",
            "expiry_time": expiry.isoformat(),
        }

    creds = RefreshableCredentials.create_from_metadata(refresh(), refresh, "test-provider")
    session = botocore.session.get_session()
    session._credentials = creds
    client = ddb.DynamoDBHttp("us-east-1", "http://127.0.0.1:8000", session=session)
    first = client.sign(TARGET, b"{}")
    assert "Credential=ASIA0/" in first["Authorization"] and first["X-Amz-Security-Token"] == "token0"
    creds._expiry_time = datetime.datetime.now(datetime.timezone.utc)  # the temporary credentials run out
    expected = botocore_headers(creds, "http://127.0.0.1:8000", b"{}", "us-east-1")  # refreshes: ASIA1
    second = client.sign(TARGET, b"{}", amz_date=expected["X-Amz-Date"])
    # botocore's signature with the new secret: the cached signing key was derived again
    assert second["Authorization"] == expected["Authorization"] and second["X-Amz-Security-Token"] == "token1"
    assert issued == ["ASIA0", "ASIA1"]


def test_endpoint_comes_from_the_dynamodb_variable_then_the_global_one_then_the_region(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = ddb.DynamoDBHttp.from_environment()
    assert (client.region, client.endpoint_url) == ("us-east-1", "https://dynamodb.us-east-1.amazonaws.com/")
    assert client.ca_bundle  # certifi's bundle: TLS is verified
    monkeypatch.setenv("AWS_REGION", "eu-west-1")  # wins over AWS_DEFAULT_REGION (boto3 itself ignores it)
    assert ddb.DynamoDBHttp.from_environment().endpoint_url == "https://dynamodb.eu-west-1.amazonaws.com/"
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    assert ddb.DynamoDBHttp.from_environment().endpoint_url == "http://127.0.0.1:4566/"
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:8000/")
    client = ddb.DynamoDBHttp.from_environment()
    assert (client.region, client.endpoint_url) == ("eu-west-1", "http://127.0.0.1:8000/")
    assert client.sign(TARGET, b"{}")["Host"] == "127.0.0.1:8000"
    assert ddb.DynamoDBHttp.from_environment(region="ap-south-1", endpoint_url="https://x.test").region == "ap-south-1"


def test_the_ca_bundle_variable_is_the_trust_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    assert ddb.DynamoDBHttp.from_environment().ca_bundle == "/etc/ssl/certs/ca-certificates.crt"


def test_a_ca_bundle_that_is_missing_unreadable_or_not_pem_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """(before: a missing AWS_CA_BUNDLE raised FileNotFoundError at the first request: exit 4 as a bug)"""
    https = "https://dynamodb.us-east-1.amazonaws.com"
    monkeypatch.setenv("AWS_CA_BUNDLE", str(tmp_path / "missing.pem"))
    with pytest.raises(ConfigError, match="AWS_CA_BUNDLE"):
        ddb.DynamoDBHttp.from_environment(endpoint_url=https)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    monkeypatch.setenv("AWS_CA_BUNDLE", str(garbage))
    with pytest.raises(ConfigError, match="cannot be loaded"):
        ddb.DynamoDBHttp.from_environment(endpoint_url=https)
    monkeypatch.setenv("AWS_CA_BUNDLE", str(tmp_path))  # a directory
    with pytest.raises(ConfigError, match="missing or unreadable"):
        ddb.DynamoDBHttp.from_environment(endpoint_url=https)


def test_fips_pseudo_regions_sign_with_the_region_botocore_normalises_to(monkeypatch: pytest.MonkeyPatch) -> None:
    """(before: ``us-east-1-fips`` went into the credential scope as it was written)"""
    for pseudo, region, host in [
        ("us-east-1-fips", "us-east-1", "dynamodb-fips.us-east-1.amazonaws.com"),
        ("fips-us-gov-west-1", "us-gov-west-1", "dynamodb.us-gov-west-1.amazonaws.com"),
    ]:
        client = ddb.DynamoDBHttp.from_environment(region=pseudo)
        assert (client.region, client.sign(TARGET, b"{}")["Host"]) == (region, host)
        assert f"/{region}/dynamodb/aws4_request" in client.sign(TARGET, b"{}")["Authorization"]


def test_no_region_no_credentials_or_a_bad_endpoint_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="not an http"):
        ddb.DynamoDBHttp.from_environment(endpoint_url="ftp://127.0.0.1:1")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    with pytest.raises(ConfigError, match="no region"):
        ddb.DynamoDBHttp.from_environment()
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(ConfigError, match="no AWS credentials"):
        ddb.DynamoDBHttp.from_environment(endpoint_url="http://127.0.0.1:8000")


def test_bytes_go_as_base64_and_anything_else_that_is_not_dynamodb_json_is_refused() -> None:
    assert b'"blob":{"B":"AAE="}' in put_body()
    with pytest.raises(TypeError, match="not DynamoDB JSON"):
        ddb.serialise({"Item": {"n": {"N": 1.5j}}})


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://ecs:s3cret@proxy:3128", "http://***@proxy:3128"),
        ("http://ecs@proxy:3128/", "http://***@proxy:3128/"),
        ("http://e%40cs:s3@cr/et@proxy:3128", "http://***@proxy:3128"),  # '@' and '/' in the password
        ("http://socks5://ecs:s3cret@proxy:1080", "http://***@proxy:1080"),
        ("'http://ecs:s3cret@[::1' (HTTPS_PROXY)", "'http://***@[::1' (HTTPS_PROXY)"),
        ("https://dynamodb.us-east-1.amazonaws.com/", "https://dynamodb.us-east-1.amazonaws.com/"),
    ],
)
def test_user_info_is_redacted_from_any_url_even_one_that_does_not_parse(url: str, shown: str) -> None:
    assert redact_url(url) == shown
