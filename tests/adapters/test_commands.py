"""Back-office commands read only what their rule needs: a card request, the account's cards."""

from __future__ import annotations

from pathlib import Path

import pytest
from msgspec.structs import replace

from adapters.processor.observer import Observer
from adapters.service.commands import Commands
from ledger import open_store
from ledger.errors import InvalidTransitionError
from ledger.testing import ADDRESS
from projections import ProjectionRunner
from tests.support.known_history import ACCOUNT, T0, card, day

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("projected", [True, False])
async def test_a_second_live_card_is_refused_whether_projected_or_not(
        tmp_path: Path, projected: bool) -> None:
    async with open_store(tmp_path / "l.db") as store, ProjectionRunner(store) as runner:
        observer = Observer(store)
        other = replace(card("active", day(1)), id="c9", account_id="a2")  # another account's
        for snapshot in (ACCOUNT, replace(ACCOUNT, id="a2"), other, card("active", day(1))):
            await observer.record(snapshot)
        if projected:
            await runner.catch_up()  # the card is in the cards table, not after the checkpoint
        with pytest.raises(InvalidTransitionError, match="card c1 is still active"):
            await Commands(store).request_card("a1", ADDRESS)
        await observer.record(card("terminated", day(2)))
        if projected:
            await runner.catch_up()
        request = await Commands(store).request_card("a1", ADDRESS)
        assert request.account_id == "a1" and request.at > T0
