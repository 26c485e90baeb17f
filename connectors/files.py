"""File import: JSON Lines and CSV exports of CaseEvents onto the case-events topic.

Agencies rarely run Kafka producers; they export files. Each record is validated with the same
rules as every other way in (:func:`connectors.edge_checks.check_case_event`: the contract and
the ingest stage's address normalisation, so a record the hub would dead-letter later is a
reject line now), valid ones are
published as Avro (the hub's framing) keyed by ``case_id`` so one case's events stay in order on
one partition, and every refused record is written, with its line number, field and reason, to
``FILE.rejects.jsonl`` next to the input, so the agency can fix and resend exactly those.
A ``FILE.summary.json`` holds the counts. See docs/connectors.md for the CSV layout.

Records are streamed (a file is never held in memory) and published while reading; the producer
is the shared idempotent, acks=all, murmur2 one (:func:`hub.pipeline.clients.producer_config`).
Nothing personal is logged: rejection messages never echo contact data or attributes, and raw
lines go only to the rejects file, which sits next to an input that already holds them.
"""

from __future__ import annotations

import csv
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson

from connectors.edge_checks import check_case_event
from hub.contracts.decode import Rejection, encode_case_event
from hub.contracts.enums import RejectReason
from hub.contracts.events import CaseEvent
from hub.settings import Settings

log = logging.getLogger(__name__)

FileFormat = Literal["jsonl", "csv"]

#: The CSV column layout (header row required; order free; names case-insensitive).
CSV_COLUMNS: tuple[str, ...] = (
    "event_id",
    "source",
    "source_org",
    "case_id",
    "case_type",
    "status",
    "occurred_at",
    "postcode",
    "huisnummer",
    "huisletter",
    "huisnummertoevoeging",
    "nummeraanduiding_id",
    "pand_id",
    "gemeentecode",
    "planned_start",
    "planned_end",
    "contact_name",
    "contact_role",
    "contact_phone",
    "contact_email",
    "amount_eur",
    "attributes",
)
CSV_REQUIRED: frozenset[str] = frozenset(
    {"event_id", "source", "case_id", "case_type", "status", "occurred_at"}
)
_ADDRESS_COLUMNS = (
    "postcode",
    "huisnummer",
    "huisletter",
    "huisnummertoevoeging",
    "nummeraanduiding_id",
    "pand_id",
    "gemeentecode",
)
_CONTACT_COLUMNS = ("contact_name", "contact_role", "contact_phone", "contact_email")
_TOP_COLUMNS = tuple(c for c in CSV_COLUMNS if c not in _ADDRESS_COLUMNS + _CONTACT_COLUMNS)
#: Contract field path -> CSV column, so CSV rejects name the column the agency can fix.
_FIELD_TO_COLUMN: dict[str, str] = {
    **{f"address.{c}": c for c in _ADDRESS_COLUMNS},
    **{f"contact.{c.removeprefix('contact_')}": c for c in _CONTACT_COLUMNS},
}

EXIT_OK = 0
EXIT_BROKER = 1
EXIT_REJECTED = 2
EXIT_INPUT = 3

#: Delivery timeout of the file producer: a dead broker fails the run in a minute, not in five.
MESSAGE_TIMEOUT_MS = 60_000
#: How long a target topic may take to appear in the metadata before it counts as missing.
TOPIC_WAIT_S = 3.0
_SAMPLE_REJECTS = 100
_PROGRESS_EVERY = 500


class BrokerUnavailable(RuntimeError):
    """The broker did not answer or the target topic does not exist: nothing was published."""


@dataclass(frozen=True, slots=True)
class RejectedLine:
    """One refused record: where it was, which field broke which rule, and the raw text."""

    line: int
    reason: str
    field: str | None
    message: str
    raw: str
    column: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "line": self.line,
            "field": self.field,
            "reason": self.reason,
            "message": self.message,
        }
        if self.column is not None:
            out["column"] = self.column
        out["raw"] = self.raw
        return out


