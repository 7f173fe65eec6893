"""Our parameter decorator (app/arguments.py) binds every operation's handler arguments
exactly as connexion's own decorator does: for each operation of the contract, with every
query parameter given and with none (its defaults), and with a form body."""

from __future__ import annotations

import functools
from typing import Any

import pytest
from connexion.context import _context, _operation
from connexion.decorators.parameter import AsyncParameterDecorator
from connexion.frameworks.starlette import Starlette as StarletteFramework
from connexion.http_facts import METHODS
from connexion.operations import OpenAPIOperation
from connexion.resolver import RelativeResolver
from connexion.spec import Specification

from app.arguments import CompiledParameterDecorator
from app.main import SPEC
from app.validation import ExplodedURIParser

SPECIFICATION = Specification.load(SPEC)
OPERATIONS = [
    OpenAPIOperation.from_spec(SPECIFICATION, path=path, method=method,
                               resolver=RelativeResolver("app.handlers"),
                               uri_parser_class=ExplodedURIParser)
    for path, methods in SPECIFICATION["paths"].items()
    for method in methods if method in METHODS
]


def sample(schema: dict[str, Any], name: str = "value") -> list[str]:
    """Values a client would send for a parameter of this schema (each a query value)."""
    if "enum" in schema:
        return [str(schema["enum"][-1])]
    kind = schema.get("type")
    if kind == "array":
        return sample(schema["items"], name + "1") + sample(schema["items"], name + "2")
    if kind == "integer":
        return [str(schema.get("minimum", 0) + 3)]
    if kind == "boolean":
        return ["true"]
    if schema.get("format") == "date-time":
        return ["2026-11-30T10:00:00Z"]
    if schema.get("format") == "uuid":
        return ["9f1f3c9e-52a8-4f5e-9d51-6a4f0c2c1a11"]
    return [f"{name},x"]  # a comma: an exploded value stays whole


def request_for(operation: OpenAPIOperation, *, every_query: bool, content_type: str) -> Any:
    query = [(p["name"], value) for p in operation.parameters
             if p["in"] == "query" and every_query
             for value in sample(p.get("schema", {}), p["name"])]
    path_params = {p["name"]: sample(p.get("schema", {}))[0]
                   for p in operation.parameters if p["in"] == "path"}
    scope = {
        "type": "http", "method": operation.method.upper(), "path": operation.path,
        "query_string": "&".join(f"{k}={v}" for k, v in query).encode(),
        "headers": [(b"content-type", content_type.encode())],
        "path_params": path_params,
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    parser = operation.uri_parser_class(operation.parameters, operation.body_definition())
    return StarletteFramework.get_request(uri_parser=parser, scope=scope, receive=receive)


async def bound(decorator_cls: type, operation: OpenAPIOperation, request: Any) -> dict[str, Any]:
    handler = operation.function

    @functools.wraps(handler)  # the handler's signature, seen through __wrapped__
    async def capture(**kwargs: Any) -> dict[str, Any]:
        return kwargs

    decorator = decorator_cls(framework=StarletteFramework, pythonic_params=False)
    operation_token = _operation.set(operation)
    context_token = _context.set({"token_info": {"sub": "someone"}, "user": "someone"})
    try:
        return await decorator(capture)(request)
    finally:
        _operation.reset(operation_token)
        _context.reset(context_token)


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda o: o.operation_id)
@pytest.mark.parametrize("every_query", [True, False], ids=["every query parameter", "defaults"])
@pytest.mark.parametrize("content_type", ["application/json", "application/x-www-form-urlencoded"])
async def test_an_operation_binds_as_connexion_binds_it(operation, every_query, content_type):
    ours = await bound(CompiledParameterDecorator, operation,
                       request_for(operation, every_query=every_query, content_type=content_type))
    theirs = await bound(AsyncParameterDecorator, operation,
                         request_for(operation, every_query=every_query, content_type=content_type))
    assert ours == theirs
    assert {type(v) for v in ours.values()} == {type(v) for v in theirs.values()}


async def test_the_list_gets_typed_values_and_defaults():
    operation = next(o for o in OPERATIONS if o.operation_id == "app.handlers.reports.list_reports")
    kwargs = await bound(CompiledParameterDecorator, operation,
                         request_for(operation, every_query=False, content_type="application/json"))
    assert kwargs == {"token_info": {"sub": "someone"}, "sort": "-received_at", "limit": 50}
    given = await bound(CompiledParameterDecorator, operation,
                        request_for(operation, every_query=True, content_type="application/json"))
    assert isinstance(given["limit"], int)
    assert len(given["subject"]) == 2 and all("," in s for s in given["subject"])
