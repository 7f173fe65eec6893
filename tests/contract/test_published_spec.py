"""The contract as published: /openapi.json and /openapi.yaml are the bundled document
(generated/openapi.json, components and $refs kept), and Swagger UI reads it."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

BUNDLED = Path(__file__).resolve().parents[2] / "generated" / "openapi.json"


def test_spec_and_swagger_ui_are_published(http):
    spec = http.get("/openapi.json").json()
    assert spec["openapi"] == "3.0.3"
    assert "/ingest/qc" in spec["paths"]
    ui = http.get("/ui/")
    assert ui.status_code == 200 and "swagger" in ui.text.lower()


def test_openapi_json_is_the_bundled_document_with_its_refs(http):
    answer = http.get("/openapi.json")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.content == BUNDLED.read_bytes()
    spec = answer.json()
    assert spec["openapi"] == "3.0.3"
    assert spec["servers"][0]["url"] == "/"
    assert {"Problem", "ReportSummary", "Export"} <= spec["components"]["schemas"].keys()
    assert answer.text.count('"$ref"') > 300
    assert len(answer.content) < 200_000  # not dereferenced (that was 326,687 bytes)


def test_openapi_yaml_is_the_same_document(http):
    answer = http.get("/openapi.yaml")
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/yaml"
    assert yaml.safe_load(answer.text) == json.loads(BUNDLED.read_bytes())


def test_the_document_has_an_etag(http):
    first = http.get("/openapi.json")
    again = http.get("/openapi.json", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


def test_swagger_ui_reads_the_published_document(http):
    page = http.get("/ui/")
    assert page.status_code == 200 and "swagger" in page.text.lower()
    assert "/openapi.json" in page.text + http.get("/ui/swagger-ui-config.json").text


def test_an_unknown_query_parameter_is_the_documented_400(http):
    answer = http.get("/health", params={"surprise": "1"})
    assert answer.status_code == 400
    assert answer.headers["content-type"] == "application/problem+json"
