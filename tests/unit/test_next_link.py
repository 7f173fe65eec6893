"""The next page's Link: the request's URL with its cursor replaced, every other parameter
kept as urlencode writes it (built once per path and query, the cursor added per page)."""

from __future__ import annotations

import pytest

from app import observability
from app.handlers._http import next_link


@pytest.mark.parametrize("path,query,cursor,link", [
    ("/reports", b"severity=block&limit=50", "eyJhIjoxfQ",
     "</reports?severity=block&limit=50&cursor=eyJhIjoxfQ>"),
    ("/reports", b"cursor=old&label=k%3Aa%2Cb&subject=a+b&cursor", "a b+c/=",
     "</reports?label=k%3Aa%2Cb&subject=a+b&cursor=a+b%2Bc%2F%3D>"),
    ("/reports", b"curs%6Fr=old&q=%C3%A9", "n", "</reports?q=%C3%A9&cursor=n>"),
    ("/audit", b"", "n", "</audit?cursor=n>"),
])
def test_the_link_replaces_the_cursor_and_keeps_the_rest(path, query, cursor, link):
    for _ in range(2):  # built, then from the cache
        answering = observability._SCOPE.set({"path": path, "query_string": query})
        try:
            assert next_link(cursor) == link + '; rel="next"'
        finally:
            observability._SCOPE.reset(answering)
