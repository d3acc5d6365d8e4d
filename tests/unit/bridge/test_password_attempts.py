"""The brute-force throttle of directory sign-in: attempts are reserved atomically before
the password is checked, so guesses sent in parallel cannot all pass the count (the review
found the old count-then-bind-then-record let them), on both stores."""

from __future__ import annotations

import threading
from datetime import timedelta

from bridge.domain import Actor, DirectoryKind
from bridge.engine import ResolutionEngine
from bridge.engine.sign_in import PasswordAttempt
from tests.builders import ad_user, enterprise
from tests.conftest import FakeClock

WINDOW = timedelta(minutes=15)


ADMIN = Actor(type="AdminUser", principal_id="AIDATESTADMIN", name="alice")


def _begin(engine: ResolutionEngine, user: str = "u1@nowhere.test",
           address: str | None = "10.0.0.9",
           per_user: int = 5, per_address: int = 20) -> PasswordAttempt:
    return engine.begin_password_attempt(user, address, max_per_user=per_user,
                                         max_per_address=per_address, window=WINDOW)


def test_parallel_guesses_cannot_all_pass_the_count(engine: ResolutionEngine) -> None:
    results: list[bool] = []
    lock = threading.Lock()
    start = threading.Barrier(12)

    def guess() -> None:
        start.wait()
        attempt = _begin(engine)
        with lock:
            results.append(attempt.allowed)
        engine.end_password_attempt(attempt, failed=True)

    threads = [threading.Thread(target=guess) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True] * 5


def test_only_failed_attempts_keep_counting(engine: ResolutionEngine,
                                            clock: FakeClock) -> None:
    for _ in range(10):  # right passwords (or an unreachable directory) never add up
        attempt = _begin(engine, per_user=2)
        assert attempt.allowed
        engine.end_password_attempt(attempt, failed=False)
    for _ in range(2):
        engine.end_password_attempt(_begin(engine, per_user=2), failed=True)
    refused = _begin(engine, per_user=2)
    assert not refused.allowed and 0 < refused.retry_after <= WINDOW.total_seconds()
    # Another user from the same address is not affected (until the address limit).
    assert _begin(engine, user="u2@nowhere.test", per_user=2).allowed
    clock.advance(minutes=30)  # two windows later: forgotten
    assert _begin(engine, per_user=2).allowed


def test_the_address_limit_counts_every_user(engine: ResolutionEngine) -> None:
    for n in range(3):
        engine.end_password_attempt(_begin(engine, user=f"u{n}@nowhere.test", per_address=3),
                                    failed=True)
    assert not _begin(engine, user="new@nowhere.test", per_address=3).allowed
    assert _begin(engine, user="new@nowhere.test", address="10.0.0.10", per_address=3).allowed


def test_the_window_slides_over_its_boundary(engine: ResolutionEngine,
                                             clock: FakeClock) -> None:
    """Failures at the end of one fixed window still count at the start of the next:
    no second full allowance right after the boundary (the old sliding rule's effect)."""
    length = WINDOW.total_seconds()
    start = clock.now.timestamp() // length * length
    clock.advance(seconds=start + length - 60 - clock.now.timestamp())  # 1 min before the end
    for _ in range(5):
        engine.end_password_attempt(_begin(engine), failed=True)
    assert not _begin(engine).allowed
    clock.advance(seconds=120)  # 1 min into the next window: the 5 failures mostly count
    assert not _begin(engine).allowed
    clock.advance(minutes=15)  # a whole window later they are forgotten
    assert _begin(engine).allowed


def test_the_room_chooses_the_keys(engine: ResolutionEngine) -> None:
    """The door passes what was typed and where from; the room counts a user's failures
    under the user, whichever of its addresses was typed, and an unknown address under
    the address itself, whatever its case."""
    account = enterprise(engine, ADMIN, ["corp.test"], DirectoryKind.ACTIVE_DIRECTORY)
    user = ad_user(engine, ADMIN, account.id, "guid-1", "ann@corp.test", ["a.n@corp.test"])
    for typed in ("ann@corp.test", "A.N@corp.test"):
        engine.end_password_attempt(_begin(engine, user=typed, per_user=2), failed=True)
    refused = _begin(engine, user="Ann@Corp.test", per_user=2)
    assert not refused.allowed and refused.keys[0] == f"user:{user.id}"
    for typed in ("nobody@corp.test", "NOBODY@corp.test"):
        engine.end_password_attempt(_begin(engine, user=typed, per_user=2), failed=True)
    assert not _begin(engine, user="Nobody@Corp.Test", per_user=2).allowed
    assert _begin(engine, address=None).keys[1] == "ip:-"
