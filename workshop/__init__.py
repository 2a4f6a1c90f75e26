"""The workshop: what builds, measures and proves ecs-state, beside the product and never inside it.

- ``workshop.local``: the local stack (moto server, kinesis-mock) and the demo.
- ``workshop.testing``: the MultiLang protocol driver, the DynamoDB fault proxy and the fault scenarios.
- ``workshop.bench``: the benchmark against the per-event Lambda, and the volume/soak runs.

Rules: the workshop may import the product (``processor``); the product never imports the workshop (the layering
test, tests/unit/test_layering.py, holds it). The built wheel and the worker image hold no workshop module;
``scripts/bootstrap`` puts this folder on the development venv's path. Its commands run as
``python -m workshop COMMAND`` (``./scripts/demo``, ``./scripts/bench`` and ``./scripts/faults`` do that).
"""
