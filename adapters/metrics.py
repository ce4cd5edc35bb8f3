"""What an operator scrapes: Prometheus metrics of one ledger process (prometheus-client).

Each ``Metrics`` has a registry of its own (no global state: two ledgers in one process do not
mix their figures). The receiver counts webhooks and times their recording; the background
work counts sweeps, expiries and pulls and marks which tasks this process leads; the
watcher (``CardLedger.run_background``) sets the projection's lag and the outbox's backlog
every second, which ``/health`` judges too.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response

TASKS = ("projection", "sweeper", "outbox")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.webhooks = Counter(
            "cardledger_webhooks", "Webhook deliveries answered, by outcome (recorded, known: "
            "nothing new, refused) and reason (the problem's code, for a refusal)",
            ["outcome", "reason"], registry=r)
        self.append_seconds = Histogram(
            "cardledger_append_seconds", "Seconds to record one delivery or transfer durably "
            "(decide and append)", registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))
        self.lag_events = Gauge("cardledger_projection_lag_events",
                                "Events committed to the log and not yet projected", registry=r)
        self.lag_seconds = Gauge(
            "cardledger_projection_lag_seconds", "Age of the oldest event not yet projected "
            "(0 when caught up)", registry=r)
        self.outbox_pending = Gauge("cardledger_outbox_pending",
                                    "Requests recorded and not yet answered by the processor",
                                    registry=r)
        self.outbox_oldest_seconds = Gauge(
            "cardledger_outbox_oldest_pending_seconds", "Age of the oldest pending request "
            "(0 when none)", registry=r)
        self.sweeps = Counter("cardledger_sweeper_runs", "Expiry sweeps run", registry=r)
        self.expired = Counter("cardledger_holds_expired", "Hold expiries recorded by sweeps",
                               registry=r)
        self.pull_last_success = Gauge(
            "cardledger_pull_last_success_timestamp_seconds",
            "Unix time of the last pull sync that succeeded (0: none yet)", registry=r)
        self.leading = Gauge("cardledger_leader", "1 where this process leads the task",
                             ["task"], registry=r)
        for task in TASKS:
            self.leading.labels(task).set(0)

    def webhook(self, outcome: str, reason: str, seconds: float | None) -> None:
        self.webhooks.labels(outcome, reason).inc()
        if seconds is not None:
            self.append_seconds.observe(seconds)

    async def endpoint(self, request: Request) -> Response:
        """``GET /metrics``, in Prometheus's text format."""
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)
