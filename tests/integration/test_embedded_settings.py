"""The embedded database runs with the server settings the service is measured with
(app/storage/embedded.py SERVER_SETTINGS): what `make serve` starts is what the bench ran."""

from __future__ import annotations

import psycopg

from app.storage import embedded


def test_the_embedded_server_compresses_full_page_images(database):
    with psycopg.connect(database.app_url) as conn:  # a session of the service's own role
        for name, value in embedded.SERVER_SETTINGS.items():
            assert conn.execute("SELECT current_setting(%s)", (name,)).fetchone() == (value,)


def test_the_settings_are_kept_in_the_data_dir(database):
    """ALTER SYSTEM, not a session's SET: a restart of `make serve` on the same data keeps
    them even before the service connects."""
    with psycopg.connect(database.owner_url) as conn:
        stored = conn.execute("SELECT name, setting FROM pg_file_settings"
                              " WHERE sourcefile LIKE '%%postgresql.auto.conf'"
                              " AND name = ANY(%s)", (list(embedded.SERVER_SETTINGS),)).fetchall()
    assert dict(stored) == embedded.SERVER_SETTINGS
