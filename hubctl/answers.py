"""The answer commands of the ``hub`` CLI: ``alerts``, ``dossier``, ``dlq list|replay``, ``status``.

Wiring: ``hubctl.main`` calls :func:`register` on its typer app. Every command builds a fresh
``Settings()`` (not the cached ``get_settings()``) so ``HUB_*`` variables set by a caller or a
test runner take effect. Output goes to the operator's terminal, which may show contact data of
a dossier; nothing here logs. Exit code 1 when the answer cannot be given (broker unreachable,
topic missing, address not found or unreadable).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from functools import wraps
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hub import answers
from hub.address.normalise import AddressError
from hub.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])


def _console() -> Console:
    # Created per call: it must write to the sys.stdout of this moment (CliRunner swaps it).
    return Console(highlight=False, soft_wrap=False)


def _echo_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, ensure_ascii=False))


def _answers_errors(func: F) -> F:
    """Turn expected failures into one clear line on stderr and exit code 1."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except answers.NotFound as exc:
            hint = f"; did you mean {', '.join(exc.suggestions)}?" if exc.suggestions else ""
            typer.echo(f"not found: {exc}{hint}", err=True)
            raise typer.Exit(1) from exc
        except AddressError as exc:
            typer.echo(f"cannot read the address: {exc.reason}", err=True)
            raise typer.Exit(1) from exc
        except answers.AnswerError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from exc

    return wrapper  # type: ignore[return-value]


# ----------------------------------------------------------------------------- rendering


def timeline_bar(
    start: str | None, end: str | None, lo: date | None, hi: date | None, width: int = 24
) -> str:
    """A text bar of a planned window within [lo, hi]: ``·····██████····``.

    An open end runs to the right edge as ``▒``; no window at all gives blanks.
    """
    s, e = _date(start), _date(end)
    if lo is None or hi is None or (s is None and e is None):
        return " " * width
    span = max((hi - lo).days, 1)

    def col(d: date) -> int:
        return min(width - 1, max(0, round((d - lo).days / span * (width - 1))))

    a = col(s) if s is not None else 0
    b = col(e) if e is not None else width - 1
    fill = "█" if s is not None and e is not None else "▒"
    return "".join(fill if a <= i <= b else "·" for i in range(width))


def _date(text: str | None) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _day(value: Any) -> str:
    """ISO timestamp (from :func:`answers.jsonable`) → ``YYYY-MM-DD HH:MM``."""
    if not value:
        return "-"
    return str(value).replace("T", " ")[:16]


def _lead_text(lead: dict[str, Any] | None) -> str:
    if not lead:
        return "-"
    role = f" ({lead['contact_role']})" if lead.get("contact_role") else ""
    return f"{lead['source']}/{lead['case_id']}{role}"


def _render_alerts(result: answers.AlertsAnswer) -> None:
    console = _console()
    table = Table(title="alerts and signals (latest version per fingerprint)", expand=False)
    for col in ("kind", "status", "v", "address / area", "steering group", "lead", "cases"):
        table.add_column(col, overflow="fold")
    for a in result.alerts:
        line = answers.alert_line(a)
        status = line["status"]
        table.add_row(
            escape(line["kind"]),
            f"[red]{status}[/]" if status == answers.FIRING else escape(status),
            str(line["version"]),
            escape(line["address_key"] or (f"area {line['area']}" if line["area"] else "-")),
            escape(line["steering_group"]),
            escape(_lead_text(line["lead"])),
            escape(", ".join(f"{c['source']}/{c['case_id']}" for c in line["cases"]) or "-"),
        )
    console.print(table)
    firing = sum(1 for a in result.alerts if a["status"] == answers.FIRING)
    summary = f"{len(result.alerts)} shown, {firing} firing"
    if result.undecodable:
        summary += f"; {result.undecodable} undecodable record(s) skipped"
    console.print(summary)


