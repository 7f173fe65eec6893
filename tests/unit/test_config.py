"""Settings from the environment: the API_KEYS format, and the env sample documenting
every variable the settings read."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.config import ConfigError, parse_api_keys


def test_api_keys_parsing():
    keys = parse_api_keys("acme:viewer:secret-1234567890, globex:op-secret-1234567")
    assert [(k.tenant, k.role, k.secret) for k in keys] == [
        ("acme", "viewer", "secret-1234567890"), ("globex", "operator", "op-secret-1234567")]
    with pytest.raises(ConfigError, match="entry 1"):
        parse_api_keys("bad tenant!:admin:secret-123456")
    with pytest.raises(ConfigError, match="at least 16"):
        parse_api_keys("acme:admin:only-15-chars-x")


def test_env_sample_lists_every_variable_the_settings_read():
    root = Path(__file__).resolve().parents[2]
    source = (root / "app" / "config.py").read_text()
    read = set(re.findall(r'env(?:\.get\(|, )"([A-Z_]+)"', source))
    sample = (root / "config" / "collector.env.sample").read_text()
    documented = set(re.findall(r"^#?([A-Z_]+)=", sample, re.MULTILINE))
    assert read and read <= documented, f"missing from the sample: {sorted(read - documented)}"
