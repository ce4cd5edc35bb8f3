"""``cardledger report``: the auditor's report, one self-contained HTML file.

It opens offline in any browser: the charts are Plotly's, with its script inlined once, and
nothing is fetched. Sections: the verification result; balances over business time for the
busiest accounts (every account's current figures in a table); the holds' timeline; the
anomalies, each linked to the events behind it; and how the report was made. A large log is
aggregated, not drawn point by point: a fixed number of moments per chart, a bounded number
of charts, holds and listed events, so the file's size does not follow the log's.
"""

from __future__ import annotations

import html
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack
from datetime import datetime, timedelta
from importlib.metadata import version
from pathlib import Path

import anyio
import msgspec

from adapters.cli.audit import verified_export
from adapters.cli.locations import existing_store
from adapters.cli.output import builtins
from adapters.processor.reconcile import Difference
from ledger.clock import utc_now
from ledger.domain.hold import DEFAULT_POLICY
from ledger.domain.lifecycle import AUTHORISATION
from ledger.events import DOMAIN_REGISTRY, DomainEvent
from ledger.money import format_amount
from ledger.store import VerifyReport
from ledger.store.location import redacted
from ledger.store.planner import Row, from_micros
from projections.book import AccountBook, entity_of
from projections.replay import Replay, ReplayBuilder
from projections.views import AnomalyView, Balance, HoldView, listed_anomalies, view

CHART_ACCOUNTS = 8
"""Accounts charted (the busiest); every account's figures are in the table."""
MOMENTS = 60
"""Moments per balance chart: the figures as of each, not a point per event."""
HOLD_BARS = 300
ANOMALIES_LISTED = 500
EVENTS_PER_ANOMALY = 20


class LogFacts(msgspec.Struct):
    events: int = 0
    streams: int = 0
    first_recorded: datetime | None = None
    last_recorded: datetime | None = None


class Made(msgspec.Struct):
    command: str
    as_of: datetime
    known_at: datetime | None
    source: str


async def collect(batches: AsyncIterator[list[Row]], as_of: datetime,
                  known_at: datetime | None, upto: int | None,
                  ) -> tuple[LogFacts, ReplayBuilder, Counter[str]]:
    """One pass over the rows: the log's facts, the books as of ``as_of`` from the rows up to
    position ``upto`` (None: all; a broken chain's figures come from its verified part), and
    each account's number of events (to pick the busiest)."""
    facts, busy = LogFacts(), Counter[str]()
    streams: set[str] = set()
    builder = ReplayBuilder(as_of, known_at)
    async for batch in batches:
        rows = batch if upto is None else [row for row in batch if row.position <= upto]
        stored = [DOMAIN_REGISTRY.decode_record(row.record) for row in rows]
        builder.add(stored)
        for event in stored:
            if isinstance(event.payload, DomainEvent) and (
                    account := getattr(event.payload, "account_id", None)):
                busy[account] += 1
        streams.update(row.stream for row in batch)
        if batch:
            facts.events += len(batch)
            facts.first_recorded = facts.first_recorded or from_micros(batch[0][5])
            facts.last_recorded = from_micros(batch[-1][5])
    facts.streams = len(streams)
    return facts, builder, busy


async def events_behind(batches: AsyncIterator[list[Row]], entities: set[str],
                        upto: int | None) -> dict[str, list[tuple[int, str, str]]]:
    """(position, type, business time) of the events about each of ``entities``."""
    found: dict[str, list[tuple[int, str, str]]] = {}
    if not entities:
        return found  # nothing to look for: no second read of the log
    async for rows in batches:
        for row in rows:
            if upto is not None and row.position > upto:
                break
            payload = DOMAIN_REGISTRY.decode_record(row.record).payload
            if isinstance(payload, DomainEvent):
                _, entity_id = entity_of(payload)
                if entity_id in entities and len(found.setdefault(entity_id, [])) < (
                        EVENTS_PER_ANOMALY):
                    found[entity_id].append((row.position, row.type, payload.at.isoformat()))
    return found


def anomalies_of(recomputed: Replay, moment: datetime) -> list[AnomalyView]:
    return listed_anomalies((a for v in recomputed.views.values() for a in v.anomalies),
                            recomputed.contradictions, recomputed.quarantined, moment)


