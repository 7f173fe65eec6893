"""create_app(): the connexion AsyncApp with our validator, error renderer and layers."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
from connexion import AsyncApp, ConnexionMiddleware
from connexion.apps.asynchronous import AsyncOperation
from connexion.datastructures import MediaTypeDict
from connexion.decorators.main import BaseDecorator, StarletteDecorator
from connexion.exceptions import ProblemException
from connexion.lifecycle import ConnexionRequest
from connexion.middleware import MiddlewarePosition
from connexion.middleware.request_validation import RequestValidationOperation
from connexion.middleware.swagger_ui import SwaggerUIMiddleware
from connexion.operations import OpenAPIOperation
from connexion.options import SwaggerUIOptions
from connexion.resolver import RelativeResolver
from connexion.security import AbstractSecurityHandler
from connexion.validators import VALIDATOR_MAP
from starlette.exceptions import HTTPException

from app import config, runtime, tracing
from app.arguments import CompiledParameterDecorator
from app.conditional import ConditionalReads
from app.console_static import ConsoleFiles
from app.contract import ContractFiles
from app.direct import DirectOperations
from app.errors import DomainError
from app.guard import RequestGuard
from app.handlers.metrics import metrics_app
from app.observability import RequestObserver, configure_logging
from app.problems import render
from app.validation import (
    BodyLimit,
    CompiledJSONBodyValidator,
    CompiledParameterValidator,
    ExplodedURIParser,
    validate_request,
)

SPEC = Path(__file__).resolve().parent.parent / "openapi" / "openapi.yaml"
SWAGGER_UI_PATH = "/ui"
# what connexion's Swagger UI middleware serves: its pages and the spec (app/contract.py
# answers /openapi.json and .yaml first); every other request skips its router
SWAGGER_UI_PREFIXES = (SWAGGER_UI_PATH, "/openapi.")


class OrjsonJsonifier:
    """connexion's jsonifier protocol, backed by orjson."""

    @staticmethod
    def dumps(data: Any, **_: Any) -> str:
        return orjson.dumps(data).decode()

    @staticmethod
    def loads(data: Any) -> Any:
        return orjson.loads(data)


# Query strings kept resolved across requests (_build_per_operation_once)
RESOLVED_QUERIES = 256


def _build_per_operation_once() -> None:
    """connexion 3.3 rebuilds on every request what depends only on the operation and its
    handler. Each is kept here after first use (callers only read what is kept; connexion
    deep-copies a default before using it):
    - each handler's decorator stack (AsyncOperation.fn; BaseDecorator.decorate inspects
      the handler's signature);
    - the security functions' signature checks (AbstractSecurityHandler._accepts_kwarg);
    - an operation's body definition (a media-type match and a schema copy, several times
      per request);
    - request validation's validators: two URI parsers, a parameter validator, a
      media-type table and a body validator, kept per operation and content type (none
      holds anything of a request; app.validation.validate_request, which app/direct.py
      calls too);
    - the query string's resolution, once per request (the validator and the arguments
      each built their own request object and parsed it again), and once per text and
      operation for RESOLVED_QUERIES texts (a dashboard's repeated URL).
    Kept in our own classes that connexion calls: the URI parser's parameter table
    (app/validation.py) and the binding of a handler's arguments (app/arguments.py).
    Connexion's Swagger UI middleware matched every request against a catch-all mount and
    five routes to pass on all but its own paths: only those reach its router now."""
    if getattr(AsyncOperation, "_qcc_once", False):
        return
    build = AsyncOperation.fn.fget
    decorate = BaseDecorator.decorate
    assert build is not None

    def fn(self: AsyncOperation) -> Any:
        built = self.__dict__.get("_qcc_fn")
        if built is None:
            built = self.__dict__["_qcc_fn"] = build(self)
        return built

    def decorate_once(self: BaseDecorator, function: Any) -> Any:
        decorated = self.__dict__.setdefault("_qcc_decorated", {})
        found = decorated.get(function)
        if found is None:
            found = decorated[function] = decorate(self, function)
        return found

    body_definition = OpenAPIOperation.body_definition

    def body_definition_once(self: OpenAPIOperation, content_type: str | None = None) -> dict:
        definitions = self.__dict__.setdefault("_qcc_body_definitions", {})
        found = definitions.get(content_type)
        if found is None:
            found = definitions[content_type] = body_definition(self, content_type)
        return found

    resolve_query = ConnexionRequest.query_params.fget
    assert resolve_query is not None

    # The resolution is a function of the query string and the operation's parameter
    # table alone: a text resolved before (a repeated URL) is copied, not parsed again.
    # Each entry holds its table, so a hit is the same table, not one at a reused id.
    known: dict[tuple[type, int, bytes], tuple[Any, dict[str, Any]]] = {}

    def resolved_query(request: ConnexionRequest) -> dict[str, Any]:
        parser = request.uri_parser
        table = getattr(parser, "_param_defns", None)
        key = (type(parser), id(table), request.scope.get("query_string", b""))
        found = known.get(key)
        if found is None or found[0] is not table:
            found = (table, resolve_query(request))
            if len(known) >= RESOLVED_QUERIES:
                del known[next(iter(known))]
            known[key] = found
        # a copy: callers read it (arrays are copied again when bound to arguments)
        return dict(found[1])

    def query_params_once(self: ConnexionRequest) -> Any:
        # one operation per request, so every parser of one class resolves it alike
        resolved = self.scope.setdefault("extensions", {}).setdefault("qcc_query", {})
        key = type(self.uri_parser)
        if key not in resolved:
            resolved[key] = resolved_query(self)
        return resolved[key]

    async def validate_once(self: RequestValidationOperation, scope: Any, receive: Any,
                            send: Any) -> None:
        # connexion's RequestValidationOperation.__call__, its validators kept per operation
        receive, scope = await validate_request(self, scope, receive)
        await self.next_app(scope, receive, send)

    swagger_ui = SwaggerUIMiddleware.__call__

    async def swagger_ui_paths_only(self: SwaggerUIMiddleware, scope: Any, receive: Any,
                                    send: Any) -> None:
        if scope["type"] == "http" and not scope["path"].startswith(SWAGGER_UI_PREFIXES):
            await self.app(scope, receive, send)
            return
        await swagger_ui(self, scope, receive, send)

    AsyncOperation.fn = property(fn)
    SwaggerUIMiddleware.__call__ = swagger_ui_paths_only
    StarletteDecorator._parameter_decorator_cls = property(
        lambda _: CompiledParameterDecorator)
    RequestValidationOperation.__call__ = validate_once
    BaseDecorator.decorate = decorate_once
    ConnexionRequest.query_params = property(query_params_once)
    OpenAPIOperation.body_definition = body_definition_once
    accepts = AbstractSecurityHandler._accepts_kwarg
    AbstractSecurityHandler._accepts_kwarg = staticmethod(
        functools.lru_cache(maxsize=1024)(accepts))
    AsyncOperation._qcc_once = True


