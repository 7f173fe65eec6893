"""Contract lint: the spec validates (openapi-spec-validator) and keeps our house rules.

Rules: every operation has an operationId of the form tag.verb_noun and x-roles; every
4xx/5xx response is application/problem+json; every request and response body has an
example; every integer has a maximum and a format; every string has a maxLength (or an
enum), and every string the server accepts (parameters, request bodies) also a pattern,
a format or an enum; every array has maxItems.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import yaml
from openapi_spec_validator import validate

SPEC = Path(__file__).resolve().parent.parent / "openapi" / "openapi.yaml"
METHODS = ("get", "put", "post", "delete", "patch")


def resolve(spec: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        target: Any = spec
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def walk_schema(spec: dict[str, Any], schema: Any, where: str, problems: list[str],
                seen: set[int], request: bool = False) -> None:
    schema = resolve(spec, schema)
    if not isinstance(schema, dict) or id(schema) in seen:
        return
    seen.add(id(schema))
    kind = schema.get("type")
    if kind == "integer" and "maximum" not in schema:
        problems.append(f"{where}: integer without maximum")
    if kind == "string" and not ({"maxLength", "enum"} & schema.keys()):
        problems.append(f"{where}: string without maxLength or enum")
    if kind == "string" and request and not ({"pattern", "format", "enum"} & schema.keys()):
        problems.append(f"{where}: accepted string without pattern, format or enum")
    if kind == "integer" and "format" not in schema:
        problems.append(f"{where}: integer without format (int32/int64)")
    if kind == "array" and "maxItems" not in schema:
        problems.append(f"{where}: array without maxItems")
    for key in ("allOf", "anyOf", "oneOf"):
        for i, sub in enumerate(schema.get(key, [])):
            walk_schema(spec, sub, f"{where}.{key}[{i}]", problems, seen, request)
    for name, sub in schema.get("properties", {}).items():
        walk_schema(spec, sub, f"{where}.{name}", problems, seen, request)
    if isinstance(schema.get("additionalProperties"), dict):
        walk_schema(spec, schema["additionalProperties"], f"{where}.*", problems, seen, request)
    if "items" in schema:
        walk_schema(spec, schema["items"], f"{where}[]", problems, seen, request)


def check(spec: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    seen: set[int] = set()
    seen_accepted: set[int] = set()  # what the server accepts is walked on its own
    for path, item in spec["paths"].items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            where = f"{method.upper()} {path}"
            op_id = op.get("operationId", "")
            tag = (op.get("tags") or ["?"])[0]
            if not re.fullmatch(rf"{re.escape(tag)}\.[a-z]+_[a-z_]+", op_id):
                problems.append(f"{where}: operationId {op_id!r} is not {tag}.verb_noun")
            if "x-roles" not in op:
                problems.append(f"{where}: no x-roles")
            secured = bool(op.get("security", spec.get("security")))
            if secured != bool(op.get("x-roles")):
                problems.append(f"{where}: x-roles and security disagree")
            for param in op.get("parameters", []):
                param = resolve(spec, param)
                walk_schema(spec, param.get("schema"), f"{where} param {param['name']}",
                            problems, seen_accepted, request=True)
            body = op.get("requestBody")
            if body:
                for media, content in resolve(spec, body)["content"].items():
                    if "example" not in content and "examples" not in content:
                        problems.append(f"{where}: request body {media} has no example")
                    walk_schema(spec, content["schema"], f"{where} body", problems,
                                seen_accepted, request=True)
            for status, response in op.get("responses", {}).items():
                response = resolve(spec, response)
                for media, content in response.get("content", {}).items():
                    if status[0] in "45" and media != "application/problem+json":
                        problems.append(f"{where} {status}: error body is {media}")
                    if "example" not in content and "examples" not in content:
                        problems.append(f"{where} {status}: {media} has no example")
                    walk_schema(spec, content["schema"], f"{where} {status}", problems, seen)
                if status[0] == "4" and not response.get("content"):
                    problems.append(f"{where} {status}: 4xx without a problem+json body")
    return problems


def main() -> int:
    spec = yaml.safe_load(SPEC.read_text())
    validate(spec)
    problems = check(spec)
    for problem in problems:
        print(problem)
    if problems:
        print(f"\n{len(problems)} contract rule(s) broken in {SPEC.name}")
        return 1
    print(f"{SPEC.name}: valid OpenAPI {spec['openapi']}, house rules hold")
    return 0


if __name__ == "__main__":
    sys.exit(main())
