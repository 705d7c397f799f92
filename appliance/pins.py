"""The clinic and service PINs: hashed storage, verification and lockout.

PINs are never stored in clear: each is kept as ``scrypt$N$r$p$salt$hash`` (hex, a random 16-byte
salt per PIN) through :meth:`History.set_setting` under ``pin.<role>``. Until a PIN has been set,
the documented factory default applies (clinic ``1234``, service ``7391``, see docs/protocol.md);
:meth:`PinStore.is_default` tells a UI to ask for a change at installation.

Lockout: 5 wrong tries in a row for a role lock that role for 300 s; while locked, every try fails
without being checked and without extending the lock. A correct PIN resets the count. Time is
passed in (``time.monotonic()`` seconds), so the logic is pure and testable; the lockout state is
deliberately kept in memory only (a restart clears it, which costs an attacker a power cycle per
5 tries).

Hashing takes tens of milliseconds; the API server runs :meth:`PinStore.matches` in a worker thread
(it only reads) and keeps :meth:`begin` / :meth:`record` on the event loop.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

ROLES = ("clinic", "service")
DEFAULT_PINS = {"clinic": "1234", "service": "7391"}
MAX_TRIES = 5
LOCKOUT_S = 300.0
MIN_LEN, MAX_LEN = 4, 8

_N, _R, _P = 2 ** 14, 8, 1


def hash_pin(pin: str, *, n: int = _N, r: int = _R, p: int = _P, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(pin.encode(), salt=salt, n=n, r=r, p=p, maxmem=128 * 1024 * 1024,
                            dklen=32)
    return f"scrypt${n}${r}${p}${salt.hex()}${digest.hex()}"


def check_hash(pin: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        computed = hash_pin(pin, n=int(n), r=int(r), p=int(p), salt=bytes.fromhex(salt))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(computed.rsplit("$", 1)[1], digest)


def valid_pin_format(pin: object) -> bool:
    return isinstance(pin, str) and pin.isascii() and pin.isdigit() and MIN_LEN <= len(pin) <= MAX_LEN


@dataclass
class _Tries:
    failures: int = 0
    locked_until: float = 0.0


class PinStore:
    """PINs for the roles ``clinic`` and ``service``, kept hashed in the history settings."""

    def __init__(self, history, *, max_tries: int = MAX_TRIES, lockout_s: float = LOCKOUT_S):
        self.history = history
        self.max_tries = max_tries
        self.lockout_s = lockout_s
        self._tries = {role: _Tries() for role in ROLES}
        self._default_hash: dict[str, str] = {}

    @staticmethod
    def _check_role(role: str) -> None:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}")

    def _stored(self, role: str) -> str:
        stored = self.history.get_setting(f"pin.{role}")
        if isinstance(stored, str) and stored.startswith("scrypt$"):
            return stored
        # The factory default, hashed once per process (so checking it costs the same).
        if role not in self._default_hash:
            self._default_hash[role] = hash_pin(DEFAULT_PINS[role])
        return self._default_hash[role]

    def is_default(self, role: str) -> bool:
        self._check_role(role)
        return not isinstance(self.history.get_setting(f"pin.{role}"), str)

    # -- lockout (event-loop side) ---------------------------------------------------------

    def locked_s(self, role: str, now: float) -> float:
        """Seconds the role stays locked out (0 when it is not)."""
        self._check_role(role)
        tries = self._tries[role]
        if tries.locked_until and now >= tries.locked_until:
            tries.locked_until = 0.0
            tries.failures = 0
        return max(0.0, tries.locked_until - now)

    def begin(self, role: str, now: float) -> bool:
        """Whether a try for ``role`` may be checked now (False while locked out)."""
        return self.locked_s(role, now) == 0.0

    def record(self, role: str, ok: bool, now: float) -> None:
        """Count the outcome of a checked try; the 5th failure in a row locks the role."""
        self._check_role(role)
        tries = self._tries[role]
        if ok:
            tries.failures = 0
            return
        tries.failures += 1
        if tries.failures >= self.max_tries:
            tries.locked_until = now + self.lockout_s

    # -- hashing (safe in a worker thread: reads only) -------------------------------------

    def stored_hashes(self) -> dict[str, str]:
        """The hashes to check against; read on the event loop, then given to :func:`matches`."""
        return {role: self._stored(role) for role in ROLES}

    @staticmethod
    def matches(pin: str, stored: str) -> bool:
        return valid_pin_format(pin) and check_hash(pin, stored)

    # -- the whole thing, synchronously ----------------------------------------------------

    def verify(self, role: str, pin: str, now: float) -> bool:
        """Check ``pin`` for ``role`` at monotonic time ``now``, counting failures."""
        if not self.begin(role, now):
            return False
        ok = self.matches(pin, self._stored(role))
        self.record(role, ok, now)
        return ok

    def change(self, role: str, new_pin: str) -> None:
        """Set a new PIN (4 to 8 digits). The caller has checked the right to do so."""
        self._check_role(role)
        if not valid_pin_format(new_pin):
            raise ValueError(f"a PIN is {MIN_LEN} to {MAX_LEN} digits")
        self.history.set_setting(f"pin.{role}", hash_pin(new_pin))
        self._tries[role] = _Tries()