async def write_report(db: str, source: Path | None, as_of: datetime | None,
                       known_at: datetime | None, output: Path, command: str,
                       differences: list[Difference] | None = None) -> int:
    """Write the report of the ledger at ``db`` (or of the export ``source``) to ``output``,
    with ``differences`` from a reconciliation if one was run; return 1 when the chain does
    not verify (the report says where), else 0."""
    started = time.perf_counter()
    moment = as_of or utc_now()
    async with AsyncExitStack() as stack:
        if source is not None:
            rows, verification = verified_export(source)

            async def batches() -> AsyncIterator[list[Row]]:
                for start in range(0, len(rows), 10_000):
                    yield rows[start:start + 10_000]
        else:
            store = await stack.enter_async_context(existing_store(db))
            verification = await store.verify()
            batches = store.raw_rows
        upto = None if verification.ok else verification.checked  # the verified part
        facts, builder, busy = await collect(batches(), moment, known_at, upto)
        recomputed = builder.result()
        anomalies = anomalies_of(recomputed, moment)
        behind = await events_behind(batches(), {a.entity_id
                                                 for a in anomalies[:ANOMALIES_LISTED]}, upto)
    made = Made(command, moment, known_at, str(source) if source else redacted(db))
    await anyio.Path(output).write_text(render(
        verification, facts, builder.books, recomputed, anomalies, busy, behind, made, started,
        differences),
        encoding="utf-8")
    return 0 if verification.ok else 1


def render(verification: VerifyReport, facts: LogFacts, books: dict[str, AccountBook],
           recomputed: Replay, anomalies: list[AnomalyView], busy: Counter[str],
           behind: dict[str, list[tuple[int, str, str]]], made: Made, started: float,
           differences: list[Difference] | None = None) -> str:
    from plotly.offline import get_plotlyjs

    moment = made.as_of
    charted = [a for a, _ in busy.most_common(CHART_ACCOUNTS) if a in books]
    sections = [
        _verification(verification, facts),
        _balances(recomputed, books, charted, moment, anomalies),
        _holds(recomputed, books, charted, anomalies),
        _anomalies(anomalies, behind),
        _reconciliation(differences),
        _made(made, started),
    ]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<title>cardledger audit report</title><style>" + _STYLE + "</style>"
            "<script>" + str(get_plotlyjs()) + "</script></head><body>"
            "<h1>cardledger audit report</h1>" + "".join(sections) + "</body></html>\n")


# --- sections ------------------------------------------------------------------------------

def _verification(report: VerifyReport, facts: LogFacts) -> str:
    if report.ok:
        result = (f"<p class=\"ok\" id=\"chain\" data-ok=\"true\">Chain intact: all "
                  f"{report.checked:,} events verify.</p>")
    else:
        result = (f"<p class=\"bad\" id=\"chain\" data-ok=\"false\" "
                  f"data-first-bad=\"{report.first_bad_position}\">Chain FAILED at position "
                  f"{report.first_bad_position}: {_e(report.reason or '')} ({report.checked:,} "
                  "events before it verify).</p>")
    rows = [("events", f"{facts.events:,}"), ("streams", f"{facts.streams:,}"),
            ("first recorded", _t(facts.first_recorded)),
            ("last recorded", _t(facts.last_recorded)),
            ("hash head", f"<code>{_e(report.last_hash or '-')}</code>")]
    return "<section id=\"verification\"><h2>Verification</h2>" + result + _table(
        ["", ""], rows, raw=True) + "</section>"


def _balances(recomputed: Replay, books: dict[str, AccountBook], charted: list[str],
              moment: datetime, anomalies: list[AnomalyView]) -> str:
    balances = [b for v in recomputed.views.values() for b in v.balances]
    table = _balance_table(balances)
    charts = "".join(_balance_chart(books[a], moment, anomalies) for a in charted)
    return ("<section id=\"balances\"><h2>Balances</h2><p>Every account and currency as of "
            f"{_t(moment)}, from the {recomputed.events:,} events replayed; the "
            f"{len(charted)} busiest accounts charted over business time, at {MOMENTS} "
            "moments each.</p>" + table + charts + "</section>")


def _balance_table(balances: list[Balance]) -> str:
    columns = ["accountId", "currency", "deposits", "debits", "credits", "posted", "held",
               "available"]
    head = "".join(f"<th>{c}</th>" for c in columns)
    shown = [builtins(b) for b in balances]  # the text ``balances --json`` prints
    body = "".join("<tr>" + "".join(f"<td data-field=\"{c}\">{_e(str(row[c]))}</td>"
                                    for c in columns) + "</tr>" for row in shown)
    return f"<table id=\"balance-table\"><tr>{head}</tr>{body}</table>"


