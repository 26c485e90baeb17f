"""File import (``hub ingest``) against the real broker: what is published, what is rejected and
how, the reject file and summary, and the exit codes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import typer
from typer.testing import CliRunner

from connectors.cli_ingest import register
from connectors.files import CSV_COLUMNS, ingest_files
from hub.contracts.decode import CaseEvent, decode_case_event, parse_case_event_json
from hub.settings import Settings
from tests.integration.kafka_helpers import consume, published_count, sample, wait_for_leaders


def write_jsonl(path: Path, lines: list[str | dict[str, Any]]) -> Path:
    path.write_text(
        "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    )
    return path


def cli() -> typer.Typer:
    app = typer.Typer()
    register(app, settings_factory=Settings)

    @app.callback()
    def main() -> None:
        """Test app: keeps ``ingest`` a subcommand."""

    return app


@pytest.fixture
def topic(broker: str, topic_factory: Callable[..., str]) -> str:
    name = topic_factory("case-events", partitions=3)
    wait_for_leaders(broker, name)
    return name


def read_rejects(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_valid_jsonl_is_published_as_avro_keyed_by_case_id_and_exits_0(
    broker: str, topic: str, tmp_path: Path
) -> None:
    events = [sample(event_id=f"e{i}", case_id=f"C-{i % 2}") for i in range(4)]
    path = write_jsonl(tmp_path / "ncg.jsonl", events)

    result = CliRunner().invoke(cli(), ["ingest", str(path), "--topic", topic, "--no-progress"])

    assert result.exit_code == 0, result.output
    messages = consume(broker, topic, 4)
    by_id: dict[str, tuple[bytes, Any]] = {}
    for message in messages:
        event = decode_case_event(message.value())
        assert isinstance(event, CaseEvent)
        by_id[event.event_id] = (message.key(), event)
    assert sorted(by_id) == ["e0", "e1", "e2", "e3"]
    for raw in events:
        key, event = by_id[raw["event_id"]]
        assert key == raw["case_id"].encode()
        assert event == parse_case_event_json(raw)
    summary = json.loads((tmp_path / "ncg.jsonl.summary.json").read_text())
    assert summary["accepted"] == 4
    assert summary["published"] == 4
    assert summary["rejected"] == 0
    assert summary["delivery_failed"] == 0
    assert summary["duration_s"] >= 0
    assert (tmp_path / "ncg.jsonl.rejects.jsonl").read_text() == ""


def test_malformed_and_invalid_lines_are_rejected_with_line_field_reason_and_exit_2(
    broker: str, topic: str, tmp_path: Path
) -> None:
    bad_postcode = sample(event_id="e3")
    bad_postcode["address"]["postcode"] = "SS12"
    no_type = sample(event_id="e5")
    del no_type["case_type"]
    path = write_jsonl(
        tmp_path / "mixed.jsonl",
        [sample(event_id="e1"), "{not json", bad_postcode, "", no_type, sample(event_id="e6")],
    )

    result = CliRunner().invoke(cli(), ["ingest", str(path), "--topic", topic, "--no-progress"])

    assert result.exit_code == 2, result.output
    assert f"{path}:2: UNDECODABLE" in result.output
    assert f"{path}:3: INVALID_FIELD [address.postcode]" in result.output
    assert f"{path}:5: MISSING_FIELD [case_type]" in result.output
    rejects = read_rejects(tmp_path / "mixed.jsonl.rejects.jsonl")
    assert [(r["line"], r["field"], r["reason"]) for r in rejects] == [
        (2, None, "UNDECODABLE"),
        (3, "address.postcode", "INVALID_FIELD"),
        (5, "case_type", "MISSING_FIELD"),
    ]
    assert rejects[0]["raw"] == "{not json"
    assert json.loads(rejects[1]["raw"])["event_id"] == "e3"
    summary = json.loads((tmp_path / "mixed.jsonl.summary.json").read_text())
    assert summary["records"] == 5  # the blank line is not a record
    assert summary["accepted"] == 2
    assert summary["rejected"] == 3
    assert summary["rejected_by_reason"] == {
        "UNDECODABLE": 1,
        "INVALID_FIELD": 1,
        "MISSING_FIELD": 1,
    }
    assert summary["published"] == 2
    ids = sorted(decode_case_event(m.value()).event_id for m in consume(broker, topic, 2))
    assert ids == ["e1", "e6"]
    assert published_count(broker, topic) == 2


def csv_text(rows: list[dict[str, str]], columns: tuple[str, ...] = CSV_COLUMNS) -> str:
    import csv
    import io

    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def csv_row(**changes: str) -> dict[str, str]:
    row = {
        "event_id": "csv-1",
        "source": "IMG",
        "source_org": "IMG",
        "case_id": "IMG-77",
        "case_type": "DAMAGE",
        "status": "DECIDED",
        "occurred_at": "2024-05-01T10:00:00+02:00",
        "postcode": "9711 AB",
        "huisnummer": "12",
        "huisletter": "A",
        "huisnummertoevoeging": "",
        "nummeraanduiding_id": "0014200000123456",
        "pand_id": "0014100000654321",
        "gemeentecode": "GM0014",
        "planned_start": "2024-09-01",
        "planned_end": "2025-01-31",
        "contact_name": "J. de Vries, bewoner",
        "contact_role": "CASE_COUNSELLOR",
        "contact_phone": "+31 50 123 4567",
        "contact_email": "j.devries@example.nl",
        "amount_eur": "1250.50",
        "attributes": '{"phase": "5"}',
    }
    row.update(changes)
    return row


def test_csv_columns_map_onto_the_case_event_contract(
    broker: str, topic: str, tmp_path: Path
) -> None:
    path = tmp_path / "img.csv"
    path.write_text(csv_text([csv_row()]))

    report = ingest_files([path], Settings(), topic=topic, progress=False)

    assert report.exit_code == 0
    [message] = consume(broker, topic, 1)
    event = decode_case_event(message.value())
    assert isinstance(event, CaseEvent)
    assert message.key() == b"IMG-77"
    expected = {
        "event_id": "csv-1",
        "source": "IMG",
        "source_org": "IMG",
        "case_id": "IMG-77",
        "case_type": "DAMAGE",
        "status": "DECIDED",
        "occurred_at": "2024-05-01T10:00:00+02:00",
        "address": {
            "postcode": "9711 AB",
            "huisnummer": 12,
            "huisletter": "A",
            "nummeraanduiding_id": "0014200000123456",
            "pand_id": "0014100000654321",
            "gemeentecode": "GM0014",
        },
        "planned_start": "2024-09-01",
        "planned_end": "2025-01-31",
        "contact": {
            "name": "J. de Vries, bewoner",
            "role": "CASE_COUNSELLOR",
            "phone": "+31 50 123 4567",
            "email": "j.devries@example.nl",
        },
        "amount_eur": "1250.50",
        "attributes": {"phase": "5"},
    }
    assert event == parse_case_event_json(expected)


def test_csv_bad_rows_are_rejected_by_physical_line_and_column(
    broker: str, topic: str, tmp_path: Path
) -> None:
    text = csv_text(
        [
            csv_row(event_id="ok-1", contact_name="line one\nline two"),  # lines 2-3
            csv_row(event_id="bad-role", contact_role="BOSS"),  # line 4
            csv_row(event_id="bad-attrs", attributes="[1, 2]"),  # line 5
            csv_row(event_id="bad-date", occurred_at="2024-05-01 10:00"),  # line 6
            csv_row(
                event_id="ok-2",
                contact_name="",
                contact_role="",
                contact_phone="",
                contact_email="",
                attributes="",
            ),  # line 7
        ]
    )
    text += "short,row,only\n"  # line 8
    path = tmp_path / "rows.csv"
    path.write_bytes(text.encode() + b"x-9,IMG,\xff\xfe" + b"," * 19 + b"\n")  # line 9

    result = CliRunner().invoke(cli(), ["ingest", str(path), "--topic", topic, "--no-progress"])

    assert result.exit_code == 2, result.output
    rejects = read_rejects(tmp_path / "rows.csv.rejects.jsonl")
    assert [(r["line"], r.get("column"), r["reason"]) for r in rejects] == [
        (4, "contact_role", "INVALID_FIELD"),
        (5, "attributes", "INVALID_FIELD"),
        (6, "occurred_at", "INVALID_FIELD"),
        (8, None, "UNDECODABLE"),
        (9, None, "UNDECODABLE"),
    ]
    assert rejects[0]["field"] == "contact.role"
    assert rejects[0]["raw"].startswith("bad-role,IMG,")
    assert "3 values" in rejects[3]["message"]
    assert "UTF-8" in rejects[4]["message"]
    assert f"{path}:4: INVALID_FIELD [contact_role]" in result.output
    ids = sorted(decode_case_event(m.value()).event_id for m in consume(broker, topic, 2))
    assert ids == ["ok-1", "ok-2"]
    assert published_count(broker, topic) == 2
    summary = json.loads((tmp_path / "rows.csv.summary.json").read_text())
    assert (summary["accepted"], summary["rejected"], summary["published"]) == (2, 5, 2)


def test_csv_with_semicolons_and_a_subset_of_columns_is_accepted(
    broker: str, topic: str, tmp_path: Path
) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(
        "\ufeffevent_id;source;case_id;case_type;status;occurred_at;postcode;huisnummer\n"
        "m-1;MUNICIPALITY;Z-1;PERMIT;OPENED;2024-05-01T10:00:00+02:00;9711AB;3\n".encode()
    )

    report = ingest_files([path], Settings(), topic=topic, progress=False)

    assert (report.exit_code, report.accepted, report.published) == (0, 1, 1)


def test_csv_with_unknown_column_is_refused_whole(broker: str, topic: str, tmp_path: Path) -> None:
    path = tmp_path / "typo.csv"
    columns = (*CSV_COLUMNS, "postcod")
    path.write_text(csv_text([{**csv_row(), "postcod": "x"}], columns))

    report = ingest_files([path], Settings(), topic=topic, progress=False)

    assert report.exit_code == 2
    [reject] = read_rejects(tmp_path / "typo.csv.rejects.jsonl")
    assert (reject["line"], reject["field"], reject["reason"]) == (1, "postcod", "UNDECODABLE")
    assert report.accepted == 0
    assert published_count(broker, topic) == 0


def test_dry_run_validates_and_publishes_nothing(broker: str, topic: str, tmp_path: Path) -> None:
    good = write_jsonl(tmp_path / "good.jsonl", [sample(event_id="d1"), sample(event_id="d2")])
    mixed = write_jsonl(tmp_path / "mixed.jsonl", [sample(event_id="d3"), "[]"])

    ok = CliRunner().invoke(
        cli(), ["ingest", str(good), "--dry-run", "--topic", topic, "--no-progress"]
    )
    bad = CliRunner().invoke(
        cli(), ["ingest", str(good), str(mixed), "--dry-run", "--topic", topic, "--no-progress"]
    )

    assert ok.exit_code == 0, ok.output
    assert bad.exit_code == 2, bad.output
    assert "dry run, nothing published" in ok.output
    summary = json.loads((tmp_path / "mixed.jsonl.summary.json").read_text())
    assert summary["dry_run"] is True
    assert (summary["accepted"], summary["rejected"], summary["published"]) == (1, 1, 0)
    assert published_count(broker, topic) == 0


def test_missing_topic_exits_1_and_publishes_nothing(
    broker: str, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [sample()])
    missing = unique_name("never-created")

    result = CliRunner().invoke(cli(), ["ingest", str(path), "--topic", missing, "--no-progress"])

    assert result.exit_code == 1
    assert "does not exist" in result.output
    assert not (tmp_path / "a.jsonl.summary.json").exists()


def test_unreachable_broker_is_exit_code_1(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [sample()])

    report = ingest_files(
        [path], Settings(broker="127.0.0.1:1"), progress=False, metadata_timeout=2.0
    )

    assert report.exit_code == 1
    assert report.broker_error is not None and "not reachable" in report.broker_error
    assert report.published == 0


def test_missing_input_file_exits_3_before_publishing(
    broker: str, topic: str, tmp_path: Path
) -> None:
    good = write_jsonl(tmp_path / "good.jsonl", [sample()])

    result = CliRunner().invoke(
        cli(),
        ["ingest", str(good), str(tmp_path / "nope.jsonl"), "--topic", topic, "--no-progress"],
    )

    assert result.exit_code == 3
    assert "no such file" in result.output
    assert published_count(broker, topic) == 0


def test_rejects_never_echo_contact_values_in_messages(
    broker: str, topic: str, tmp_path: Path
) -> None:
    event = sample()
    event["contact"]["email"] = "x" * 300 + "@example.nl"  # too long
    path = write_jsonl(tmp_path / "p.jsonl", [event])

    result = CliRunner().invoke(cli(), ["ingest", str(path), "--topic", topic, "--no-progress"])

    assert result.exit_code == 2
    [reject] = read_rejects(tmp_path / "p.jsonl.rejects.jsonl")
    assert reject["field"] == "contact.email"
    assert "example.nl" not in reject["message"]
    assert "example.nl" not in result.output
    assert orjson.loads(reject["raw"])["contact"]["email"].endswith("@example.nl")
