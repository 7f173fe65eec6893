"""The hot operations answered by connexion's per-operation parts, without its middleware
chain.

A request passes nine connexion and starlette layers before its handler (two exception
middlewares, Swagger UI, routing, security, body limit, validation, response validation,
lifespan, context, then a second routing in the app), each a coroutine and most building
their own request object. For the operations in DIRECT, on their fixed paths, this layer
runs the same per-operation parts connexion built, in connexion's order, and nothing else:

1. the operation's security (connexion's SecurityOperation: the spec's schemes, our
   api_key_info / session_info, the role guard from generated/);
2. the body limit (app.validation.BodyLimit) and the request validation
   (app.validation.validate_request: the validators from openapi/);
3. with VALIDATE_RESPONSES, connexion's check of the answer;
4. the handler through connexion's own decorators (argument binding, response shaping),
   under the context connexion's ContextMiddleware sets;
5. an exception from any of them through app.problems.render, as connexion's exception
   middleware does.

Every other request (other paths or methods, or before connexion has built its
operations) goes through connexion's chain unchanged; so does every request with
DIRECT_OPERATIONS=false.
"""

from __future__ import annotations

import copy
from typing import Any

from connexion.context import _context, _operation, _receive, _scope
from connexion.frameworks.starlette import Starlette
from connexion.lifecycle import ConnexionRequest
from connexion.middleware.context import ContextMiddleware
from connexion.middleware.request_validation import RequestValidationMiddleware
from connexion.middleware.response_validation import (
    ResponseValidationMiddleware,
    ResponseValidationOperation,
)
from connexion.middleware.security import SecurityMiddleware

from app import tracing
from app.observability import HANDLER_PACKAGE
from app.problems import render
from app.validation import BodyLimit, validate_request

# The hot operations, on fixed paths (no path parameters): (method, path) -> operationId.
DIRECT = {("GET", "/reports"): "reports.list_reports",
          ("GET", "/timeline"): "timeline.get_timeline",
          ("POST", "/ingest/qc"): "ingest.ingest_report"}


class _Parts:
    """One operation's parts, as connexion built them, chained in connexion's order."""

    def __init__(self, stack: list[Any], operation_id: str, direct: DirectOperations) -> None:
        self.operation_id = HANDLER_PACKAGE + operation_id
        self.security = _operation_of(stack, SecurityMiddleware, self.operation_id)
        self.validation = _operation_of(stack, RequestValidationMiddleware, self.operation_id)
        self.context = _operation_of(stack, ContextMiddleware, self.operation_id).operation
        self.handler = _operation_of(stack, None, self.operation_id)
        self.respond: Any = direct.respond
        checks = _operation_of(stack, ResponseValidationMiddleware, self.operation_id)
        if isinstance(checks, ResponseValidationOperation):  # VALIDATE_RESPONSES: connexion's
            # own check of the answer, in front of the handler instead of its chain
            self.respond = copy.copy(checks)
            self.respond.next_app = direct.respond
        # the body limit (a copy: it shares the original's batch slots), then validation
        self.limited = copy.copy(next(m for m in stack if isinstance(m, BodyLimit)))
        self.limited.app = direct.validated


def _operation_of(stack: list[Any], kind: type | None, operation_id: str) -> Any:
    """The per-operation object of the middleware of `kind` (None: the app at the bottom)."""
    middleware: Any = stack[-1] if kind is None else next(m for m in stack if isinstance(m, kind))
    for api in middleware.apis.get("", ()):
        if operation_id in api.operations:
            return api.operations[operation_id]
    raise LookupError(f"{operation_id} is not among connexion's operations")


def _parts(scope: dict[str, Any]) -> _Parts:
    parts: _Parts = scope["extensions"]["qcc_direct"]
    return parts


class DirectOperations:
    def __init__(self, app: Any, connexion_app: Any, *, enabled: bool = True) -> None:
        self.app = app
        self.enabled = enabled
        self.connexion = connexion_app.middleware
        self._parts: dict[tuple[str, str], _Parts] | None = None  # by (method, path)
        # the operation's span where connexion opens it: after security and validation
        self.operation = tracing.OperationSpans(self._operation)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if (scope["type"] == "http" and self.enabled
                and (scope["method"], scope["path"]) in DIRECT and self._built()):
            await self._answer(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _built(self) -> bool:
        """connexion builds its operations on its first request (any path)."""
        if self._parts is None:
            stack = self.connexion.middleware_stack
            if stack is None:
                return False
            self._parts = {route: _Parts(list(stack), operation_id, self)
                           for route, operation_id in DIRECT.items()}
        return True

    async def _answer(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert self._parts is not None
        parts = self._parts[scope["method"], scope["path"]]
        # what connexion's routing records: observability, the guard and the body limit
        # name the operation from it
        scope.setdefault("extensions", {})["connexion_routing"] = {
            "api_base_path": "", "operation_id": parts.operation_id}
        scope["extensions"]["qcc_direct"] = parts
        # as connexion sets it: starlette then raises its errors (a malformed form body's
        # 400) instead of answering them itself
        scope["app"] = self.connexion
        started = False

        async def send_started(message: dict[str, Any]) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            if parts.security.security:
                await parts.security.verification_fn(ConnexionRequest(scope))
            await parts.limited(scope, receive, send_started)
        except Exception as exc:  # the one renderer, as connexion's exception middleware
            if started:
                raise
            problem = render(ConnexionRequest(scope), exc)
            await Starlette.connexion_to_framework_response(problem)(scope, receive, send)

    async def validated(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        receive, scope = await validate_request(_parts(scope).validation, scope, receive)
        await self.operation(scope, receive, send)

    @staticmethod
    async def _operation(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await _parts(scope).respond(scope, receive, send)

    @staticmethod
    async def respond(scope: dict[str, Any], receive: Any, send: Any) -> None:
        """The handler through connexion's decorators, with the context connexion's
        ContextMiddleware sets; its answer sent as connexion's app sends it."""
        parts = _parts(scope)
        _context.set(scope["extensions"].get("connexion_context", {}))
        _operation.set(parts.context)
        _receive.set(receive)
        _scope.set(scope)
        await parts.handler(scope, receive, send)
