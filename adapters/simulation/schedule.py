"""A simulation's schedule: the list of steps it runs, drawn from one seed (or by hypothesis),
written as a replay token, and told as a readable timeline.

A step names what happens, never an id: ``Authorise(card=2, cents=1250)`` authorises on the
third card the processor has issued (counting round, modulo how many there are), and does
nothing while there is none. So every list of steps is a valid schedule, and a shrunk one
still means something.
"""

from __future__ import annotations

import base64
import random
import zlib
from collections.abc import Callable
from typing import Literal

import msgspec


class Step(msgspec.Struct, array_like=True, tag=True):
    """One thing that happens. ``str(step)`` is its line in the timeline."""

    def __str__(self) -> str:
        fields = ", ".join(f"{f}={getattr(self, f)}" for f in self.__struct_fields__)
        return f"{type(self).__name__}({fields})"


# --- the programme: the back office (through the ledger) and the processor's own world ---

class NewCustomer(Step, tag="cu"):
    """The back office registers a customer (the outbox sends it)."""


class Verify(Step, tag="ve"):
    """The processor verifies a customer it created."""
    customer: int


class OpenAccount(Step, tag="oa"):
    """The back office opens a EUR account for a customer the ledger knows."""
    customer: int


class Deposit(Step, tag="de"):
    """Funds arrive on chain: the processor credits the account, the back office records it."""
    account: int
    cents: int


class Withdraw(Step, tag="wi"):
    """Funds leave on chain, if the processor allows it; the back office records it."""
    account: int
    cents: int


class RequestCard(Step, tag="rc"):
    """The back office asks for a virtual card on an account."""
    account: int


class Issue(Step, tag="is"):
    """The processor issues a requested card."""
    card: int


class Authorise(Step, tag="au"):
    """A merchant asks the processor for a hold (declined without funds or an active card)."""
    card: int
    cents: int


class Amend(Step, tag="am"):
    """An incremental authorisation: a pending hold's amount changes."""
    hold: int
    cents: int


class Capture(Step, tag="ca"):
    """A hold is captured: in full, in part (60 %) or above it (115 %); late ones too."""
    hold: int
    how: Literal["full", "part", "over"]


class Release(Step, tag="re"):
    hold: int


class LatePresentment(Step, tag="lp"):
    """A hold the processor let expire is presented for capture after all: a debit
    against an expired authorisation."""
    hold: int


class ForcePost(Step, tag="fp"):
    """A debit with no authorisation."""
    card: int
    cents: int


class Settle(Step, tag="se"):
    """The processor settles a transaction (``processed``)."""
    transaction: int


class Reverse(Step, tag="rv"):
    """A settled transaction is reversed."""
    transaction: int


class Refund(Step, tag="rf"):
    """Part of a debit comes back as a credit."""
    transaction: int
    percent: int


class Terminate(Step, tag="te"):
    """The back office terminates a card, holds pending or not."""
    card: int


class Onboard(Step, tag="on"):
    """``customers`` customers onboarded in one step, each webhook delivered in order (as
    ``onboarding`` spells out step by step): where a schedule's story starts."""
    customers: int


# --- the ledger's own work, which a service runs in the background --------------------------

class Dispatch(Step, tag="di"):
    """The outbox sends what is pending."""


class Deliver(Step, tag="dl"):
    """The processor sends one pending webhook: ``pick`` chooses which (any order), ``fate``
    what the network does with it."""
    pick: int
    fate: Literal["ok", "drop", "duplicate"]


class Pull(Step, tag="pu"):
    """Pull sync: fetch what the processor holds, record what the ledger lacks."""


class Sweep(Step, tag="sw"):
    """The expiry sweep on the ledger's clock."""


# --- time, faults and crashes -------------------------------------------------------------

class Advance(Step, tag="ad"):
    """The one clock jumps forward; the processor releases holds whose window closed."""
    seconds: int


ClientFault = Literal["429", "409", "503", "timeout-before", "500-after", "timeout-after"]


class Fault(Step, tag="fa"):
    """The ledger's next call to the processor meets this: an answer instead of the work
    (429, 409, 503, a timeout), or the work done and the answer lost (500, a timeout)."""
    kind: ClientFault


CrashPoint = Literal["now", "before-append", "after-append", "after-send"]


class Crash(Step, tag="cr"):
    """The ledger's process dies, and restarts from its database file: at once, or at its
    next append (before it, or after it committed and before anyone heard), or once its next
    request to the processor was done and before the answer arrived."""
    point: CrashPoint


class Heal(Step, tag="he"):
    """The network heals: every webhook delivered, the outbox emptied, a pull, a sweep; then
    every invariant is checked."""


AnyStep = (NewCustomer | Onboard | Verify | OpenAccount | Deposit | Withdraw | RequestCard
           | Issue | Authorise | Amend | Capture | Release | LatePresentment | ForcePost
           | Settle | Reverse | Refund | Terminate | Dispatch | Deliver | Pull | Sweep | Advance
           | Fault | Crash | Heal)

HOUR, DAY = 3_600, 86_400


def draw(seed: int, steps: int) -> list[AnyStep]:
    """``steps`` steps from ``seed``: a few customers onboarded (each phase waits for the
    last one's webhooks, as a back office would), then payments, with the ledger's work,
    faults, crashes and time jumps mixed in at the rates a bad week would see."""
    rng = random.Random(seed)
    drawn = onboarding(rng, rng.randrange(2, 5))
    while len(drawn) < steps:
        drawn.append(_one(rng))
    return drawn[:steps]


