"""A handler's keyword arguments from the request, as connexion's parameter decorator
binds them (path and query parameters typed by the spec, its defaults, the security
context), with the per-operation work done once.

connexion's AsyncParameterDecorator rebuilds, on every request, the operation's tables of
path and query parameters and their defaults (a deep copy), runs three regular
expressions over every name, and asks for the body and the form files even when the
handler takes neither: ~15 % of an ingest's CPU in process. Every part of that depends on
the operation and the handler alone. A request connexion would bind differently (a form
or multipart body, a handler that takes the body or **kwargs, an object-valued query
parameter that merges into its default, a Swagger 2 operation) goes to connexion's own
decorator, unchanged."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from connexion.context import _context, _operation
from connexion.decorators.parameter import (
    CONTEXT_NAME,
    AsyncParameterDecorator,
    _get_val_from_param,
    inspect_function_arguments,
    unwrap_decorators,
)
from connexion.http_facts import FORM_CONTENT_TYPES
from connexion.lifecycle import ConnexionRequest
from connexion.operations import OpenAPIOperation

from app.observability import header


@dataclass(frozen=True)
class _Binding:
    """How one operation's parameters become one handler's arguments."""

    path: dict[str, tuple[str, dict[str, Any]]]  # spec name -> (argument, definition)
    # (spec name, argument, definition, default or _NO_DEFAULT), only the handler's
    query: tuple[tuple[str, str, dict[str, Any], Any], ...]
    context: frozenset[str]  # context keys the handler takes (e.g. token_info)
    wants_context: bool  # the handler takes `context_`


_NO_DEFAULT = object()


def _default(parameter: dict[str, Any]) -> Any:
    if "default" in parameter:
        return parameter["default"]
    return parameter.get("schema", {}).get("default", _NO_DEFAULT)


def _binding(operation: Any, arguments: list[str], sanitize: Any) -> _Binding | None:
    """The operation's binding for a handler taking `arguments`, or None when connexion's
    decorator must bind it (it would pass the body, or merge an object into its default)."""
    if not isinstance(operation, OpenAPIOperation) or operation.method.upper() == "TRACE":
        return None
    if operation.is_request_body_defined and sanitize(operation.body_name("")) in arguments:
        return None
    path: dict[str, tuple[str, dict[str, Any]]] = {}
    query: list[tuple[str, str, dict[str, Any], Any]] = []
    for parameter in operation.parameters:
        name = parameter["name"]
        if parameter["in"] == "path":
            path[name] = (sanitize(name), parameter)
        elif parameter["in"] == "query":
            if parameter.get("schema", {}).get("type") == "object":
                return None
            if sanitize(name) in arguments:
                query.append((name, sanitize(name), parameter, _default(parameter)))
    return _Binding(path=path, query=tuple(query),
                    context=frozenset(arguments) - {CONTEXT_NAME},
                    wants_context=CONTEXT_NAME in arguments)


class CompiledParameterDecorator(AsyncParameterDecorator):
    def __call__(self, function: Any) -> Any:
        arguments, has_kwargs = inspect_function_arguments(unwrap_decorators(function))
        connexions = super().__call__(function)
        sanitize = self.sanitize_fn
        bindings: dict[Any, _Binding | None] = {}  # per operation (one, in practice)

        @functools.wraps(function)
        async def wrapper(request: ConnexionRequest) -> Any:
            operation = _operation.get()
            if operation in bindings:
                binding = bindings[operation]
            else:
                binding = bindings[operation] = None if has_kwargs else _binding(
                    operation, arguments, sanitize)
            scope = request.scope
            content_type = header(scope, "content-type")
            if binding is None or (content_type is not None and _is_form(content_type)):
                return await connexions(request)
            kwargs: dict[str, Any] = {}
            if scope.get("path_params"):
                for name, value in request.path_params.items():
                    found = binding.path.get(name)
                    if found is None:  # not in the spec: injected by a path converter, as is
                        kwargs[sanitize(name)] = value
                    else:
                        kwargs[found[0]] = _get_val_from_param(value, found[1])
            if binding.query:
                query = request.query_params if scope.get("query_string") else {}
                for name, argument, definition, default in binding.query:
                    value = query.get(name, default)
                    if value is not _NO_DEFAULT:
                        kwargs[argument] = _get_val_from_param(value, definition)
            context = _context.get()
            for key, value in context.items():
                if key in binding.context:
                    kwargs[key] = value
            if binding.wants_context:
                kwargs[CONTEXT_NAME] = context
            return await function(**kwargs)

        return wrapper


def _is_form(content_type: str) -> bool:
    mimetype = content_type.split(";", 1)[0].strip().lower()
    return mimetype in FORM_CONTENT_TYPES
