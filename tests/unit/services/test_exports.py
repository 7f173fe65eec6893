"""The security rules that need no server: the keyring, CSV cells, header values, the
IPv6 forms of the SSRF guard, the JSON depth check."""

from __future__ import annotations

import pytest

from app.services import alert_secrets
from app.services.alert_channels import header_value
from app.services.alert_targets import address_allowed
from app.services.exports import csv_cell
from app.validation import too_deep


def test_the_keyring_opens_old_seals_and_reseals_under_the_current_key() -> None:
    old, new = b"o" * 32, b"n" * 32
    sealed = alert_secrets.Vault(old).seal({"url": "https://x"}, context="ctx")
    ring = alert_secrets.Vault(new, (old,))
    assert ring.open(sealed, context="ctx") == {"url": "https://x"} and not ring.current(sealed)
    fresh = ring.reseal(sealed, context="ctx")
    assert ring.current(fresh) and alert_secrets.Vault(new).open(fresh, context="ctx")
    with pytest.raises(alert_secrets.SecretsUnreadable):
        alert_secrets.Vault(new).open(sealed, context="ctx")
    with pytest.raises(alert_secrets.SecretsUnreadable):
        ring.open(fresh, context="another rule")


@pytest.mark.parametrize("value", ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1"])
def test_formula_cells_get_a_leading_quote(value: str) -> None:
    assert csv_cell(value) == "'" + value


def test_ordinary_cells_and_numbers_are_left_alone() -> None:
    assert csv_cell("dataset:orders") == "dataset:orders" and csv_cell(-1) == -1


def test_header_values_lose_control_characters() -> None:
    assert header_value("a\r\nBcc: x\tb\x00") == "a Bcc: x b "


@pytest.mark.parametrize(("address", "allowed"), [
    ("::127.0.0.1", False), ("::ffff:0:7f00:1", False), ("64:ff9b::7f00:1", False),
    ("2002:7f00:1::", False), ("::ffff:10.0.0.1", False), ("2001:0:4136:e378:8000:63bf:80ff:fffe", False),
    ("64:ff9b:1::808:808", False), ("::1", False), ("::", False), ("fe80::1%eth0", False),
    ("64:ff9b::808:808", True), ("2002:808:808::1", True), ("::ffff:8.8.8.8", True),
    ("2606:4700:4700::1111", True), ("8.8.8.8", True), ("10.1.2.3", False),
])
def test_ipv6_forms_are_judged_by_their_embedded_ipv4(address: str, allowed: bool) -> None:
    assert address_allowed(address) is allowed


def test_depth_is_measured_without_recursion() -> None:
    deep: object = 1
    for _ in range(100_000):
        deep = [deep]
    assert too_deep(deep) and not too_deep({"a": [{"b": [1, {"c": 2}]}]})