def render_dossier(view: dict[str, Any]) -> None:
    console = _console()
    ids = ", ".join(view["nummeraanduiding_ids"]) or "-"
    pands = ", ".join(view["pand_ids"]) or "-"
    console.print(f"[bold]Dossier {escape(view['address_key'])}[/]")
    console.print(
        f"  gemeente {escape(view['gemeentecode'] or '-')} · steering group "
        f"{escape(view['steering_group'])} · version {view['version']} · "
        f"updated {_day(view['updated_at'])}"
    )
    console.print(f"  nummeraanduiding {escape(ids)} · pand {escape(pands)}")
    lead = view["lead"]
    if lead:
        contact = " · ".join(
            escape(str(lead[k]))
            for k in ("contact_role", "contact_name", "contact_phone", "contact_email")
            if lead.get(k)
        )
        console.print(
            f"\n[bold]Lead contact[/]: {escape(lead['source'])} case {escape(lead['case_id'])}"
            f" ({escape(lead.get('case_type') or '?')})" + (f" — {contact}" if contact else "")
        )
    else:
        console.print("\n[bold]Lead contact[/]: none")

    dates = [
        d
        for c in view["cases"]
        for d in (_date(c["planned_start"]), _date(c["planned_end"]))
        if d is not None
    ]
    lo, hi = (min(dates), max(dates)) if dates else (None, None)
    title = "Cases per agency" + (f"  (timeline {lo} … {hi})" if lo else "")
    table = Table(title=title, title_justify="left", expand=False)
    for col in ("agency", "case", "type", "status", "window", "timeline", "last event"):
        table.add_column(col, overflow="fold")
    lead_ref = (lead["source"], lead["case_id"]) if lead else None
    previous = None
    for c in sorted(
        view["cases"], key=lambda c: (c["source"], c["planned_start"] or "9999", c["case_id"])
    ):
        window = f"{c['planned_start'] or '…'} → {c['planned_end'] or '…'}"
        if not c["planned_start"] and not c["planned_end"]:
            window = "no planned window"
        status = c["status"] if c["active"] else f"{c['status']} (closed)"
        marker = " ★" if (c["source"], c["case_id"]) == lead_ref else ""
        table.add_row(
            escape(c["source"]) if c["source"] != previous else "",
            escape(c["case_id"]) + marker,
            escape(c["case_type"]),
            escape(status),
            escape(window),
            timeline_bar(c["planned_start"], c["planned_end"], lo, hi),
            _day(c["occurred_at"]),
        )
        previous = c["source"]
    console.print(table)
    if lead_ref:
        console.print("  ★ lead case")

    alerts = view["alerts"]
    console.print(f"\n[bold]Firing alerts and signals[/]: {len(alerts) or 'none'}")
    for a in alerts:
        console.print(
            f"  [red]{escape(a['kind'])}[/] {escape(a['category'])} v{a['version']} since "
            f"{_day(a['starts_at'])} · {escape(a['steering_group'])} · {escape(a['fingerprint'])}"
        )
        cases = ", ".join(f"{c['source']}/{c['case_id']} ({c['status']})" for c in a["cases"])
        console.print(f"    cases: {escape(cases or '-')}")
        console.print(f"    events: {escape(', '.join(a['event_ids']) or '-')}")
        if a["detail"]:
            detail = ", ".join(f"{k}={v}" for k, v in a["detail"].items())
            console.print(f"    detail: {escape(detail)}")
        if a["lead"]:
            console.print(f"    lead: {escape(_lead_text(a['lead']))}")


def _render_dead_letters(
    shown: list[dict[str, Any]], total: int, counts: dict[str, int], show_payload: bool
) -> None:
    console = _console()
    table = Table(title="dead letters", title_justify="left", expand=False)
    cols = ["dlq offset", "rejected", "reason", "field", "message", "original"]
    if show_payload:
        cols += ["key", "payload"]
    for col in cols:
        table.add_column(col, overflow="fold")
    for d in shown:
        original = (
            f"{d['topic']}[{d['original_partition']}]@{d['original_offset']}"
            if d["topic"]
            else f"{d['origin']}/{d['stage']} {d['location'] or ''}".strip()
        )
        row = [
            f"{d['partition']}:{d['offset']}",
            _day(d["rejected_at"]),
            d["reason"],
            d["field"] or "-",
            d["message"],
            original,
        ]
        if show_payload:
            row += [_short(d["key"]), _short(d["payload"])]
        table.add_row(*(escape(str(x)) for x in row))
    console.print(table)
    by_reason = ", ".join(f"{k} {v}" for k, v in counts.items()) or "-"
    console.print(f"{total} dead letter(s), {len(shown)} shown; by reason: {by_reason}")


def _short(raw: dict[str, str] | None, limit: int = 300) -> str:
    if raw is None:
        return "-"
    text = raw.get("text") if "text" in raw else "base64:" + raw["base64"]
    text = text or ""
    return text if len(text) <= limit else text[:limit] + "…"


