"""Fuzzing the REST API from its own OpenAPI schema (schemathesis, in-process over ASGI) on both
engines: valid and invalid requests for every operation, signed in as an administrator with a
valid token; no request may get a 5xx (schemathesis' `not_a_server_error` check), and every
answer's status code and body are the ones the document gives for it (`status_code_conformance`,
`response_schema_conformance`).

Hypothesis drives each operation's schemathesis strategy directly (schemathesis' pytest loader
for fixture-built schemas does not run on this pytest), so a failure names the operation and
Hypothesis prints the smallest failing request.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.result import Ok
from schemathesis.generation.modes import GenerationMode

from recapd.api.app import create_app
from recapd.store.store import Store
from tests.test_api import Api, assert_error, make_api, recap_body, schedule_body

# Examples per operation and engine: enough to reach the validation branches, bounded so the
# whole file stays well under a minute on a small machine.
MAX_EXAMPLES = 30


@pytest.fixture
def fuzz_api(store: Store) -> Api:
    """The test workspace, alice an administrator with a recap, a schedule and jobs."""
    api = make_api(store)
    store.tokens.set_roles(api.ws.users["alice"].id, "system_admin")
    assert api.call("POST", "/recaps", json=recap_body(api)).is_success
    assert api.call("POST", "/scheduled_recaps", json=schedule_body(api)).is_success
    return api


def existing_ids(api: Api) -> dict[str, str]:
    """Path parameters naming objects that exist, so requests get past the 404s."""
    recap = api.call("GET", "/recaps").json()[0]
    schedule = api.call("GET", "/scheduled_recaps").json()[0]
    job = api.call("GET", "/jobs").json()[0]
    return {
        "recap_id": recap["id"],
        "scheduled_recap_id": schedule["id"],
        "job_id": job["id"],
        "job_type": job["type"],
    }


def _fuzz(operation: Any, headers: dict[str, str], known: dict[str, str]) -> None:
    """MAX_EXAMPLES requests to one operation, valid and invalid mixed; where the path names
    objects, half of them name ones that exist."""
    modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    strategies = [operation.as_strategy(generation_mode=mode) for mode in modes]
    names = re.findall(r"{(\w+)}", operation.path)
    if names and all(n in known for n in names):
        path = {n: known[n] for n in names}
        strategies += [
            operation.as_strategy(generation_mode=mode, path_parameters=path) for mode in modes
        ]
    cases = st.one_of(*strategies)

    @given(case=cases)
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def run(case: Any) -> None:
        # The document is true: every status code answered is documented for the operation,
        # and every documented body (AppError, Recap, ...) matches what came back.
        case.call_and_validate(
            headers=headers,
            checks=[not_a_server_error, status_code_conformance, response_schema_conformance],
        )

    run()


def test_no_request_gets_a_server_error(fuzz_api: Api) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(fuzz_api.rt))
    headers = {"Authorization": f"Bearer {fuzz_api.tokens['alice']}"}
    known = existing_ids(fuzz_api)
    labels = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # the app's schema is valid
        operation = result.ok()
        labels.append(operation.label)
        _fuzz(operation, headers, known)
    # The schema really covers the API: every router's operations were fuzzed.
    assert {"POST /api/v4/recaps", "POST /api/v4/posts", "GET /api/v4/jobs"} <= set(labels)
    assert "POST /api/v4/scheduled_recaps/{scheduled_recap_id}/run_now" in labels


def test_numbers_beyond_the_database_range_are_400(fuzz_api: Api) -> None:
    """Found while fuzzing: such numbers must never reach the SQL (the drivers overflow)."""
    api = fuzz_api
    sid = api.call("GET", "/scheduled_recaps").json()[0]["id"]
    for update_at in (2**63, 10**30, -1):
        # update_at is the server's field: ignored, so it never reaches the SQL.
        resp = api.call("PUT", f"/scheduled_recaps/{sid}", json={"update_at": update_at})
        assert resp.status_code == 200, resp.text
    body = {"channel_id": api.channel("dev"), "message": "m", "create_at": 2**63}
    assert_error(
        api.call("POST", "/posts", json=body), 400, "api.context.invalid_body_param.app_error"
    )
    for query in ("page=10000000000000000000", "per_page=-10000000000000000000"):
        for path in ("/recaps", "/scheduled_recaps", "/jobs"):
            assert_error(
                api.call("GET", f"{path}?{query}"), 400, "api.context.invalid_body_param.app_error"
            )
    # The schedule was not changed by any of it.
    assert api.call("GET", f"/scheduled_recaps/{sid}").json()["title"] == "Morning"


@pytest.mark.parametrize("depth", [100, 900, 5000])
def test_deeply_nested_bodies_are_400(fuzz_api: Api, depth: int) -> None:
    """Found while probing: deep JSON must not exhaust the stack (a 500)."""
    nested = "[" * depth + "]" * depth
    dev = fuzz_api.channel("dev")
    for path, raw in [
        ("/posts", f'{{"channel_id": "{dev}", "message": "m", "props": {{"a": {nested}}}}}'),
        ("/scheduled_recaps", f'{{"title": {nested}}}'),
        ("/recaps", f'{{"title": "t", "channel_ids": {nested}}}'),
    ]:
        resp = fuzz_api.call(
            "POST", path, content=raw.encode(), headers={"Content-Type": "application/json"}
        )
        assert_error(resp, 400, "api.context.invalid_body_param.app_error")
    shallow = {"channel_id": dev, "message": "m", "props": {"a": [[["ok"]]]}}
    assert fuzz_api.call("POST", "/posts", json=shallow).status_code == 201
