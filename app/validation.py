"""Request body validation from the contract, compiled once (jsonschema-rs) and parsed
with orjson — connexion's default builds a validator per request (~270 us for a small
report) and turns a non-UTF-8 body into a 500. Also the body-size limit (413)."""

from __future__ import annotations

import asyncio
import json
import math
import re
from typing import Any

import jsonschema_rs
import orjson
from connexion.exceptions import BadRequestProblem, ExtraParameterProblem
from connexion.lifecycle import ConnexionRequest
from connexion.middleware.request_validation import RequestValidationOperation
from connexion.uri_parsing import OpenAPIURIParser
from connexion.utils import is_nullable
from connexion.validators import JSONRequestBodyValidator, ParameterValidator

from app.errors import BadRequest, InvalidBody, PayloadTooLarge, UnsupportedMediaType
from app.observability import RequestState, header, request_state

MAX_ERRORS = 100
MAX_INDEXES = 1000
# No body in the contract nests deeper than ~6; the validator recurses per level and would
# hit Python's recursion limit (a 500) long before orjson's own limit of 1024.
MAX_DEPTH = 32
_INDEX = re.compile(r"^/reports/(\d+)(?:/|$)")
# operations whose bodies may be 10 MiB: a batch, and an imported file
LARGE_BODY_OPERATIONS = frozenset({"ingest.ingest_batch", "imports.import_file"})
# Query strings an operation accepted, remembered per operation (CompiledParameterValidator)
ACCEPTED_QUERIES = 256


def to_json_schema(schema: Any) -> Any:
    """OpenAPI 3.0 schema objects -> JSON Schema draft 4 (nullable becomes a null branch)."""
    if isinstance(schema, list):
        return [to_json_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: to_json_schema(v) for k, v in schema.items()
           if k not in ("nullable", "example", "examples", "readOnly", "writeOnly")
           and not k.startswith("x-")}
    if schema.get("nullable") is True:
        return {"anyOf": [out, {"type": "null"}]}
    return out


_compiled: dict[int, Any] = {}


def compiled(schema: dict[str, Any]) -> Any:
    # The spec's schema objects live as long as the app, so their ids are stable keys.
    key = id(schema)
    validator = _compiled.get(key)
    if validator is None:
        validator = jsonschema_rs.Draft4Validator(to_json_schema(schema), validate_formats=True)
        _compiled[key] = validator
    return validator


def depth_bound(schema: Any, _open: frozenset[int] = frozenset()) -> float:
    """How deep containers can nest in a value the JSON Schema accepts (math.inf when it
    does not say: a free-form object or array, a recursive schema)."""
    if not isinstance(schema, dict):
        return 0 if schema is False else math.inf
    if id(schema) in _open:
        return math.inf
    inner = _open | {id(schema)}
    bounds: list[float] = []
    types = schema.get("type")
    if types is not None:
        kinds = {types} if isinstance(types, str) else set(types)
        bound = 0.0
        if "object" in kinds:
            members = [*schema.get("properties", {}).values(),
                       *schema.get("patternProperties", {}).values(),
                       schema.get("additionalProperties", True)]
            bound = max(bound, 1 + max(depth_bound(m, inner) for m in members))
        if "array" in kinds:
            items = schema.get("items", True)
            members = [*items, schema.get("additionalItems", True)] if isinstance(items, list) \
                else [items]
            bound = max(bound, 1 + max(depth_bound(m, inner) for m in members))
        bounds.append(bound)
    for union in ("anyOf", "oneOf"):
        if union in schema:
            bounds.append(max(depth_bound(s, inner) for s in schema[union]))
    bounds.extend(depth_bound(s, inner) for s in schema.get("allOf", ()))
    return min(bounds, default=math.inf)


_bounded: dict[int, bool] = {}


def bounds_depth(schema: dict[str, Any]) -> bool:
    """True when no value the schema accepts nests deeper than MAX_DEPTH: then a body need
    not be measured before validation, only when it fails it (a batch of 500 reports
    spends ~3 µs per report in the measuring)."""
    key = id(schema)
    bounded = _bounded.get(key)
    if bounded is None:
        bounded = _bounded[key] = depth_bound(to_json_schema(schema)) <= MAX_DEPTH
    return bounded


