"""Schemathesis against the OpenAPI document, in process (ASGI), with a token per role.

Every operation gets generated requests, valid and invalid, from each role (public ones
without a token); each response must not be a server error, and its status code, content
type and body must be those the document declares. Deterministic: Hypothesis is
derandomised and keeps no example database, so CI sees the same requests every run.
"""

from __future__ import annotations

from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from catalog.contracts import load_contracts
from tests.conftest import approve_request, bearer, seed_identities, world_settings

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# The users whose tokens the runs use, one per role.
USERS = {
    "office": "office",
    "provider": "population_provider",
    "consumer": "consumer_a",
    "analyst": "analyst_a",
}
# Generated requests per operation, role and mode: for a role the operation admits, and for
# one it refuses (403 before anything else; a few suffice).
EXAMPLES, REFUSED_EXAMPLES = 12, 2
MODES = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)


@pytest.fixture(scope="module")
def fuzzed(world, tmp_path_factory):
    """(schema, tokens, protected): the app over the published world with its own state, a
    grant in force for department A, and the names and ids the runs must not disable."""
    settings = world_settings(world, tmp_path_factory.mktemp("fuzz-state"))
    tokens = seed_identities(settings, load_contracts(settings.schemas_dir))
    app = create_app(settings)
    from fastapi.testclient import TestClient

    with TestClient(app) as client:  # something to find: a request, its grant, audit entries
        approve_request(
            client,
            tokens,
            {
                "dataset": "population",
                "items": ["id_number", "name", "region_code"],
                "purpose": "测试：核对户籍信息",
                "legal_basis": "测试依据",
                "period_start": "2026-01-01",
                "period_end": "2030-12-31",
            },
        )
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    protected = {"username": set(tokens), "token_id": set(range(1, len(tokens) + 1))}
    return schema, tokens, protected


def _spare(case, protected: dict[str, set]) -> None:
    """Keep the run's own users and tokens usable: a generated path naming one of them
    (a token to revoke, a user to disable) is pointed at one that does not exist."""
    for name, values in protected.items():
        value = (case.path_parameters or {}).get(name)
        if value in values:
            case.path_parameters[name] = "nobody_here" if name == "username" else 10**9


def _run(
    operation, headers: dict[str, str], examples: int, protected: dict[str, set], seen: Counter
) -> list:
    failures = []
    for mode in MODES:
        strategy = operation.as_strategy(generation_mode=mode, headers=headers)

        @settings(
            max_examples=examples,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def check(case) -> None:
            _spare(case, protected)
            response = case.call_and_validate(checks=CHECKS)
            seen[response.status_code] += 1

        try:
            check()
        except Unsatisfiable:  # nothing invalid to send (e.g. no parameters): nothing to test
            continue
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.label} ({mode.value}): {exc}")
    return failures


def _operations(schema):
    for result in schema.get_all_operations():
        yield result.ok()


def _roles(operation) -> list[str]:
    return operation.definition.raw.get("x-roles", ["public"])


@pytest.mark.parametrize("role", [*USERS, "public"])
def test_the_api_conforms_to_its_openapi_document(fuzzed, role):
    schema, tokens, protected = fuzzed
    failures: list[str] = []
    seen: Counter = Counter()
    for operation in _operations(schema):
        roles = _roles(operation)
        if role == "public":
            if roles == ["public"]:
                failures += _run(operation, {}, EXAMPLES, protected, seen)
            continue
        if roles == ["public"]:
            continue
        examples = EXAMPLES if role in roles else REFUSED_EXAMPLES
        failures += _run(operation, bearer(tokens[USERS[role]]), examples, protected, seen)
    assert not failures, "\n\n".join(failures)
    # The runs really reached the routes: answers came back, and the token held throughout.
    assert sum(n for status, n in seen.items() if status < 300) > 0, seen
    if role != "public":
        assert seen[401] == 0, seen
    print(role, dict(sorted(seen.items())))
