"""Municipality reference data: mergers, steering groups, config validation and override."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from hub.address.municipalities import (
    Municipalities,
    ReferenceConfig,
    default_municipalities,
    default_reference_path,
    load_municipalities,
)
from hub.address.normalise import AddressError
from hub.settings import get_settings


@pytest.fixture(scope="module")
def muni() -> Municipalities:
    return default_municipalities()


def test_default_file_is_package_data() -> None:
    path = default_reference_path()
    assert path.name == "reference.toml" and path.parent.name == "config"
    assert path.is_file()


def test_fourteen_municipalities_and_assen_flagged(muni: Municipalities) -> None:
    assert len(muni.codes) == 14
    assen = next(m for m in muni.config.municipalities if m.code == "GM0106")
    assert assen.scope_uncertain and assen.in_scope


@pytest.mark.parametrize(
    ("code", "group"),
    [
        ("GM1979", "EEMSDELTA"),
        ("GM0014", "GRONINGEN"),
        ("GM1966", "HET_HOGELAND"),
        ("GM1952", "MIDDEN_GRONINGEN"),
        ("GM1895", "OLDAMBT"),
        ("GM0765", "REGIONAL"),
        ("GM0037", "REGIONAL"),
        ("GM0047", "REGIONAL"),
        ("GM1969", "REGIONAL"),
        ("GM1950", "REGIONAL"),
        ("GM1680", "REGIONAL"),
        ("GM1730", "REGIONAL"),
        ("GM1699", "REGIONAL"),
        ("GM0106", "REGIONAL"),
        ("GM0363", "UNASSIGNED"),  # Amsterdam: outside the region
        (None, "UNASSIGNED"),
    ],
)
def test_steering_groups(muni: Municipalities, code: str | None, group: str) -> None:
    assert muni.steering_group(code) == group


@pytest.mark.parametrize(
    ("old", "current"),
    [
        ("GM0003", "GM1979"),
        ("GM0010", "GM1979"),
        ("GM0024", "GM1979"),
        ("GM0017", "GM0014"),
        ("GM0009", "GM0014"),
        ("GM0005", "GM1966"),
        ("GM1663", "GM1966"),
        ("GM1651", "GM1966"),
        ("GM0053", "GM1966"),
        ("GM0018", "GM1952"),
        ("GM1987", "GM1952"),
        ("GM0040", "GM1952"),
        ("GM0015", "GM1969"),
        ("GM0022", "GM1969"),
        ("GM0025", "GM1969"),
        ("GM0056", "GM1969"),
        ("GM0014", "GM0014"),  # a current code maps to itself
        ("0003", "GM1979"),  # loose spelling
        ("gm17", "GM0014"),
        ("GM0363", "GM0363"),  # unknown: itself
    ],
)
def test_merger_table(muni: Municipalities, old: str, current: str) -> None:
    assert muni.current_code(old) == current


def test_current_code_of_nonsense_raises(muni: Municipalities) -> None:
    assert muni.current_code(None) is None
    with pytest.raises(AddressError):
        muni.current_code("Groningen")


@pytest.mark.parametrize(
    ("bag_id", "code", "group"),
    [
        ("0003200000123456", "GM1979", "EEMSDELTA"),  # Appingedam id -> Eemsdelta
        ("0017200000000001", "GM0014", "GRONINGEN"),  # Haren
        ("1987100000000001", "GM1952", "MIDDEN_GRONINGEN"),  # Menterwolde pand
        ("0014200000000001", "GM0014", "GRONINGEN"),
        ("0056200000000001", "GM1969", "REGIONAL"),  # Zuidhorn -> Westerkwartier
        ("0363200000000001", "GM0363", "UNASSIGNED"),
    ],
)
def test_bag_id_prefix_through_mergers(
    muni: Municipalities, bag_id: str, code: str, group: str
) -> None:
    assert muni.code_from_bag_id(bag_id) == code
    assert muni.steering_group(muni.code_from_bag_id(bag_id)) == group


def test_names(muni: Municipalities) -> None:
    assert muni.name("GM1979") == "Eemsdelta"
    assert muni.name("GM0003") == "Appingedam"
    assert muni.name(None) is None


def _data() -> dict:
    with default_reference_path().open("rb") as fh:
        return tomllib.load(fh)


def test_assen_out_of_scope_is_configuration(tmp_path: Path) -> None:
    data = _data()
    for m in data["municipalities"]:
        if m["code"] == "GM0106":
            m["in_scope"] = False
    muni = Municipalities(ReferenceConfig.model_validate(data))
    assert muni.steering_group("GM0106") == "UNASSIGNED"
    assert muni.current_code("GM0106") == "GM0106"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["municipalities"][0].update(steering_group="EEMSDELTE"), "not declared"),
        (lambda d: d["municipalities"].append(dict(d["municipalities"][0])), "twice"),
        (lambda d: d["mergers"][0].update(into="GM9999"), "not a configured municipality"),
        (lambda d: d["mergers"][0]["from"].update(GM0014="Groningen"), "also a current"),
        (lambda d: d["mergers"][1]["from"].update(GM0003="Appingedam"), "two mergers"),
        (lambda d: d["municipalities"][0].update(code="1979"), "pattern"),
        (lambda d: d.update(regional_group="REGIO"), "not declared"),
        (lambda d: d.update(colour="blue"), "Extra inputs"),
    ],
)
def test_config_validation(mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    data = _data()
    mutate(data)
    with pytest.raises(ValidationError, match=message):
        ReferenceConfig.model_validate(data)


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    get_settings.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    get_settings.cache_clear()


def test_settings_reference_config_overrides_the_default(
    tmp_path: Path, settings_env: pytest.MonkeyPatch
) -> None:
    text = default_reference_path().read_text(encoding="utf-8")
    text = text.replace(
        'name = "Pekela"\nsteering_group = "REGIONAL"',
        'name = "Pekela"\nsteering_group = "OLDAMBT"',
    )
    custom = tmp_path / "reference.toml"
    custom.write_text(text, encoding="utf-8")
    settings_env.setenv("HUB_REFERENCE_CONFIG", str(custom))
    assert load_municipalities().steering_group("GM0765") == "OLDAMBT"
    assert load_municipalities(default_reference_path()).steering_group("GM0765") == "REGIONAL"
