"""The two small policies of the bridge, pure and with time passed in.

- :class:`Throttle`: when to publish the retained state (on change, at most every 0.5 s, and a
  heartbeat every 30 s even without change).
- :class:`Outbox`: alarm events waiting for the broker, bounded, each removed only when the broker
  acknowledged it (QoS 1 PUBACK).
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from typing import Any, Hashable


class Throttle:
    """Publish on change, at most once per ``min_interval_s``, and every ``heartbeat_s``.

    A change that arrives too soon is not lost: it stays pending and :meth:`due` says so at the
    first call after the interval (the bridge calls it with every state from the appliance, at
    2–4 Hz, so a pending change goes out within 0.5 s plus one push).
    """

    def __init__(self, min_interval_s: float = 0.5, heartbeat_s: float = 30.0):
        self.min_interval_s = min_interval_s
        self.heartbeat_s = heartbeat_s
        self._sent_key: Any = object()
        self._sent_at_s: float | None = None

    def due(self, key: Hashable, now_s: float) -> bool:
        """Whether the state with this change key should be published now."""
        if self._sent_at_s is None:
            return True
        since = now_s - self._sent_at_s
        if key != self._sent_key:
            return since >= self.min_interval_s
        return since >= self.heartbeat_s

    def sent(self, key: Hashable, now_s: float) -> None:
        self._sent_key = key
        self._sent_at_s = now_s

    def reset(self) -> None:
        """Forget what was sent (after a reconnect the broker must get the state at once)."""
        self._sent_key = object()
        self._sent_at_s = None


class Outbox:
    """Alarm events not yet acknowledged by the broker, at most ``max_events``.

    An event is *pending* until it is handed to the MQTT client, then *in flight* until its
    PUBACK. While the broker is away events stay pending; the MQTT client itself re-sends what
    was in flight when the connection dropped. When full, the oldest pending event is dropped
    (and counted, and the count published in the state), never one in flight: the bound is a
    promise about memory, and the newest events describe the present.
    """

    def __init__(self, max_events: int = 1000):
        if max_events < 1:
            raise ValueError("max_events must be at least 1")
        self.max_events = max_events
        self._seq = itertools.count(1)
        self._pending: OrderedDict[int, dict] = OrderedDict()
        self._in_flight: dict[int, dict] = {}
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._pending) + len(self._in_flight)

    def add(self, event: dict) -> dict:
        """Queue one event; it gets a ``seq`` number (per bridge run) for de-duplication."""
        event = dict(event, seq=next(self._seq))
        self._pending[event["seq"]] = event
        while len(self) > self.max_events and self._pending:
            self._pending.popitem(last=False)
            self.dropped += 1
        return event

    def pending(self) -> list[dict]:
        """The events to hand to the client now, oldest first."""
        return list(self._pending.values())

    def handed(self, seq: int) -> None:
        """The event is with the MQTT client now (published; waiting for PUBACK)."""
        event = self._pending.pop(seq, None)
        if event is not None:
            self._in_flight[seq] = event

    def acknowledged(self, seq: int) -> None:
        """The broker has it."""
        self._in_flight.pop(seq, None)
        self._pending.pop(seq, None)

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)
