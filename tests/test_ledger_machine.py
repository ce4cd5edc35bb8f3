"""The state machine on a real ledger, run as a user's suite would run it."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

from adapters.testing.machine import LedgerMachine

TestLedgerMachine = LedgerMachine.TestCase
TestLedgerMachine.settings = settings(max_examples=30, stateful_step_count=20, deadline=None,
                                      suppress_health_check=list(HealthCheck))