def onboarding(rng: random.Random, customers: int) -> list[AnyStep]:
    """Register, verify, open an account, fund it and issue a card, for each customer."""
    if not customers:
        return []
    def settle() -> list[AnyStep]:
        extra = [_one(rng, FAULTS) for _ in range(rng.randrange(2))]
        return [*extra, Dispatch(), *(Deliver(0, "ok") for _ in range(3 * customers + 2))]

    each = range(customers)
    return [*(NewCustomer() for _ in each), *settle(), *(Verify(0) for _ in each),
            *settle(), *(OpenAccount(n) for n in each), *settle(),
            *(Deposit(n, rng.randrange(50_000, 500_000)) for n in each),
            *(RequestCard(n) for n in each), *settle(), *(Issue(0) for _ in each), *settle()]


def _one(rng: random.Random, weights: dict[str, float] | None = None) -> AnyStep:
    i = rng.randrange(8)
    cents = rng.randrange(100, 40_000)
    makers: dict[str, Callable[[], AnyStep]] = {
        "customer": lambda: NewCustomer(), "verify": lambda: Verify(i),
        "account": lambda: OpenAccount(i), "deposit": lambda: Deposit(i, cents * 10),
        "withdraw": lambda: Withdraw(i, cents), "card": lambda: RequestCard(i),
        "issue": lambda: Issue(i), "authorise": lambda: Authorise(i, cents),
        "amend": lambda: Amend(i, cents), "capture": lambda: Capture(
            i, rng.choice(("full", "full", "part", "over"))),
        "release": lambda: Release(i), "force": lambda: ForcePost(i, cents // 4),
        "late": lambda: LatePresentment(i),
        "settle": lambda: Settle(i), "reverse": lambda: Reverse(i),
        "refund": lambda: Refund(i, rng.randrange(10, 101)), "terminate": lambda: Terminate(i),
        "dispatch": lambda: Dispatch(), "deliver": lambda: Deliver(
            rng.randrange(4), rng.choices(("ok", "drop", "duplicate"), (8, 1, 1))[0]),
        "pull": lambda: Pull(), "sweep": lambda: Sweep(),
        "advance": lambda: Advance(rng.choice((rng.randrange(60, 6 * HOUR),
                                               rng.randrange(6 * HOUR, 3 * DAY),
                                               rng.randrange(6 * HOUR, 3 * DAY),
                                               rng.randrange(5 * DAY, 12 * DAY),
                                               rng.randrange(28 * DAY, 32 * DAY)))),
        "fault": lambda: Fault(rng.choice(("429", "409", "503", "timeout-before",
                                           "500-after", "timeout-after"))),
        "crash": lambda: Crash(rng.choice(("now", "before-append", "after-append",
                                           "after-send"))),
        "heal": lambda: Heal(),
    }
    weights = weights or PAYMENTS
    kind = rng.choices(list(weights), list(weights.values()))[0]
    return makers[kind]()


FAULTS = {"fault": 3, "crash": 1, "advance": 0.5}
PAYMENTS = {"authorise": 10, "amend": 2, "capture": 7, "release": 2, "force": 0.5, "late": 0.5,
            "settle": 4, "reverse": 1, "refund": 1.5, "deposit": 1, "withdraw": 1,
            "terminate": 1.2, "card": 0.5, "issue": 0.5, "dispatch": 3, "deliver": 16,
            "pull": 0.5, "sweep": 0.7, "advance": 3, "fault": 1.5, "crash": 0.6,
            "heal": 0.2, "customer": 0.2, "verify": 0.2, "account": 0.2}


# --- replay tokens and timelines ----------------------------------------------------------

class Replay(msgspec.Struct, frozen=True, array_like=True):
    """Everything a run depends on: its seed (ids, jitter, the processor's draws), the
    planted bug it runs against (if any) and its steps."""

    seed: int
    steps: list[AnyStep]
    planted: str | None = None


TOKEN_PREFIX = "cl1."


def token(replay: Replay) -> str:
    """A short text that reruns ``replay`` exactly (``cardledger simulate --replay``)."""
    packed = zlib.compress(msgspec.msgpack.encode(replay), 9)
    return TOKEN_PREFIX + base64.urlsafe_b64encode(packed).decode().rstrip("=")


class BadTokenError(ValueError):
    """Not a replay token this version can read."""


def from_token(text: str) -> Replay:
    if not text.startswith(TOKEN_PREFIX):
        raise BadTokenError(f"a replay token starts with {TOKEN_PREFIX!r}")
    body = text[len(TOKEN_PREFIX):]
    try:
        packed = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        return msgspec.msgpack.decode(zlib.decompress(packed), type=Replay)
    except (ValueError, zlib.error, msgspec.DecodeError) as exc:
        raise BadTokenError(f"not a replay token: {exc}") from None


def timeline(steps: list[AnyStep], outcomes: list[str] | None = None) -> str:
    """One numbered line per step, with what it did when ``outcomes`` are given."""
    lines = []
    for n, step in enumerate(steps):
        done = f"  -> {outcomes[n]}" if outcomes is not None and n < len(outcomes) else ""
        lines.append(f"{n:4d} {step}{done}")
    return "\n".join(lines)
