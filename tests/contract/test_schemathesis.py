"""Property-based tests of the whole HTTP API from its OpenAPI document (Schemathesis).

Every operation gets generated requests — valid and edge-case path ids, bodies and query
strings — sent with a real API token to an app that holds one experiment with a session.
Whatever is sent, the app never answers 5xx, and every documented response body matches the
schema the OpenAPI document promises.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from tests.conftest import FAKE_MP4, backend_env


@pytest.fixture
def api(make_app: Any, tmp_path: Path) -> Any:
    client = make_app(backend_env(tmp_path))
    eid = client.post("/api/experiments", json={"name": "Open field"}).json()["id"]
    client.post(
        f"/api/experiments/{eid}/sessions",
        files={"file": ("m1.mp4", FAKE_MP4 + b"\0" * 64)},
        data={"subject": "m1", "cohort": "saline"},
    )
    token = client.post("/api/tokens", json={"name": "schemathesis"}).json()["token"]
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    schema.token = token  # type: ignore[attr-defined]  # carried to the test
    return schema


def test_no_server_errors_and_responses_match_the_schema(api: Any) -> None:
    headers = {"Authorization": f"Bearer {api.token}"}
    checks = [not_a_server_error, response_schema_conformance, content_type_conformance]
    failures: list[str] = []
    operations = 0
    for result in api.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None)
        def run(case: Any) -> None:
            case.call_and_validate(headers=headers, checks=checks)

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # collect all, then fail once
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert operations > 20
    assert not failures, "\n\n".join(failures)