@dataclass
class FileReport:
    """Counts for one input file (also written as ``FILE.summary.json``)."""

    path: Path
    format: FileFormat
    dry_run: bool
    topic: str | None
    records: int = 0
    accepted: int = 0
    rejected: int = 0
    published: int = 0
    delivery_failed: int = 0
    delivery_error: str | None = None
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    rejected_by_field: Counter[str] = field(default_factory=Counter)
    sample_rejects: list[RejectedLine] = field(default_factory=list)
    csv_header: list[str] | None = None
    started_at: str = ""
    duration_s: float = 0.0

    @property
    def rejects_path(self) -> Path:
        return self.path.with_name(self.path.name + ".rejects.jsonl")

    @property
    def summary_path(self) -> Path:
        return self.path.with_name(self.path.name + ".summary.json")

    def reject(self, item: RejectedLine) -> None:
        self.rejected += 1
        self.rejected_by_reason[str(item.reason)] += 1
        self.rejected_by_field[item.column or item.field or "-"] += 1
        if len(self.sample_rejects) < _SAMPLE_REJECTS:
            self.sample_rejects.append(item)

    def on_delivery(self, err: Any, msg: Any) -> None:
        """confluent-kafka delivery callback: count broker acknowledgements and failures."""
        if err is None:
            self.published += 1
        else:
            self.delivery_failed += 1
            if self.delivery_error is None:
                self.delivery_error = str(err)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "file": str(self.path),
            "format": self.format,
            "dry_run": self.dry_run,
            "topic": self.topic,
            "records": self.records,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "rejected_by_reason": dict(self.rejected_by_reason.most_common()),
            "rejected_by_field": dict(self.rejected_by_field.most_common()),
            "published": self.published,
            "delivery_failed": self.delivery_failed,
            "delivery_error": self.delivery_error,
            "rejects_file": str(self.rejects_path),
            "started_at": self.started_at,
            "duration_s": round(self.duration_s, 3),
        }
        if self.csv_header is not None:
            out["csv_header"] = self.csv_header
        return out


@dataclass
class IngestReport:
    """The outcome of one ``hub ingest`` run over one or more files."""

    files: list[FileReport] = field(default_factory=list)
    dry_run: bool = False
    topic: str | None = None
    broker_error: str | None = None
    duration_s: float = 0.0

    @property
    def accepted(self) -> int:
        return sum(f.accepted for f in self.files)

    @property
    def rejected(self) -> int:
        return sum(f.rejected for f in self.files)

    @property
    def published(self) -> int:
        return sum(f.published for f in self.files)

    @property
    def delivery_failed(self) -> int:
        return sum(f.delivery_failed for f in self.files)

    @property
    def exit_code(self) -> int:
        """1 when the broker failed us (it is the worse news), else 2 when anything was
        rejected, else 0."""
        if self.broker_error is not None or self.delivery_failed:
            return EXIT_BROKER
        if self.rejected:
            return EXIT_REJECTED
        return EXIT_OK


# ------------------------------------------------------------------------------------ reading


