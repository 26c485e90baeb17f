"""The Faust codecs read and write hub records by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hub.contracts.codec import AvroCodec, DecodeError, EncodeError

codecs = pytest.importorskip("faust.serializers.codecs")
faust_codec = pytest.importorskip("hub.pipeline.faust_codec")

SAMPLES = json.loads(
    (Path(__file__).resolve().parents[1] / "fixtures" / "contracts" / "samples.json").read_text()
)


def test_named_codec_round_trips_an_alert_and_ignores_faust_metadata() -> None:
    alert = dict(SAMPLES["Alert"], __faust={"ns": "hub.Alert"})
    raw = codecs.dumps("hub_avro_alert", alert)
    assert raw[:2] == b"\xc3\x01"
    back = codecs.loads("hub_avro_alert", raw)
    assert back["fingerprint"] == alert["fingerprint"] and "__faust" not in back


def test_generic_codec_recognises_the_record_type() -> None:
    for name in ("Alert", "AddressDossier"):
        raw = codecs.dumps("hub_avro", SAMPLES[name])
        assert AvroCodec().decode(raw)[0] == name


def test_named_codec_refuses_another_record_type() -> None:
    raw = codecs.dumps("hub_avro", SAMPLES["Alert"])
    with pytest.raises(DecodeError):
        codecs.loads("hub_avro_addressdossier", raw)


def test_generic_codec_refuses_what_it_cannot_recognise() -> None:
    with pytest.raises(EncodeError):
        codecs.dumps("hub_avro", {"what": "is this"})
