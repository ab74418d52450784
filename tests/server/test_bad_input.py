"""Bad input on every POST/PATCH/PUT route: a 4xx in Fleet's error shape, never a 500.

Routes come from the real app, so routes added later are covered too.  For
routes that take a JSON body: malformed JSON, a body of the wrong JSON type,
each documented field with a value of the wrong type, an unknown field and a
2 MiB body must all be refused, naming the field where there is one.  Routes
without a body must still refuse malformed JSON and huge bodies, and must not
fail on anything else.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from server_helpers import RouteInfo, SharedClient, assert_fleet_error, auth, http_routes, make_user, new_token

from hostql.server.app import create_app
from hostql.server.state import ServerState
from hostql.server.storage.db import Database

APP = create_app(ServerState(Database("sqlite://")))
WRITE_ROUTES = [r for r in http_routes(APP) if r.method in ("POST", "PATCH", "PUT")]
BODY_ROUTES = [r for r in WRITE_ROUTES if r.has_body]
OPENAPI: dict[str, Any] = APP.openapi()
ADMIN = "bad-input-admin@example.com"
UNKNOWN = "zz_no_such_field"


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedClient]:
    app = SharedClient(tmp_path_factory.mktemp("bad-input"))
    make_user(app.database, ADMIN, "admin")
    yield app
    app.close()


def _send(shared: SharedClient, route: RouteInfo, **kwargs: Any) -> Any:
    # A fresh session per call: body-less routes really run (logout ends its session).
    headers = {**auth(new_token(shared.database, ADMIN)), **kwargs.pop("headers", {})}
    return shared.client.request(route.method, route.url(), headers=headers, **kwargs)


def _refused(response: Any, context: object) -> dict[str, Any]:
    assert 400 <= response.status_code < 500, (context, response.status_code, response.text[:300])
    body: dict[str, Any] = response.json()
    assert_fleet_error(body)
    return body


def _names(body: dict[str, Any]) -> str:
    return " ".join(str(e.get("name", "")) for e in body["errors"])


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = OPENAPI["components"]["schemas"][name]
    return schema


def _json_types(schema: dict[str, Any]) -> set[str] | None:
    """The JSON types a schema accepts, or None when it accepts anything."""
    schema = _resolve(schema)
    if "anyOf" in schema or "oneOf" in schema:
        types: set[str] = set()
        for option in schema.get("anyOf", []) + schema.get("oneOf", []):
            option_types = _json_types(option)
            if option_types is None:
                return None
            types |= option_types
        return types
    if "type" in schema:
        kind = schema["type"]
        found = set(kind) if isinstance(kind, list) else {kind}
        if "number" in found:
            found.add("integer")
        return found
    if "enum" in schema or "const" in schema:
        values = schema.get("enum", [schema.get("const")])
        return {type(v).__name__ for v in values}
    if "properties" in schema:
        return {"object"}
    return None


WRONG_VALUES: list[tuple[str, Any]] = [
    ("object", {"nested": [1]}), ("array", [["x"]]), ("string", "not-a-number"), ("integer", 12345),
]


def _wrong_value(schema: dict[str, Any]) -> Any:
    types = _json_types(schema)
    if types is None:
        return None
    aliases = {"string": "str", "integer": "int"}  # enum values are reported by Python type name
    for kind, value in WRONG_VALUES:
        if kind not in types and aliases.get(kind) not in types:
            return value
    return None


def _body_schema(route: RouteInfo) -> dict[str, Any] | None:
    operation = OPENAPI["paths"].get(route.path, {}).get(route.method.lower(), {})
    content = operation.get("requestBody", {}).get("content", {})
    schema = content.get("application/json", {}).get("schema")
    return _resolve(schema) if schema else None


def _field_cases() -> list[tuple[RouteInfo, str, Any]]:
    cases = []
    for route in BODY_ROUTES:
        schema = _body_schema(route)
        for name, field_schema in ((schema or {}).get("properties") or {}).items():
            value = _wrong_value(field_schema)
            if value is not None:
                cases.append((route, name, value))
    return cases


def test_there_are_routes_with_bodies() -> None:
    assert any(r.key == "POST /api/v1/fleet/login" for r in BODY_ROUTES)
    assert any(name == "email" for route, name, _ in _field_cases() if route.key == "POST /api/v1/fleet/login")


@pytest.mark.parametrize("route", WRITE_ROUTES, ids=lambda r: r.key)
def test_malformed_json_is_a_400(shared: SharedClient, route: RouteInfo) -> None:
    for raw in (b'{"name": ', b"not json at all", b"{'single': 'quotes'}", b"\xff\xfe\x00garbage"):
        response = _send(shared, route, content=raw, headers={"content-type": "application/json"})
        body = _refused(response, (route.key, raw))
        assert response.status_code == 400, (route.key, raw)
        assert body["errors"] and body["errors"][0]["name"] == "body"


@pytest.mark.parametrize("route", WRITE_ROUTES, ids=lambda r: r.key)
def test_a_2_mib_body_is_a_413(shared: SharedClient, route: RouteInfo) -> None:
    payload = b'{"name": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    response = _send(shared, route, content=payload, headers={"content-type": "application/json"})
    _refused(response, route.key)
    assert response.status_code == 413


@pytest.mark.parametrize("route", BODY_ROUTES, ids=lambda r: r.key)
def test_a_body_of_the_wrong_json_type_is_refused(
    shared: SharedClient, route: RouteInfo
) -> None:
    schema = _body_schema(route)
    accepted = _json_types(schema) if schema else None
    for value in ([1, 2], "a string", 42, None):
        kind = {list: "array", str: "string", int: "integer", type(None): "null"}[type(value)]
        if accepted is None or kind in accepted:
            continue  # the route documents that it takes this type
        _refused(_send(shared, route, json=value), (route.key, value))


@pytest.mark.parametrize(("route", "field", "value"), _field_cases(),
                         ids=lambda x: x.key if isinstance(x, RouteInfo) else str(x)[:20])
def test_a_field_of_the_wrong_type_is_refused_naming_it(
    shared: SharedClient, route: RouteInfo, field: str, value: Any
) -> None:
    body = _refused(_send(shared, route, json={field: value}), (route.key, field, value))
    assert field in _names(body), (route.key, field, body)


@pytest.mark.parametrize("route", BODY_ROUTES, ids=lambda r: r.key)
def test_an_unknown_field_is_refused_naming_it(
    shared: SharedClient, route: RouteInfo
) -> None:
    schema = _body_schema(route)
    if schema is not None and (schema.get("additionalProperties") not in (None, False) or "properties" not in schema):
        pytest.fail(f"{route.key}: the body is a free-form object; declare a model with extra='forbid'")
    body = _refused(_send(shared, route, json={UNKNOWN: 1}), route.key)
    assert UNKNOWN in _names(body), (route.key, body)


@pytest.mark.parametrize("route", [r for r in WRITE_ROUTES if not r.has_body], ids=lambda r: r.key)
def test_routes_without_a_body_do_not_fail_on_one(
    shared: SharedClient, route: RouteInfo
) -> None:
    for value in ([1, 2], "a string", {UNKNOWN: 1}):
        response = _send(shared, route, json=value)
        assert response.status_code < 500, (route.key, value, response.text[:300])


def test_bad_query_parameters_are_422_naming_the_parameter(client: TestClient, admin_token: str) -> None:
    response = client.get("/api/v1/fleet/activities?page=abc", headers=auth(admin_token))
    assert response.status_code == 422
    assert "page" in _names(response.json())
    response = client.get("/api/v1/fleet/activities?order_direction=sideways", headers=auth(admin_token))
    assert response.status_code == 422
    assert "order_direction" in _names(response.json())


def test_an_over_large_content_length_is_refused_before_reading(client: TestClient, admin_token: str) -> None:
    headers = {**auth(admin_token), "content-type": "application/json", "content-length": str(50 * 1024 * 1024)}
    response = client.post("/api/v1/fleet/logout", content=b"{}", headers=headers)
    assert response.status_code in (400, 413)  # the client may refuse the lie itself; the server never 5xx


def test_agent_log_endpoint_accepts_larger_bodies_than_the_rest_api() -> None:
    from hostql.server.limits import BodyLimits

    limits = BodyLimits()
    assert limits.for_path("/api/v1/fleet/queries") == 1024 * 1024
    assert limits.for_path("/api/osquery/log") > limits.for_path("/api/osquery/config") > limits.default
    # The agent API answers under both prefixes, with the same limits.
    assert limits.for_path("/api/v1/osquery/log") == limits.for_path("/api/osquery/log")
    assert limits.for_path("/api/v1/osquery/config") == limits.for_path("/api/osquery/config")

    class Settings:
        max_request_body_bytes = 4096
        max_osquery_log_body_bytes = 10 * 1024 * 1024

    configured = BodyLimits.from_settings(Settings())
    assert configured.default == 4096 and configured.osquery_log == 10 * 1024 * 1024
    assert configured.osquery == limits.osquery


def test_the_configured_limit_is_applied(database: Database) -> None:
    class Settings:
        max_request_body_bytes = 100

    token = make_user(database, "limit@example.com", "admin")
    with TestClient(create_app(ServerState(database, settings=Settings()))) as small:
        ok = small.post("/api/v1/fleet/logout", json={"a": "b"}, headers=auth(token))
        assert ok.status_code == 200
        big = small.post("/api/v1/fleet/login", json={"email": "x" * 200, "password": "y"})
        assert big.status_code == 413
        assert_fleet_error(big.json())
