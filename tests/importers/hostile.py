"""Hostile and broken files, shared by the unit and the API tests: (name, format,
content type, body, what the 422 must say)."""

from __future__ import annotations

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol9 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
]>
<testsuite name="boom"><testcase classname="x" name="&lol9;"/></testsuite>
"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE testsuite [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<testsuite name="xxe"><testcase classname="x" name="&secret;"/></testsuite>
"""

EXTERNAL_PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE testsuite [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/evil.dtd"> %remote;]>
<testsuite name="dtd"><testcase classname="x" name="y"/></testsuite>
"""

DEEP_XML = b"<testsuites>" + b"<testsuite>" * 5000 + b"</testsuite>" * 5000 + b"</testsuites>"
DEEP_JSON = b'{"runs":' + b"[" * 5000 + b"]" * 5000 + b"}"
# declared UTF-16, sent as UTF-8: the parser must refuse it, not guess
WRONG_ENCODING_XML = (b'<?xml version="1.0" encoding="UTF-16"?>'
                      b'<testsuite name="x"><testcase classname="a" name="b"/></testsuite>')
UTF16_JSON = '{"version": "2.1.0", "runs": []}'.encode("utf-16")
LATIN1_AS_UTF8_JSON = '{"metadata": {"dbt_schema_version": "run-results caf\xe9"}}'.encode("latin-1")
TRUNCATED_XML = b'<?xml version="1.0"?>\n<testsuite name="t">\n  <testcase classname="a" name="b">\n'
TRUNCATED_JSON = b'{"version": "2.1.0",\n "runs": [{"tool": {"driver": {"name": "ruff"'
NOT_SARIF = b'{"version": "2.1.0", "runs": [{"tool": {"driver": {}}, "results": [{"level": "loud"}]}]}'
NOT_JUNIT = b'<html><body>hello</body></html>'
EMPTY_SUITE = b'<testsuite name="empty" tests="0"></testsuite>'

CASES = [
    ("billion-laughs", "junit", "application/xml", BILLION_LAUGHS, "entity"),
    ("external-entity", "junit", "application/xml", EXTERNAL_ENTITY, "entity"),
    ("external-parameter-entity", "junit", "text/xml", EXTERNAL_PARAMETER_ENTITY, "entity"),
    ("deep-xml", "junit", "application/xml", DEEP_XML, "deeper than"),
    ("deep-json", "sarif", "application/json", DEEP_JSON, "malformed JSON"),
    ("wrong-encoding-xml", "junit", "application/xml", WRONG_ENCODING_XML, "malformed XML"),
    ("utf16-json", "sarif", "application/json", UTF16_JSON, "UTF-16"),
    ("latin1-json", "dbt", "application/json", LATIN1_AS_UTF8_JSON, "malformed JSON"),
    ("truncated-xml", "junit", "application/xml", TRUNCATED_XML, "line 4"),
    ("truncated-json", "sarif", "application/json", TRUNCATED_JSON, "line 2"),
    ("schema-invalid-sarif", "sarif", "application/json", NOT_SARIF, "/runs/0"),
    ("not-junit", "junit", "application/xml", NOT_JUNIT, "<html>"),
    ("no-testcases", "junit", "application/xml", EMPTY_SUITE, "no <testcase>"),
    ("gx-without-results", "gx", "application/octet-stream", b'{"success": true}', "/results"),
    ("empty", "dbt", "application/json", b"  \n", "empty"),
]
