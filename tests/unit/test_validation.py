"""The compiled body validator: OpenAPI -> JSON Schema, the problem it raises, the depth
check; the query parser built once per operation."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from app.validation import body_errors, compiled, depth_bound, to_json_schema, too_deep


def test_nullable_becomes_a_null_branch_and_annotations_drop():
    schema = {"type": "string", "nullable": True, "example": "x", "x-roles": []}
    assert to_json_schema(schema) == {"anyOf": [{"type": "string"}, {"type": "null"}]}


def test_batch_errors_name_every_bad_index():
    schema = {"type": "object", "properties": {"reports": {"type": "array", "items": {
        "type": "object", "required": ["a"], "properties": {"a": {"type": "integer"}}}}}}
    problem = body_errors(compiled(schema), {"reports": [{"a": 1}, {}, {"a": "x"}]})
    assert problem is not None
    assert problem.extra["invalid_indexes"] == [1, 2]
    assert {e["pointer"] for e in problem.extra["errors"]} == {"/reports/1", "/reports/2/a"}
    assert body_errors(compiled(schema), {"reports": [{"a": 1}]}) is None


def test_depth_is_measured_without_recursion() -> None:
    deep: object = 1
    for _ in range(100_000):
        deep = [deep]
    assert too_deep(deep) and not too_deep({"a": [{"b": [1, {"c": 2}]}]})


def _depth(node: object) -> int:
    if isinstance(node, dict):
        return 1 + max(map(_depth, node.values()), default=0)
    if isinstance(node, list):
        return 1 + max(map(_depth, node), default=0)
    return 0


bodies = st.recursive(st.none() | st.integers() | st.text(max_size=2),
                      lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=2), inner, max_size=3), max_leaves=40)


@settings(max_examples=500, deadline=None)
@given(bodies, st.integers(1, 6))
def test_depth_limit_is_the_nesting_of_containers(body, limit):
    assert too_deep(body, limit) == (_depth(body) > limit)


def test_depth_bound_of_a_schema_follows_its_containers():
    scalar = {"type": "string"}
    report = {"type": "object", "additionalProperties": False, "properties": {
        "labels": {"type": "object", "additionalProperties": scalar},
        "checks": {"type": "array", "items": {"anyOf": [scalar, {"type": "array", "items": scalar}]}}}}
    assert depth_bound(report) == 3  # report { checks [ [ "x" ] ] }
    assert depth_bound({"type": "object"}) == math.inf  # any member, any depth
    assert depth_bound({"type": "array"}) == math.inf
    assert depth_bound({"allOf": [{"type": "object"}, report]}) == 3
    recursive: dict = {"type": "array"}
    recursive["items"] = recursive
    assert depth_bound(recursive) == math.inf
    assert depth_bound({"$ref": "#/x"}) == math.inf  # unresolved: not bounded


def test_a_parsers_parameter_table_is_built_once_per_operation():
    """Parsers built from one operation's parameter list share its table and schemas;
    another operation's list gets its own; exploded values stay whole either way."""
    from app.validation import ExplodedURIParser

    listing = [{"name": "subject", "in": "query", "explode": True,
                "schema": {"type": "array", "items": {"type": "string"}}},
               {"name": "limit", "in": "query", "schema": {"type": "integer"}}]
    timeline = [{"name": "bucket", "in": "query", "schema": {"type": "string"}}]
    first, second = ExplodedURIParser(listing, {}), ExplodedURIParser(listing, {})
    other = ExplodedURIParser(timeline, {"schema": {"type": "object"}})
    assert first.param_defns is second.param_defns
    assert first.param_schemas is second.param_schemas
    assert set(first.param_schemas) == {"subject", "limit"}
    assert set(other.param_schemas) == {"bucket"} and other._body_schema == {"type": "object"}
    resolved = second.resolve_query({"subject": ["a,b", "c"], "limit": ["5"]})
    assert resolved == {"subject": ["a,b", "c"], "limit": 5}