def _balance_chart(book: AccountBook, moment: datetime, anomalies: list[AnomalyView]) -> str:
    import plotly.graph_objects as go  # here: plotly takes a while to import

    moments = _moments(book, moment)
    if not moments:
        return ""
    series: dict[str, dict[str, list[float]]] = {}
    for at in moments:
        for b in view(book, at).balances:
            line = series.setdefault(b.currency, {"posted": [], "held": [], "available": []})
            for name in line:
                line[name].append(float(getattr(b, name)))  # a chart's coordinate, not money
    figure = go.Figure()
    for currency, lines in series.items():
        for name, values in lines.items():
            figure.add_trace(go.Scatter(x=moments[-len(values):], y=values, mode="lines",
                                        line_shape="hv", name=f"{name} {currency}"))
    for label, times in _markers(book, anomalies).items():
        figure.add_trace(go.Scatter(x=times, y=[0] * len(times), mode="markers", name=label,
                                    marker={"symbol": "line-ns-open", "size": 12}))
    figure.update_layout(title=f"Account {book.account_id}", height=360,
                         margin={"l": 40, "r": 10, "t": 40, "b": 30})
    return str(figure.to_html(full_html=False, include_plotlyjs=False))


def _markers(book: AccountBook, anomalies: list[AnomalyView]) -> dict[str, list[datetime]]:
    marks: dict[str, list[datetime]] = {"deposits": [m.at for m in book.movements
                                                     if m.amount > 0]}
    for hold in book.holds.values():
        state = hold.timeline.at(AUTHORISATION, None)
        if state is not None and state.status in ("captured", "released"):
            marks.setdefault(f"{state.status}", []).append(state.at)
        if hold.expired_at is not None:
            marks.setdefault("expired", []).append(hold.expired_at)
    return {k: sorted(v) for k, v in marks.items() if v}


def _holds(recomputed: Replay, books: dict[str, AccountBook], charted: list[str],
           anomalies: list[AnomalyView]) -> str:
    import plotly.graph_objects as go

    flagged = {a.entity_id: a.kind for a in anomalies
               if a.kind in ("capture_above_hold", "capture_after_expiry")}
    holds = [h for a in charted for h in recomputed.views[a].holds][:HOLD_BARS]
    if not holds:
        return "<section id=\"holds\"><h2>Holds</h2><p>No holds.</p></section>"
    colours = {"captured": "#2b7", "released": "#999", "expired": "#c93", None: "#36c"}
    figure = go.Figure()
    for hold in holds:
        end = _end_of(books[hold.account_id], hold)
        late = flagged.get(hold.authorisation_id)
        figure.add_trace(go.Bar(
            y=[hold.authorisation_id], x=[(end - hold.created_at).total_seconds() * 1000],
            base=[hold.created_at.isoformat()], orientation="h", showlegend=False,
            marker={"color": "#d33" if late else colours.get(hold.closed, "#36c"),
                    "line": {"width": 2 if hold.card_status == "terminated" else 0}},
            hovertext=f"{hold.authorisation_id}: {hold.status}, {format_amount(hold.amount)} "
                      f"{hold.currency}" + (f"; {late}" if late else "")
                      + ("; card terminated" if hold.card_status == "terminated" else "")))
    figure.update_layout(title="Holds: creation to capture, release or expiry (red: late or "
                         "over-captured; outlined: card terminated, 30-day capture window)",
                         xaxis={"type": "date"}, height=max(300, 14 * len(holds)),
                         margin={"l": 120, "r": 10, "t": 40, "b": 30})
    windows = {c.card_id: c.capture_window_until for a in charted
               for c in recomputed.views[a].cards if c.capture_window_until is not None}
    for card_id, until in windows.items():  # the 30 days a terminated card's holds may run
        start = until - DEFAULT_POLICY.window
        figure.add_trace(go.Bar(
            y=[f"card {card_id[:12]}"], x=[(until - start).total_seconds() * 1000],
            base=[start.isoformat()], orientation="h", showlegend=False,
            marker={"color": "rgba(200,120,0,0.25)"},
            hovertext=f"card {card_id} terminated {start:%Y-%m-%d}: capture window until "
                      f"{until:%Y-%m-%d}"))
    return ("<section id=\"holds\"><h2>Holds</h2>"
            f"<p>{len(holds)} holds of the charted accounts, and the capture windows of "
            f"{len(windows)} terminated cards (amber): a hold pending at termination may be "
            "captured until its window ends.</p>"
            + str(figure.to_html(full_html=False, include_plotlyjs=False)) + "</section>")


