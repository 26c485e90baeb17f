"""Settings come from arguments, then HUB_* variables, then the TOML file named by HUB_CONFIG."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.settings import Settings


def test_toml_file_sets_values_and_environment_overrides_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HUB_BROKER", "HUB_TOPIC_PREFIX"):
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "hub.toml"
    config.write_text('broker = "kafka-1:9092"\npartitions = 16\ntopic_prefix = "prod."\n')
    monkeypatch.setenv("HUB_CONFIG", str(config))
    monkeypatch.setenv("HUB_PARTITIONS", "12")
    settings = Settings()
    assert settings.broker == "kafka-1:9092"
    assert settings.topic_prefix == "prod."
    assert settings.partitions == 12


def test_invalid_value_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_PARTITIONS", "0")
    with pytest.raises(ValueError, match="partitions"):
        Settings()
