"""Settings: typed, validated, and never leaking a secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from txstream_dagster.settings import Settings, redact_url


def test_secrets_never_appear_in_the_repr():
    settings = Settings(postgres_url="postgresql://app:hunter2@db:5432/tx", stripe_api_key="sk_test_abc123")
    assert "hunter2" not in repr(settings)
    assert "sk_test_abc123" not in repr(settings)


def test_redacted_url_keeps_everything_but_the_password():
    assert redact_url("postgresql://app:hunter2@db:5432/tx") == "postgresql://app:***@db:5432/tx"
    assert redact_url("postgresql://db/tx") == "postgresql://db/tx"


@pytest.mark.parametrize("topic", ["", "has space", "semi;colon", "a" * 250, ".."])
def test_invalid_topic_names_are_refused_with_the_setting_named(topic):
    with pytest.raises(ValueError, match="TXSTREAM_TOPIC"):
        Settings(topic=topic)


def test_stripe_key_is_read_from_its_conventional_env_var(monkeypatch):
    monkeypatch.setenv("STRIPE_API_KEY", "sk_test_xyz")
    assert Settings().stripe_api_key.get_secret_value() == "sk_test_xyz"


def test_an_empty_value_means_unset(monkeypatch):
    monkeypatch.setenv("STRIPE_API_KEY", "")
    monkeypatch.setenv("TXSTREAM_POSTGRES_URL", " ")
    settings = Settings()
    assert settings.stripe_api_key is None and settings.postgres_url is None


def test_every_setting_is_documented_in_the_readme():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    undocumented = [name for name in env_names() if f"`{name}`" not in readme]
    assert not undocumented, f"README.md's configuration table lacks {undocumented}"


def env_names() -> list[str]:
    return ["STRIPE_API_KEY" if name == "stripe_api_key" else f"TXSTREAM_{name.upper()}" for name in Settings.model_fields]