def _anomalies(anomalies: list[AnomalyView],
               behind: dict[str, list[tuple[int, str, str]]]) -> str:
    if not anomalies:
        return "<section id=\"anomalies\"><h2>Anomalies</h2><p>None.</p></section>"
    rows = []
    for a in anomalies[:ANOMALIES_LISTED]:
        links = " ".join(f"<a href=\"#event-{p}\">{p}</a>"
                         for p, _, _ in behind.get(a.entity_id, []))
        rows.append((_e(a.kind), _e(a.entity), _e(a.entity_id), _e(a.account_id),
                     _t(a.at), _e(a.detail or ""), links))
    listed = sorted({event for a in anomalies[:ANOMALIES_LISTED]
                     for event in behind.get(a.entity_id, [])})
    events = _table(["position", "type", "business time"],
                    [(f"<span id=\"event-{p}\">{p}</span>", _e(t), _e(at))
                     for p, t, at in listed], raw=True)
    more = (f"<p>{len(anomalies) - ANOMALIES_LISTED:,} more not listed.</p>"
            if len(anomalies) > ANOMALIES_LISTED else "")
    return ("<section id=\"anomalies\"><h2>Anomalies</h2>"
            f"<p>{len(anomalies):,} anomalies (counted all the same; listed here).</p>"
            + _table(["kind", "entity", "id", "account", "at", "detail", "events"], rows,
                     raw=True) + more + "<h3>The events behind them</h3>" + events
            + "</section>")


def _reconciliation(differences: list[Difference] | None) -> str:
    head = "<section id=\"reconciliation\"><h2>Reconciliation with the processor</h2>"
    if differences is None:
        return (head + "<p id=\"reconciled\" data-run=\"false\">Not run: no processor "
                "connection was given (<code>--processor-url</code> and credentials).</p>"
                "</section>")
    if not differences:
        return (head + "<p id=\"reconciled\" class=\"ok\" data-run=\"true\" "
                "data-differences=\"0\">No difference: every entity and amount agrees.</p>"
                "</section>")
    return (head + f"<p id=\"reconciled\" class=\"bad\" data-run=\"true\" "
            f"data-differences=\"{len(differences)}\">{len(differences)} difference(s):</p>"
            + _table(["entity", "id", "kind", "ledger", "processor"],
                     [(d.entity, d.entity_id, d.kind, d.ledger or "", d.processor or "")
                      for d in differences]) + "</section>")


def _made(made: Made, started: float) -> str:
    rows = [("command", f"<code>{_e(made.command)}</code>"),
            ("cardledger", _e(version("cardledger"))), ("source", _e(made.source)),
            ("as of", _t(made.as_of)), ("known at", _t(made.known_at) if made.known_at
                                        else "everything recorded"),
            ("took", f"{time.perf_counter() - started:.1f} s")]
    return ("<section id=\"made\"><h2>How this report was made</h2>" + _table(
        ["", ""], rows, raw=True) + "</section>")


# --- helpers -------------------------------------------------------------------------------

def _table(columns: list[str], rows: Iterable[tuple[str, ...]], *, raw: bool = False) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in columns) if any(columns) else ""
    body = "".join("<tr>" + "".join(f"<td>{cell if raw else _e(cell)}</td>" for cell in row)
                   + "</tr>" for row in rows)
    return f"<table>{'<tr>' + head + '</tr>' if head else ''}{body}</table>"


def _moments(book: AccountBook, moment: datetime) -> list[datetime]:
    """Up to MOMENTS moments at which to show the account: spread over its changes (every
    business time a fact of it carries, up to ``moment``), not over the calendar, so that a
    busy hour and a quiet month each get their share; and just before the first."""
    times = {m.at for m in book.movements}
    for hold in book.holds.values():
        times |= {s.at for s in hold.timeline.sightings}
    for transaction in book.transactions.values():
        times |= {s.at for s in transaction.timeline.sightings}
    times |= {h.expired_at for h in book.holds.values() if h.expired_at is not None}
    changes = sorted(t for t in times if t <= moment)
    if not changes:
        return []
    step = max(1, len(changes) // (MOMENTS - 1))
    return [changes[0] - timedelta(seconds=1), *changes[::step][:MOMENTS - 2], changes[-1]]


def _end_of(book: AccountBook, hold: HoldView) -> datetime:
    """When the hold stopped reserving funds: its capture or release, else its expiry."""
    state = book.holds[hold.authorisation_id].timeline.at(AUTHORISATION, None)
    if state is not None and state.status in ("captured", "released"):
        return min(state.at, hold.expires_at)
    return hold.expires_at


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _t(moment: datetime | None) -> str:
    return "-" if moment is None else _e(moment.isoformat())


_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:80em}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.2em .5em;
text-align:right}th{background:#eee}.ok{color:#185;font-weight:bold}
.bad{color:#c11;font-weight:bold}section{margin-bottom:2.5em}"""
