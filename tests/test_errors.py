"""The error family: every error cardledger defines is exactly one kind, the groups by origin
are never raised themselves, and each kind has its one answer (exit code, HTTP status)."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import adapters
import ledger
import projections
from adapters.errors import ANSWERS, answer_for
from adapters.processor.errors import ProcessorError, error_for
from ledger.errors import KINDS, DomainError, LedgerError, StoreError, kind_of
from projections.backends import ProjectionError

ROOT = Path(__file__).resolve().parents[1]
GROUPS = {LedgerError, StoreError, DomainError, ProjectionError, ProcessorError}


def _every_error() -> set[type[LedgerError]]:
    for package in (ledger, projections, adapters):
        for module in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            importlib.import_module(module.name)
    found, stack = set(), [LedgerError]
    while stack:
        for sub in stack.pop().__subclasses__():
            if sub.__module__.split(".")[0] in ("ledger", "projections", "adapters"):
                found.add(sub)
            stack.append(sub)
    return found


def test_every_error_is_exactly_one_kind() -> None:
    errors = _every_error() - GROUPS - set(KINDS)
    assert len(errors) > 30  # the walk found the family, not an empty set
    wrong = {e.__qualname__: [k.__name__ for k in KINDS if issubclass(e, k)]
             for e in errors if sum(issubclass(e, k) for k in KINDS) != 1}
    assert not wrong, wrong


def test_no_group_and_no_bare_ledger_error_is_raised() -> None:
    names = {group.__name__ for group in GROUPS}
    raised = []
    for package in ("ledger", "projections", "adapters"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and (
                        isinstance(node.exc.func, ast.Name) and node.exc.func.id in names):
                    raised.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not raised, raised


def test_each_kind_has_one_answer_and_answers_differ_by_status() -> None:
    assert set(ANSWERS) == set(KINDS)
    assert len({a.http_status for a in ANSWERS.values()}) == len(KINDS)


@pytest.mark.parametrize(("status", "exit_code", "http_status"), [
    (400, 2, 400), (401, 2, 401), (403, 2, 400), (404, 2, 404), (409, 2, 409), (422, 2, 409),
    (429, 3, 503), (500, 3, 503), (503, 3, 503)])
def test_a_processor_answer_is_answered_by_its_kind(status: int, exit_code: int,
                                                    http_status: int) -> None:
    error = error_for(status, b"{}", "GET", "/v1/cards/x")
    assert (answer_for(error).exit_code, answer_for(error).http_status) == (exit_code,
                                                                             http_status)
    assert kind_of(error) in KINDS


def test_outages_from_below_are_outages_and_anything_else_is_bad_input() -> None:
    assert answer_for(ConnectionRefusedError()).exit_code == 3
    wrapped = ValueError("x")
    wrapped.__cause__ = TimeoutError()
    assert answer_for(wrapped).exit_code == 3
    assert answer_for(FileNotFoundError("nope")).exit_code == 2
