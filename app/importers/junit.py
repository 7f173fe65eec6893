"""JUnit XML (pytest --junitxml, Maven Surefire, jest-junit, ...) -> one report per
<testsuite> that holds test cases, one check per <testcase>.

The XML is parsed by defusedxml (no entity expansion, no external entities or DTD
fetches: a billion-laughs or XXE file is refused) into a standard ElementTree, which
junitparser reads (its TestSuite/TestCase/result classes wrap any ElementTree element).
A builder records each element's line so a problem names where it is in the file.
"""

from __future__ import annotations

from typing import Any
from xml.etree.ElementTree import Element, TreeBuilder

import defusedxml
from defusedxml.ElementTree import DefusedXMLParser, ParseError
from junitparser import Error, Failure, Skipped, TestCase, TestSuite

from app.importers._common import (
    InvalidFile,
    Options,
    file_run_id,
    finish,
    now_utc,
    reports,
    rule_name,
    text,
    timestamp,
)

FORMAT = "junit"
MAX_DEPTH = 64  # real reports nest 3-4 levels; deeper is hostile or broken


class _Builder(TreeBuilder):
    """An ElementTree builder that remembers where each element starts and refuses
    absurd nesting while parsing (before the tree is walked)."""

    def __init__(self) -> None:
        super().__init__()
        self.parser: DefusedXMLParser | None = None
        self.lines: dict[int, int] = {}
        self.depth = 0

    def start(self, tag: Any, attrs: Any) -> Element:
        element = super().start(tag, attrs)
        self.depth += 1
        line = self.parser.parser.CurrentLineNumber if self.parser is not None else 0
        if self.depth > MAX_DEPTH:
            raise InvalidFile(FORMAT, [{"pointer": "", "line": line,
                                        "detail": f"elements nest deeper than {MAX_DEPTH} levels"}])
        self.lines[id(element)] = line
        return element

    def end(self, tag: Any) -> Element:
        self.depth -= 1
        return super().end(tag)


def parse(raw: bytes) -> tuple[Element, dict[int, int]]:
    builder = _Builder()
    # forbid_dtd stays off: some producers write a harmless DOCTYPE; entities and
    # external references are what make XML dangerous, and both are refused.
    parser = DefusedXMLParser(target=builder, forbid_dtd=False, forbid_entities=True,
                              forbid_external=True)
    builder.parser = parser
    try:
        parser.feed(raw)
        root = parser.close()
    except ParseError as exc:
        line, column = exc.position
        raise InvalidFile(FORMAT, [{"pointer": "", "line": line, "column": column + 1,
                                    "detail": f"malformed XML: {_reason(exc)}"}]) from None
    except defusedxml.EntitiesForbidden as exc:
        raise InvalidFile(FORMAT, [{"pointer": "", "detail":
                                    f"entity declarations are refused (entity '{exc.name}')"}]) from None
    except defusedxml.DTDForbidden:
        raise InvalidFile(FORMAT, [{"pointer": "", "detail": "DTDs are refused"}]) from None
    except defusedxml.ExternalReferenceForbidden as exc:
        raise InvalidFile(FORMAT, [{"pointer": "", "detail":
                                    f"external references are refused ({exc.sysid})"}]) from None
    except defusedxml.DefusedXmlException as exc:
        raise InvalidFile(FORMAT, [{"pointer": "", "detail": f"refused XML construct: {exc}"}]) from None
    return root, builder.lines


def _reason(exc: ParseError) -> str:
    # expat's message ends with its own position; ours is in line/column
    return str(exc).split(": line ")[0]


def _outcome(case: TestCase) -> tuple[str, str, str, str | None]:
    """(status, severity, observed, message) for one test case."""
    results = case.result
    for kind, status, severity, observed in ((Error, "fail", "block", "error"),
                                             (Failure, "fail", "warn", "failure"),
                                             (Skipped, "warn", "info", "skipped")):
        found = [r for r in results if isinstance(r, kind)]
        if found:
            first = found[0]
            message = first.message or (first.text or "").strip() or None
            if first.type and message and first.type not in message:
                message = f"{first.type}: {message}"
            return status, severity, observed, message
    return "pass", "warn", "passed", None


def _check(case: TestCase) -> dict[str, Any]:
    name = case.name or ""
    classname = case.classname or ""
    full = f"{classname}.{name}" if classname and name and not name.startswith(classname) else (
        name or classname)
    status, severity, observed, message = _outcome(case)
    check: dict[str, Any] = {"rule": rule_name(full, "testcase"), "status": status,
                             "severity": severity, "observed": observed, "expected": "passed"}
    if message:
        check["message"] = text(message)
    return check


def to_reports(raw: bytes, options: Options) -> list[dict[str, Any]]:
    root, lines = parse(raw)
    if root.tag not in ("testsuites", "testsuite"):
        raise InvalidFile(FORMAT, [{"pointer": f"/{text(root.tag, 100)}", "line": lines.get(id(root), 1),
                                    "detail": f"the root element is <{text(root.tag, 100)}>; "
                                              "expected <testsuites> or <testsuite>"}])
    default_time = timestamp(root.get("timestamp")) or now_utc(options.observed_at)
    run_id = file_run_id(raw)
    submissions: list[dict[str, Any]] = []
    for index, element in enumerate(root.iter("testsuite")):
        suite = TestSuite.fromelem(element)
        cases = list(suite.iterchildren(TestCase))
        if not cases:
            continue
        for case in cases:
            if not (case.name or case.classname):
                raise InvalidFile(FORMAT, [{"pointer": f"/testsuite[{index + 1}]/testcase",
                                            "line": lines.get(id(case._elem), 0),
                                            "detail": "a <testcase> without name or classname"}])
        name = suite.name or f"suite {index + 1}"
        own = {"suite": name, "format": FORMAT}
        hostname = element.get("hostname")
        if hostname:
            own["hostname"] = hostname
        submissions += reports(options=options, subject=name, run_id=run_id,
                               observed_at=timestamp(suite.timestamp) or default_time,
                               own_labels=own, checks=[_check(c) for c in cases])
    return finish(FORMAT, submissions, "the file holds no <testcase>")