def _render_status(report: dict[str, Any]) -> None:
    console = _console()
    if not report["reachable"]:
        console.print(f"broker {escape(report['broker'])}: [red]NOT reachable[/]")
        if report.get("error"):
            console.print(escape(report["error"]))
        return
    console.print(f"broker {escape(report['broker'])}: reachable")
    table = Table(title="topics", title_justify="left", expand=False)
    for col in ("topic", "present", "partitions"):
        table.add_column(col)
    for t in report["topics"]:
        present = "yes" if t["present"] else "[red]MISSING[/]"
        parts = f"{t['partitions']}" if t["present"] else "-"
        if t["present"] and t["partitions"] != t["expected_partitions"]:
            parts += f" (expected {t['expected_partitions']})"
        table.add_row(escape(t["name"]), present, parts)
    console.print(table)
    lag = Table(title="consumer lag", title_justify="left", expand=False)
    for col in ("group", "topic", "lag", "end offsets", "committed"):
        lag.add_column(col)
    for row in report["lag"]:
        if row.get("missing"):
            lag.add_row(escape(row["group"]), escape(row["topic"]), "topic missing", "-", "-")
            continue
        lag.add_row(
            escape(row["group"]),
            escape(row["topic"]),
            str(row["lag"]),
            str(row["end_offsets"]),
            "yes" if row["committed"] else "never",
        )
    console.print(lag)
    groups = ", ".join(
        f"{g}: {d['members']} member(s), {d['state']}" for g, d in report["groups"].items()
    )
    console.print(f"workers: {report['workers']}  ({escape(groups)})")
    if report.get("error"):
        console.print(f"[red]{escape(report['error'])}[/]")


# ----------------------------------------------------------------------------- commands


def register(app: typer.Typer) -> None:
    """Add ``alerts``, ``dossier``, ``dlq list|replay`` and ``status`` to ``app``."""

    @app.command("alerts")
    @_answers_errors
    def alerts_cmd(
        firing: bool = typer.Option(False, "--firing", help="only status FIRING"),
        kind: str = typer.Option(None, "--kind", help="rule name, e.g. SAMENLOOP"),
        steering_group: str = typer.Option(None, "--steering-group", help="steering group"),
        as_json: bool = typer.Option(False, "--json", help="one JSON object per line"),
    ) -> None:
        """Current alerts and signals: latest version per fingerprint, read from the topics."""
        result = answers.read_alerts(
            Settings(), firing=firing, kind=kind, steering_group=steering_group
        )
        if as_json:
            for a in result.alerts:
                _echo_json(answers.alert_line(a))
            return
        _render_alerts(result)

    @app.command("dossier")
    @_answers_errors
    def dossier_cmd(
        address: str = typer.Argument(
            ..., help="address in any spelling ('9711 ab 12a') or a 16-digit nummeraanduiding id"
        ),
        as_json: bool = typer.Option(False, "--json", help="the dossier as one JSON object"),
    ) -> None:
        """One address's dossier: cases per agency, lead contact, firing alerts with evidence."""
        view = answers.dossier_json(answers.read_dossier(Settings(), address))
        if as_json:
            _echo_json(view)
            return
        render_dossier(view)

    dlq_app = typer.Typer(help="Dead letters: inspect and re-submit.", no_args_is_help=True)
    app.add_typer(dlq_app, name="dlq")

    @dlq_app.command("list")
    @_answers_errors
    def dlq_list(
        reason: str = typer.Option(None, "--reason", help="only this reason code"),
        limit: int = typer.Option(100, "--limit", min=0, help="show the newest N (0 = all)"),
        show_payload: bool = typer.Option(
            False, "--show-payload", help="include key and payload (may hold personal data)"
        ),
        as_json: bool = typer.Option(False, "--json", help="one JSON object per line"),
    ) -> None:
        """List dead letters: where, why (reason, field, message) and where they came from."""
        entries = answers.read_dead_letters(Settings(), reason)
        shown = entries[-limit:] if limit else entries
        rows = [answers.dead_letter_json(e, show_payload) for e in shown]
        if as_json:
            for row in rows:
                _echo_json(row)
            return
        _render_dead_letters(rows, len(entries), answers.reason_counts(entries), show_payload)

    @dlq_app.command("replay")
    @_answers_errors
    def dlq_replay(
        reason: str = typer.Option(None, "--reason", help="only this reason code"),
        dry_run: bool = typer.Option(False, "--dry-run", help="count only, send nothing"),
    ) -> None:
        """Re-submit dead letters to their original topic after a fix; each one only once."""
        report = answers.replay(Settings(), reason, dry_run)
        verb = "would replay" if report.dry_run else "replayed"
        targets = ", ".join(f"{t}: {n}" for t, n in report.by_topic.items())
        typer.echo(
            f"{verb} {report.replayed} dead letter(s)" + (f" ({targets})" if targets else "")
        )
        typer.echo(f"matched {report.matched}, already replayed {report.already_replayed}")
        for why, n in report.skipped.items():
            typer.echo(f"skipped {n}: {why}")

    @app.command("status")
    def status_cmd(
        as_json: bool = typer.Option(False, "--json", help="the status as one JSON object"),
        timeout: float = typer.Option(10.0, "--timeout", min=0.1, help="seconds per request"),
    ) -> None:
        """Broker reachable, topics present, consumer lag per topic, worker count."""
        report = answers.status(Settings(), timeout_s=timeout)
        if as_json:
            _echo_json(report)
        else:
            _render_status(report)
        if not report["reachable"]:
            raise typer.Exit(1)
