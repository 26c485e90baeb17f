"""File import runs the ingest stage's address normalisation too: a record the hub would
dead-letter later (issue 12, D8e) is a reject line naming the field, not a silent dead letter."""

from __future__ import annotations

from pathlib import Path

import orjson

from connectors.files import ingest_files
from hub.settings import Settings
from tests.integration.kafka_helpers import sample


def test_an_address_the_ingest_stage_would_refuse_is_a_reject_line_naming_the_field(
    tmp_path: Path,
) -> None:
    good = sample(event_id="good")
    bad_letter = sample(event_id="bad-letter")
    bad_letter["address"]["huisletter"] = "AB"
    csv = tmp_path / "img.csv"
    csv.write_text(
        "event_id,source,case_id,case_type,status,occurred_at,postcode,huisnummer,"
        "huisnummertoevoeging\n"
        "c1,IMG,IMG-1,DAMAGE,OPENED,2024-05-01T10:00:00+02:00,9711AB,12,TOOLONG\n"
    )
    jsonl = tmp_path / "ncg.jsonl"
    jsonl.write_bytes(orjson.dumps(good) + b"\n" + orjson.dumps(bad_letter) + b"\n")

    report = ingest_files([jsonl, csv], Settings(), dry_run=True, progress=False)

    rejects = {
        path.name: [
            orjson.loads(line)
            for line in path.with_name(path.name + ".rejects.jsonl").read_bytes().splitlines()
        ]
        for path in (jsonl, csv)
    }
    assert [(r["line"], r["field"], r["reason"]) for r in rejects["ncg.jsonl"]] == [
        (2, "address.huisletter", "INVALID_ADDRESS")
    ]
    [csv_reject] = rejects["img.csv"]
    assert (csv_reject["field"], csv_reject["column"]) == (
        "address.huisnummertoevoeging",
        "huisnummertoevoeging",
    )
    assert report.exit_code == 2
