"""The one check in front of every admin action."""

from __future__ import annotations

import hmac
import math
import threading
import time
from collections.abc import Callable


class AdminCheck:
    """The one check in front of every admin action (curator view, re-ingest, run evals).

    Open on loopback; on another address only with RAG_ADMIN_PASSWORD set. Guesses are compared
    as UTF-8 bytes in constant time. Failures are counted per client address: after each one
    that client is refused at once, without comparing, for a wait that doubles (0.5 s, 1 s,
    2 s ... up to 8 s). Nothing sleeps, so a guess never holds a lock or a queue slot that
    answering needs, and one client's failures never delay another's right password.
    """

    def __init__(
        self,
        password: str,
        *,
        loopback: bool,
        delay: float = 0.5,
        cap: float = 8.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._password = password.encode("utf-8", "surrogatepass")
        self.enabled = loopback or bool(password)
        self.needs_password = bool(password)
        self._delay, self._cap, self._clock = delay, cap, clock
        self._failures: dict[str, tuple[int, float]] = {}  # client -> (failures, refused until)
        self._lock = threading.Lock()

    def allows(self, guess: object, client: str = "") -> bool:
        """Is this guess the admin password (or is none needed)? Always False while the client
        waits out its last failure; an empty guess is no attempt and costs nothing."""
        return self.check(guess, client) == ""

    def check(self, guess: object, client: str = "") -> str:
        """'' when the guess is allowed, else why not (wrong password, or wait N s)."""
        if not self.enabled:
            return "admin actions are disabled on this address"
        if not self.needs_password:
            return ""
        given = guess.encode("utf-8", "surrogatepass") if isinstance(guess, str) else b""
        if not given:
            return "wrong or missing admin password"
        now = self._clock()
        with self._lock:
            if len(self._failures) > 10_000:  # bounded: forget the waits that are over
                self._failures = {k: v for k, v in self._failures.items() if v[1] > now}
            failures, until = self._failures.get(client, (0, 0.0))
            if now < until:
                return f"too many wrong passwords; try again in {math.ceil(until - now)} s"
            if hmac.compare_digest(given, self._password):
                self._failures.pop(client, None)
                return ""
            failures += 1
            wait = min(self._delay * 2 ** (failures - 1), self._cap)
            self._failures[client] = (failures, now + wait)
            return "wrong or missing admin password"