def detect_format(path: Path) -> FileFormat:
    """By suffix (.jsonl/.ndjson/.json, .csv); otherwise a file starting with ``{`` is JSONL."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    with path.open("rb") as fh:
        head = fh.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    return "jsonl" if head.startswith(b"{") else "csv"


@dataclass(frozen=True, slots=True)
class _Record:
    """A record read from a file: its first line, raw text, and a parsed CaseEvent/Rejection."""

    line: int
    raw: str
    result: CaseEvent | Rejection
    csv: bool = False


def _raw_text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace").rstrip("\r\n")


def _read_jsonl(path: Path, advance: Callable[[int], None]) -> Iterator[_Record]:
    with path.open("rb") as fh:
        for number, line in enumerate(fh, start=1):
            advance(len(line))
            if number == 1:
                line = line.removeprefix(b"\xef\xbb\xbf")
            if not line.strip():
                continue
            yield _Record(number, _raw_text(line), check_case_event(line))


def _structural(message: str, field: str | None = None) -> Rejection:
    return Rejection(RejectReason.UNDECODABLE, field, message, "decode", "ValueError")


def _cell(value: str) -> str | None:
    value = value.strip()
    return value or None


def csv_row_to_json(row: dict[str, str]) -> dict[str, Any] | Rejection:
    """One CSV row (column -> text) into the CaseEvent JSON shape; blanks are absent values."""
    obj: dict[str, Any] = {}
    for column in _TOP_COLUMNS:
        value = _cell(row.get(column, ""))
        if value is not None:
            obj[column] = value
    address: dict[str, Any] = {}
    for column in _ADDRESS_COLUMNS:
        value = _cell(row.get(column, ""))
        if value is not None:
            address[column] = value
    if isinstance(address.get("huisnummer"), str) and address["huisnummer"].isdigit():
        address["huisnummer"] = int(address["huisnummer"])
    obj["address"] = address
    contact = {
        column.removeprefix("contact_"): value
        for column in _CONTACT_COLUMNS
        if (value := _cell(row.get(column, ""))) is not None
    }
    if contact:
        obj["contact"] = contact
    attributes = obj.pop("attributes", None)
    if attributes is not None:
        try:
            parsed = orjson.loads(attributes)
        except orjson.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, dict):
            return Rejection(
                RejectReason.INVALID_FIELD,
                "attributes",
                'attributes: must be a JSON object of strings, e.g. {"phase": "5"}',
                "validate",
                "ValueError",
            )
        obj["attributes"] = parsed
    return obj


def _read_csv(path: Path, advance: Callable[[int], None], report: FileReport) -> Iterator[_Record]:
    """Stream CSV records with their first line number and exact raw text (quoted fields may
    span lines). Bytes that are not UTF-8 reject the record, not the file."""
    consumed: list[str] = []
    counter = {"line": 0}

    def lines(fh: Any) -> Iterator[str]:
        for raw in fh:
            advance(len(raw))
            counter["line"] += 1
            if counter["line"] == 1:
                raw = raw.removeprefix(b"\xef\xbb\xbf")
            text = raw.decode("utf-8", errors="surrogateescape")
            consumed.append(text)
            yield text

    with path.open("rb") as fh:
        source = lines(fh)
        first = next(source, None)
        if first is None:
            return
        consumed.clear()
        delimiter = ";" if first.count(";") > first.count(",") else ","
        header = [h.strip().lower() for h in next(csv.reader([first], delimiter=delimiter))]
        report.csv_header = header
        problem = _check_header(header)
        if problem is not None:
            yield _Record(1, first.rstrip("\r\n"), problem, csv=True)
            return
        reader = csv.reader(source, delimiter=delimiter)
        while True:
            start = counter["line"] + 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raw = "".join(consumed).rstrip("\r\n")
                consumed.clear()
                yield _Record(start, raw, _structural(f"not valid CSV: {exc}"), csv=True)
                continue
            raw = "".join(consumed)
            consumed.clear()
            if not cells or all(not c.strip() for c in cells):
                continue
            shown = raw.rstrip("\r\n")
            try:
                raw.encode("utf-8")  # undecodable bytes were kept as lone surrogates
            except UnicodeEncodeError:
                shown = shown.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
                yield _Record(start, shown, _structural("not UTF-8 text"), csv=True)
                continue
            if len(cells) != len(header):
                message = f"row has {len(cells)} values, the header has {len(header)} columns"
                yield _Record(start, shown, _structural(message), csv=True)
                continue
            obj = csv_row_to_json(dict(zip(header, cells, strict=True)))
            result = obj if isinstance(obj, Rejection) else check_case_event(obj)
            yield _Record(start, shown, result, csv=True)


def _check_header(header: list[str]) -> Rejection | None:
    unknown = [h for h in header if h not in CSV_COLUMNS]
    if unknown:
        return _structural(f"unknown column {unknown[0]!r} (see docs/connectors.md)", unknown[0])
    duplicate = [h for h, n in Counter(header).items() if n > 1]
    if duplicate:
        return _structural(f"column {duplicate[0]!r} appears twice", duplicate[0])
    missing = sorted(CSV_REQUIRED - set(header))
    if missing:
        return Rejection(
            RejectReason.MISSING_FIELD,
            missing[0],
            f"header lacks required column(s): {', '.join(missing)}",
            "decode",
            "ValueError",
        )
    return None


# --------------------------------------------------------------------------------- publishing


class _Publisher:
    """A confluent-kafka producer that checks the broker and topic before the first record."""

    def __init__(self, settings: Settings, topic: str, timeout: float) -> None:
        from confluent_kafka import KafkaException, Producer

        from hub.pipeline.clients import producer_config

        self.topic = topic
        config = producer_config(
            settings,
            **{"message.timeout.ms": MESSAGE_TIMEOUT_MS, "allow.auto.create.topics": False},
        )
        self.producer = Producer(config)
        # A topic created a moment ago may not be in the broker's metadata yet: look again
        # briefly before calling it missing.
        deadline = time.monotonic() + TOPIC_WAIT_S
        while True:
            try:
                metadata = self.producer.list_topics(timeout=timeout)
            except KafkaException as exc:
                raise BrokerUnavailable(f"broker {settings.broker} not reachable: {exc}") from exc
            if topic in metadata.topics:
                return
            if time.monotonic() >= deadline:
                raise BrokerUnavailable(
                    f"topic {topic!r} does not exist on {settings.broker} (run `hub topics`)"
                )
            time.sleep(0.25)

    def publish(self, event: CaseEvent, on_delivery: Callable[[Any, Any], None]) -> None:
        value = encode_case_event(event)
        key = event.case_id.encode()
        while True:
            try:
                self.producer.produce(self.topic, value=value, key=key, on_delivery=on_delivery)
                break
            except BufferError:  # local queue full: let deliveries drain, then retry
                self.producer.poll(0.5)
        self.producer.poll(0)

    def flush(self) -> int:
        """Wait for every outstanding delivery report; return the number still unacknowledged."""
        deadline = time.monotonic() + MESSAGE_TIMEOUT_MS / 1000 + 15
        remaining = self.producer.flush(max(0.0, deadline - time.monotonic()))
        while remaining and time.monotonic() < deadline:
            remaining = self.producer.flush(1.0)
        return int(remaining)


# ------------------------------------------------------------------------------------ driving


def _make_progress(enabled: bool) -> Any:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TextColumn("{task.fields[records]} records, {task.fields[rejected]} rejected"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not enabled,
        transient=False,
    )


def _ingest_one(
    path: Path,
    report: FileReport,
    publisher: _Publisher | None,
    progress: Any,
) -> None:
    task = progress.add_task(path.name, total=path.stat().st_size or None, records=0, rejected=0)
    pending = 0

    def advance(n: int) -> None:
        nonlocal pending
        pending += n

    records: Iterator[_Record] = (
        _read_csv(path, advance, report) if report.format == "csv" else _read_jsonl(path, advance)
    )
    with report.rejects_path.open("wb") as rejects:
        for record in records:
            report.records += 1
            result = record.result
            if isinstance(result, Rejection):
                column = None
                if record.csv and result.field is not None:
                    column = _FIELD_TO_COLUMN.get(result.field, result.field)
                item = RejectedLine(
                    record.line,
                    str(result.reason_code),
                    result.field,
                    result.message,
                    record.raw,
                    column,
                )
                report.reject(item)
                rejects.write(orjson.dumps(item.to_json()) + b"\n")
            else:
                report.accepted += 1
                if publisher is not None:
                    publisher.publish(result, report.on_delivery)
            if report.records % _PROGRESS_EVERY == 0:
                progress.update(
                    task, advance=pending, records=report.records, rejected=report.rejected
                )
                pending = 0
    progress.update(task, advance=pending, records=report.records, rejected=report.rejected)
    if publisher is not None:
        unacknowledged = publisher.flush()
        if unacknowledged:
            report.delivery_failed += unacknowledged
            report.delivery_error = report.delivery_error or "delivery not acknowledged in time"


def ingest_files(
    paths: Sequence[Path | str],
    settings: Settings,
    dry_run: bool = False,
    topic: str | None = None,
    progress: bool = True,
    *,
    metadata_timeout: float = 10.0,
) -> IngestReport:
    """Validate and publish CaseEvent files; write ``FILE.rejects.jsonl`` and
    ``FILE.summary.json`` next to each input and return the counts.

    Raises ``FileNotFoundError``/``IsADirectoryError`` before anything is read when an input is
    missing. A broker that is down or a topic that is missing is reported in
    ``IngestReport.broker_error`` (nothing is published then); after delivery failures in one
    file the remaining files are not read, so a dying broker does not pile up timeouts.
    """
    from hub.pipeline.topics import Topics

    files = [Path(p) for p in paths]
    for path in files:
        if not path.exists():
            raise FileNotFoundError(f"no such file: {path}")
        if not path.is_file():
            raise IsADirectoryError(f"not a file: {path}")
    target = topic or Topics.from_settings(settings).case_events
    report = IngestReport(dry_run=dry_run, topic=target)
    started = time.monotonic()
    publisher: _Publisher | None = None
    if not dry_run:
        try:
            publisher = _Publisher(settings, target, metadata_timeout)
        except BrokerUnavailable as exc:
            report.broker_error = str(exc)
            log.info("file ingest: broker unavailable", extra={"topic": target})
            return report
    with _make_progress(progress) as bar:
        for path in files:
            file_report = FileReport(
                path=path,
                format=detect_format(path),
                dry_run=dry_run,
                topic=target,
                started_at=datetime.now(UTC).isoformat(timespec="seconds"),
            )
            t0 = time.monotonic()
            try:
                _ingest_one(path, file_report, publisher, bar)
            finally:
                file_report.duration_s = time.monotonic() - t0
                report.files.append(file_report)
                _write_summary(file_report)
            log.info(
                "file ingested",
                extra={
                    "file": path.name,
                    "records": file_report.records,
                    "accepted": file_report.accepted,
                    "rejected": file_report.rejected,
                    "published": file_report.published,
                    "delivery_failed": file_report.delivery_failed,
                    "dry_run": dry_run,
                },
            )
            if file_report.delivery_failed:
                report.broker_error = (
                    f"{file_report.delivery_failed} event(s) of {path.name} not acknowledged: "
                    f"{file_report.delivery_error}"
                )
                break
    report.duration_s = time.monotonic() - started
    return report


def _write_summary(report: FileReport) -> None:
    tmp = report.summary_path.with_name(report.summary_path.name + ".tmp")
    tmp.write_bytes(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2) + b"\n")
    os.replace(tmp, report.summary_path)
