"""A store URL is parsed in one place (``ledger.store.location``): what it names, and what is
shown of it, for all URLs of each form."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.errors import StoreUrlError
from ledger.store.location import parse_store_url

words = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789_-"), min_size=1,
                max_size=12)


@given(user=words, password=words, host=words, database=words,
       scheme=st.sampled_from(["postgresql", "postgres"]))
def test_a_postgresql_url_is_kept_whole_and_shown_without_its_password(
        user: str, password: str, host: str, database: str, scheme: str) -> None:
    url = f"{scheme}://{user}:{password}@{host}:5432/{database}"
    location = parse_store_url(url)
    assert (location.backend, location.url, location.path) == ("postgresql", url, None)
    assert location.shown == f"{scheme}://{user}:***@{host}:5432/{database}"


@given(parts=st.lists(words, min_size=1, max_size=4), absolute=st.booleans(),
       synchronous=st.sampled_from([None, "full", "normal", "extra"]))
def test_a_sqlite_url_or_a_path_names_its_file(parts: list[str], absolute: bool,
                                              synchronous: str | None) -> None:
    path = ("/" if absolute else "") + "/".join(parts) + ".db"
    query = f"?synchronous={synchronous}" if synchronous else ""
    location = parse_store_url(f"sqlite:///{path}{query}")
    assert (location.backend, location.path) == ("sqlite", Path(path))
    assert location.synchronous == (synchronous or "full")
    assert parse_store_url(path).path == Path(path)


@pytest.mark.parametrize("bad", ["mysql://x/y", "sqlite://host/x.db", "sqlite:///:memory:",
                                 "sqlite:///x.db?cache=shared", ""])
def test_what_names_no_store_is_refused_with_the_reason(bad: str) -> None:
    with pytest.raises(StoreUrlError):
        parse_store_url(bad)
