"""Shared fixtures, and the test layers: each folder under tests/ is a layer and gives its tests a marker of the
same name (``.venv/bin/python -m pytest -m unit -x`` runs the pure layer in about a minute):
- unit: the pure core and the pure parts of every other layer; no emulator, no process, no socket;
- integration: one real part at a time (moto over HTTP, kinesis-mock, the fault proxy, the launcher);
- protocol: the processor process driven through the MultiLang protocol, against moto;
- e2e: the real KCL MultiLangDaemon against the local stack (slow);
- image: the worker container image built and a worker run from it (slow; needs root, podman, buildah).
"""

from __future__ import annotations

import os
from typing import Iterator

import pytest

from workshop.local.env import LOCAL_ENV
from workshop.local.stack import Server, start_moto

LAYERS = ("unit", "integration", "protocol", "e2e", "image")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        layer = item.path.parent.name
        if layer in LAYERS:
            item.add_marker(getattr(pytest.mark, layer))


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One moto server for the session on 127.0.0.1; boto3 in this process and in children is pointed at it
    through the standard environment variables only."""
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    saved = {k: os.environ.get(k) for k in [*LOCAL_ENV, "AWS_ENDPOINT_URL"]}
    os.environ.update(LOCAL_ENV)
    server = start_moto(log_path=log)
    os.environ["AWS_ENDPOINT_URL"] = server.endpoint
    try:
        yield server
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