def too_deep(body: Any, limit: int = MAX_DEPTH) -> bool:
    """True when containers nest deeper than `limit` (level by level: no recursion to
    exhaust). A body is what orjson parsed: dicts, lists and scalars only. One
    comprehension per level: a 500-report batch is checked in ~3 µs per report, a third
    of a node-by-node walk."""
    level = [body] if type(body) is dict or type(body) is list else []
    depth = 1
    while level:
        level = [child for node in level for child in (node.values() if type(node) is dict else node)
                 if type(child) is dict or type(child) is list]
        if level and depth == limit:
            return True
        depth += 1
    return False


def pointer(path: Any) -> str:
    return "".join(f"/{str(p).replace('~', '~0').replace('/', '~1')}" for p in path)


def _message(error: Any) -> str:
    """The validator's message without a quoted object or array: one may hold a secret (a
    channel's URL, routing key or webhook secret), and the pointer already says where."""
    message = str(error.message)
    instance = getattr(error, "instance", None)
    if not isinstance(instance, (dict, list)):
        return message
    dumped = json.dumps(instance, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return "the value" + message[len(dumped):] if message.startswith(dumped) else message


def body_errors(validator: Any, body: Any) -> InvalidBody | None:
    errors: list[dict[str, str]] = []
    indexes: set[int] = set()
    for error in validator.iter_errors(body):
        where = pointer(error.instance_path)
        match = _INDEX.match(where)
        if match:
            indexes.add(int(match.group(1)))
        if len(errors) < MAX_ERRORS:
            errors.append({"pointer": where, "detail": _message(error)[:500]})
    if not errors:
        return None
    batch = isinstance(body, dict) and "reports" in body and bool(indexes)
    return InvalidBody(errors, sorted(indexes)[:MAX_INDEXES] if batch else None)


class CompiledJSONBodyValidator(JSONRequestBodyValidator):
    async def wrap_receive(self, receive: Any, *, scope: Any) -> tuple[Any, Any]:
        """connexion's, without its per-request Headers object and async generator (~10 %
        of a single ingest's validation): the body's messages read in a loop, parsed and
        checked, then replayed. A request without a body takes connexion's own way (the
        schema's default, or "RequestBody is required")."""
        if not int(header(scope, "content-length") or 0):
            return await super().wrap_receive(receive, scope=scope)
        messages = []
        more = True
        while more:
            message = await receive()
            messages.append(message)
            more = message.get("more_body", False)
        body = self._parse_raw(b"".join(m.get("body", b"") for m in messages), scope)
        if not (body is None and self._nullable):
            self._validate(body)
        return self._insert_messages(receive, messages=messages), scope

    async def _parse(self, stream: Any, scope: Any) -> Any:
        return self._parse_raw(b"".join([chunk async for chunk in stream]), scope)

    def _parse_raw(self, raw: bytes, scope: Any) -> Any:
        if not raw:
            return None
        if self._schema.get("format") == "binary":
            return raw  # a raw file (POST /ingest/{format}): its importer parses it
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise BadRequestProblem(detail=f"malformed JSON (UTF-8 required): {exc}") from None
        if not bounds_depth(self._schema) and too_deep(body):
            raise _nested_too_deep()
        # Hand the parsed body to the handler: it is parsed once per request.
        request_state(scope).body = body
        return body

    def _validate(self, body: Any) -> dict[str, Any] | None:
        if body is None:
            raise BadRequestProblem(detail="a JSON request body is required")
        if isinstance(body, bytes):
            return None
        # A schema that bounds the depth: only a body it refuses can be too deep, and that
        # is still answered as too deep (the same 400 as when measured first).
        measure = bounds_depth(self._schema)
        try:
            problem = body_errors(compiled(self._schema), body)
        except ValueError:  # jsonschema-rs's own nesting limit (a few hundred levels)
            if measure and too_deep(body):
                raise _nested_too_deep() from None
            raise
        if problem is not None:
            if measure and too_deep(body):
                raise _nested_too_deep()
            raise problem
        return None


def _nested_too_deep() -> BadRequest:
    return BadRequest(f"JSON nested deeper than {MAX_DEPTH} levels")


class CompiledParameterValidator(ParameterValidator):
    """Parameters checked with the same compiled validators; the problem names the parameter
    (connexion's message carries only the value and a dump of the schema). The query is
    read once per request and the names it may hold are known per operation (connexion
    looked the query up once per parameter and listed the names on every request).

    The validator is built once per operation (app/main.py keeps it), so what it remembers
    is per operation."""

    def __init__(self, parameters: Any, uri_parser: Any, strict_validation: bool = False,
                 security_query_params: Any = None) -> None:
        super().__init__(parameters, uri_parser, strict_validation, security_query_params)
        self._query_names = frozenset(p["name"] for p in self.parameters.get("query", ())) \
            | self.security_query_params
        # Without path or cookie parameters, a request's parameters are its query string and
        # headers, both read from the scope: no request object for the headers (connexion
        # built one per request), and a query string this operation accepted before is not
        # checked again (its check is a function of the text alone; a dashboard's repeated
        # URL, a poller's). Bounded; only accepted texts are kept.
        self._from_scope = not any(self.parameters.get(where) for where in ("path", "cookie"))
        self._accepted: dict[bytes, None] = {}

    def validate(self, scope: Any) -> None:
        if not self._from_scope:
            super().validate(scope)
            return
        query_string = scope.get("query_string", b"")
        if query_string not in self._accepted:
            self._check_query(ConnexionRequest(scope, uri_parser=self.uri_parser).query_params
                              if query_string else {})
            if len(self._accepted) >= ACCEPTED_QUERIES:
                del self._accepted[next(iter(self._accepted))]
            self._accepted[query_string] = None
        for param in self.parameters.get("header", ()):
            self.validate_parameter("header", header(scope, param["name"]), param)

    def _check_query(self, query: Any) -> None:
        if self.strict_validation:
            extra = query.keys() - self._query_names
            if extra:
                raise ExtraParameterProblem(param_type="query", extra_params=extra)
        for param in self.parameters.get("query", ()):
            self.validate_parameter("query", query.get(param["name"]), param)

    def validate_request(self, request: Any) -> None:
        self._check_query(request.query_params if request.scope.get("query_string") else {})
        for param in self.parameters.get("path", ()):
            self.validate_path_parameter(param, request)
        for param in self.parameters.get("header", ()):
            self.validate_header_parameter(param, request)
        for param in self.parameters.get("cookie", ()):
            self.validate_cookie_parameter(param, request)

    @staticmethod
    def validate_parameter(parameter_type: str, value: Any, param: dict[str, Any],
                           param_name: str | None = None) -> str | None:
        if value is None:
            if param.get("required"):
                raise BadRequest(f"missing {parameter_type} parameter '{param['name']}'",
                                 errors=[{"pointer": param["name"], "detail": "required"}])
            return None
        schema = param.get("schema", param)
        for error in compiled(schema).iter_errors(value):
            detail = error.message[:300]
            raise BadRequest(f"{parameter_type} parameter '{param['name']}': {detail}",
                             errors=[{"pointer": param["name"], "detail": detail}])
        return None


class ExplodedURIParser(OpenAPIURIParser):
    """connexion joins the values of an exploded array parameter (`?subject=a&subject=b`)
    with "," and splits them again, so one value holding a comma became two (and a
    schema-valid `label=k:a,b` a 400). Each repeated value is kept whole.

    connexion also builds two parsers per request from the operation's parameter list
    and recomputes `param_schemas` on each of its four reads; both depend on that list
    alone, which lives as long as its operation, so they are built once per operation."""

    # parameter list's id -> (the list, its parameters by name, their schemas); the list is
    # kept so its id is never another's; bounded in case a caller built a list per call
    _by_parameters: dict[int, tuple[Any, dict[str, Any], dict[str, Any]]] = {}
    _KEPT_MAX = 1024
    _param_defns: dict[str, Any]

    def __init__(self, param_defns: Any, body_defn: Any) -> None:
        found = self._by_parameters.get(id(param_defns))
        if found is None or found[0] is not param_defns:
            super().__init__(param_defns, body_defn)
            found = (param_defns, self._param_defns,
                     {k: v.get("schema", {}) for k, v in self._param_defns.items()})
            if len(self._by_parameters) < self._KEPT_MAX:
                self._by_parameters[id(param_defns)] = found
        self._param_defns, self._schemas = found[1], found[2]
        self._body_schema = body_defn.get("schema", {})
        self._body_encoding = body_defn.get("encoding", {})

    @property
    def param_schemas(self) -> dict[str, Any]:
        return self._schemas

    @staticmethod
    def _resolve_param_duplicates(values: Any, param_defn: dict[str, Any], _in: str) -> Any:
        style = param_defn.get("style", OpenAPIURIParser.style_defaults[_in])
        if param_defn.get("explode", style == "form"):
            return list(values)
        return values[-1]

    @staticmethod
    def _split(value: Any, param_defn: dict[str, Any], _in: str) -> Any:
        if isinstance(value, list):
            return value
        return OpenAPIURIParser._split(value, param_defn, _in)


class BodyLimit:
    """Gate for request bodies, before validation reads them: 415 without a JSON content
    type, 413 past the operation's limit (declared or streamed). A chunked body is read
    here (up to the limit) and replayed with its Content-Length, which connexion needs."""

    def __init__(self, app: Any, *, default: int, batch: int, batch_concurrency: int) -> None:
        self.app = app
        self.default = default
        self.batch = batch
        # At most this many batch bodies (up to 10 MiB each, several times that once parsed)
        # are read and processed at once per process; the others wait before their bodies
        # are read. Batches are CPU-bound, so this bounds memory without costing throughput.
        self.batch_slots = asyncio.Semaphore(batch_concurrency)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        operation = RequestState.operation_id(scope) or ""
        large = operation in LARGE_BODY_OPERATIONS
        limit = self.batch if large else self.default
        headers = dict(scope.get("headers", ()))
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                raise BadRequestProblem(detail="Content-Length is not a number") from None
            if length > limit:
                raise PayloadTooLarge(limit)
            if length > 0 and b"content-type" not in headers:
                raise UnsupportedMediaType("send the body as application/json")
        seen = 0

        async def limited_receive() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise PayloadTooLarge(limit)
            return message

        if large:
            async with self.batch_slots:
                await self._forward(scope, headers, declared, limited_receive, send)
        else:
            await self._forward(scope, headers, declared, limited_receive, send)

    async def _forward(self, scope: dict[str, Any], headers: dict[bytes, bytes],
                       declared: bytes | None, receive: Any, send: Any) -> None:
        if declared is None and b"chunked" in headers.get(b"transfer-encoding", b""):
            if b"content-type" not in headers:
                raise UnsupportedMediaType("send the body as application/json")
            scope, receive = await _buffered(scope, receive)
        await self.app(scope, receive, send)


async def _buffered(scope: dict[str, Any], receive: Any) -> tuple[dict[str, Any], Any]:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    headers = [(k, v) for k, v in scope["headers"] if k != b"transfer-encoding"]
    headers.append((b"content-length", str(len(body)).encode()))
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return {**scope, "headers": headers}, replay


async def validate_request(self: RequestValidationOperation, scope: Any,
                           receive: Any) -> tuple[Any, Any]:
    """connexion's RequestValidationOperation up to its next app, with the validators kept
    per operation: the parameters checked and the body's validator wrapping `receive`.
    Raises the problem a bad request gets."""
    parameters = self.__dict__.get("_qcc_parameters")
    if parameters is None:
        op = self._operation
        parameters = self.__dict__["_qcc_parameters"] = self._validator_map["parameter"](
            op.parameters, uri_parser=op._uri_parser_class(op.parameters, op.body_definition()),
            strict_validation=self.strict_validation,
            security_query_params=self.security_query_params)
    parameters.validate(scope)
    # kept by the Content-Type header's text (None: absent, as on every GET): connexion's
    # parse of it walks and decodes every header (~10 µs of a list request's CPU)
    content_type = header(scope, "content-type")
    bodies = self.__dict__.setdefault("_qcc_bodies", {})
    if content_type in bodies:
        found = bodies[content_type]
    else:
        mime_type, encoding = self.extract_content_type(scope["headers"])
        self.validate_mime_type(mime_type)  # a 415 is never kept
        found = _body_validator(self, mime_type, encoding)
        if len(bodies) < 16:  # the header is the client's: keep a few
            bodies[content_type] = found
    if found is not None:
        receive, scope = await found.wrap_receive(receive, scope=scope)
    return receive, scope


def _body_validator(self: RequestValidationOperation, mime_type: str, encoding: str) -> Any:
    """The body validator connexion builds for a content type (None: nothing to validate)."""
    op = self._operation
    schema = op.body_schema(mime_type)
    if not schema:
        return None
    try:
        validator_cls = self._validator_map["body"][mime_type]
    except KeyError:
        return None  # connexion skips validation of a content type it has no validator for
    return validator_cls(
        schema=schema, required=op.request_body.get("required", False),
        nullable=is_nullable(op.body_definition(mime_type)), encoding=encoding,
        strict_validation=self.strict_validation,
        uri_parser=op.uri_parser_class(op.parameters, op.body_definition()))