def create_app(settings: config.Settings | None = None) -> Any:
    settings = settings or config.load()
    _build_per_operation_once()
    configure_logging(settings.log_level)
    tracing.configure(settings)  # off unless OTEL_EXPORTER_OTLP_ENDPOINT is set

    @contextlib.asynccontextmanager
    async def lifespan(_: ConnexionMiddleware) -> AsyncIterator[None]:
        await runtime.start(settings)
        try:
            yield
        finally:
            await runtime.stop()

    validator_map = dict(VALIDATOR_MAP)
    validator_map["body"] = MediaTypeDict({**VALIDATOR_MAP["body"],
                                           "*/*json": CompiledJSONBodyValidator})
    validator_map["parameter"] = CompiledParameterValidator

    app = AsyncApp(
        __name__,
        lifespan=lifespan,
        jsonifier=OrjsonJsonifier,
        validator_map=validator_map,
        uri_parser_class=ExplodedURIParser,
        strict_validation=True,
        validate_responses=settings.validate_responses,
    )
    app.add_api(
        SPEC,
        resolver=RelativeResolver("app.handlers"),
        swagger_ui_options=SwaggerUIOptions(swagger_ui_path=SWAGGER_UI_PATH),
        strict_validation=True,
        validate_responses=settings.validate_responses,
    )
    app.add_middleware(BodyLimit, position=MiddlewarePosition.BEFORE_VALIDATION,
                       default=settings.max_body_bytes, batch=settings.max_batch_body_bytes,
                       batch_concurrency=settings.batch_concurrency)
    app.add_middleware(tracing.OperationSpans, position=MiddlewarePosition.BEFORE_CONTEXT)
    for exc_type in (DomainError, ProblemException, HTTPException, Exception):
        app.add_error_handler(exc_type, render)
    direct = DirectOperations(_MetricsRoute(app, settings), app,
                              enabled=settings.direct_operations)
    return RequestObserver(RequestGuard(
        tracing.RequestSpans(ConditionalReads(direct)), settings))


class _MetricsRoute:
    """/metrics (Prometheus text) lives beside the contract, not in it: scrapers only.
    So does /console (the console's static files; it calls the API like any client), and
    the contract itself as written (app/contract.py), ahead of connexion's dereferenced copy."""

    def __init__(self, app: Any, settings: config.Settings) -> None:
        self.app = app
        self.metrics = metrics_app(settings.metrics_token, settings.prometheus_multiproc_dir,
                                   production=settings.environment == "production")
        self.console = ConsoleFiles()
        self.contract = ContractFiles()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope.get("path") == "/metrics":
            await self.metrics(scope, receive, send)
            return
        if scope["type"] == "http" and ContractFiles.handles(scope):
            await self.contract(scope, receive, send)
            return
        if scope["type"] == "http" and ConsoleFiles.handles(scope.get("path", "")):
            await self.console(scope, receive, send)
            return
        await self.app(scope, receive, send)


def asgi() -> Any:
    """gunicorn entry point: app.main:asgi()"""
    return create_app()
