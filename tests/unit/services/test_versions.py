"""The one ETag rule (app/services/versions.py), without a database."""

from __future__ import annotations

from app.services import versions


def test_etag_matching_is_weak_and_list_aware():
    tag = versions.etag("acme", 3, "reports")
    assert versions.matches(f'"nope", W/{tag}', tag)
    assert not versions.matches('"nope"', tag)
    assert versions.etag("acme", 4, "reports") != tag
    assert versions.etag("globex", 3, "reports") != tag
