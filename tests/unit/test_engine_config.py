"""Rules config: packaged defaults, validation, version hash."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from hub.engine.config import DEFAULT_RULES_PATH, default_config, load_config, parse_config


def test_packaged_defaults_match_the_issue():
    config = default_config()
    assert config.samenloop_municipalities == {"GM1979", "GM0014", "GM1966", "GM1952", "GM1895"}
    assert config.type_ranking[0] == "STRENGTHENING" and config.type_ranking[-1] == "BOTTLENECK"
    assert (config.wasted_work_horizon_days, config.min_gap_days) == (365, 14)
    assert config.mandate_cents == 5_000_000
    assert config.area_threshold == 5
    assert len(config.config_version) == 12


def test_load_config_from_a_path(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text(DEFAULT_RULES_PATH.read_text() + "\n# tweak\n")
    assert load_config(path).config_version == default_config().config_version
    path.write_text("min_gap_days = 7\n")
    assert load_config(path).min_gap_days == 7


@pytest.mark.parametrize(
    "text",
    [
        "min_gap_dayz = 7",  # typo must not be ignored
        "min_gap_days = -1",
        'mandate_eur = "1.001"',
        'samenloop_municipalities = ["0014"]',
        'type_ranking = ["DAMAGE", "DAMAGE"]',
        'type_ranking = ["GARDENING"]',
        'area_rules = ["AREA_CLUSTER"]',
        "area_threshold = 0",
    ],
)
def test_invalid_config_is_rejected(text):
    with pytest.raises(ValidationError):
        parse_config(text)


def test_float_mandate_is_exact():
    assert parse_config("mandate_eur = 50000.01").mandate_cents == 5_000_001
