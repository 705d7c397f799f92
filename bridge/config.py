"""``/etc/lumbarest/bridge.toml``: which broker, how to log in, what to call this unit.

Pure: parsing and validation only. The bridge refuses to start on any problem (systemd logs the
sentence), because a half-configured bridge that silently publishes nowhere would let a clinic
believe its front desk sees the alarms.

Example::

    broker = "mqtts://broker.clinic.lan:8883"
    username = "room-3"
    password_file = "/etc/lumbarest/bridge.password"   # or password = "..."
    ca_file = "/etc/lumbarest/clinic-ca.pem"
    # client_cert = "/etc/lumbarest/room-3.pem"
    # client_key = "/etc/lumbarest/room-3.key"
    # unit_id = "room-3"                   # default: the appliance's (see appliance/unitid.py)
    # prefix = "lumbarest/{unit_id}/"
    # discovery_prefix = "homeassistant"   # "" turns Home Assistant discovery off
    # allow_remote_stop = false            # true: `stop` and `silence` from the broker
    # allow_insecure = false               # true: accept mqtt:// (plain TCP, no TLS)
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

CONFIG_FILE = Path("/etc/lumbarest/bridge.toml")
DEFAULT_PREFIX = "lumbarest/{unit_id}/"
UNIT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
OUTBOX_MAX_EVENTS = 1000          # alarm events kept while the broker is away (docs/fleet.md)
_KEYS = {"broker", "username", "password", "password_file", "ca_file", "client_cert",
         "client_key", "unit_id", "prefix", "discovery_prefix", "allow_remote_stop",
         "allow_insecure", "keepalive_s", "outbox_max_events"}


class BridgeConfigError(ValueError):
    """The bridge configuration cannot be used; the message says what to change."""


@dataclass(frozen=True)
class Broker:
    """Where the broker is: ``mqtts://host:8883`` (TLS) or ``mqtt://host:1883`` (plain)."""

    host: str
    port: int
    tls: bool

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


@dataclass(frozen=True)
class BridgeConfig:
    broker: Broker
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    unit_id: str | None = None
    prefix: str = DEFAULT_PREFIX
    discovery_prefix: str = "homeassistant"
    allow_remote_stop: bool = False
    allow_insecure: bool = False
    keepalive_s: int = 30
    outbox_max_events: int = OUTBOX_MAX_EVENTS

    def topic_base(self, unit_id: str) -> str:
        """``lumbarest/<unit_id>/``: every topic of one unit starts with it."""
        return self.prefix.replace("{unit_id}", unit_id)

    def fleet_pattern(self, leaf: str) -> str:
        """The subscription that sees ``leaf`` (``state``, ``availability``) of every unit."""
        return self.prefix.replace("{unit_id}", "+") + leaf

    def split_topic(self, topic: str) -> tuple[str, str] | None:
        """``(unit_id, leaf)`` for a topic under this prefix, e.g. ``("room-3", "state")``."""
        head, _, tail = self.prefix.partition("{unit_id}")
        match = re.fullmatch(re.escape(head) + r"([^/]+)" + re.escape(tail) + r"(.+)", topic)
        return (match.group(1), match.group(2)) if match else None


def parse_broker(url: str, *, allow_insecure: bool) -> Broker:
    """``mqtts://host[:port]``; ``mqtt://`` only with ``allow_insecure``."""
    if not isinstance(url, str) or not url:
        raise BridgeConfigError("broker: give the broker as a URL, e.g. \"mqtts://broker:8883\"")
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts"):
        raise BridgeConfigError(f"broker: {url!r} is not an mqtts:// or mqtt:// URL")
    if parts.scheme == "mqtt" and not allow_insecure:
        raise BridgeConfigError(
            f"broker: {url!r} is plain TCP: alarms and credentials would cross the network "
            "unencrypted. Use mqtts:// (TLS), or set allow_insecure = true to accept it.")
    if parts.username or parts.password:
        raise BridgeConfigError("broker: put the user name and password in username / "
                                "password_file, not in the URL")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise BridgeConfigError(f"broker: {url!r} has a path or query; give only host and port")
    host = parts.hostname
    if not host:
        raise BridgeConfigError(f"broker: {url!r} names no host")
    try:
        port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
    except ValueError:
        raise BridgeConfigError(f"broker: {url!r} has an invalid port") from None
    return Broker(host=unquote(host), port=port, tls=parts.scheme == "mqtts")


def _path(data: dict, key: str, base: Path | None) -> Path | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise BridgeConfigError(f"{key}: give a file path")
    path = Path(value)
    return path if path.is_absolute() or base is None else base / path


def from_dict(data: dict, *, base_dir: Path | None = None) -> BridgeConfig:
    """Validate a parsed TOML table (``base_dir`` resolves relative file paths)."""
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise BridgeConfigError(f"{unknown[0]}: unknown setting (known: {', '.join(sorted(_KEYS))})")
    for key in ("allow_remote_stop", "allow_insecure"):
        if not isinstance(data.get(key, False), bool):
            raise BridgeConfigError(f"{key}: true or false")
    allow_insecure = data.get("allow_insecure", False)
    broker = parse_broker(data.get("broker", ""), allow_insecure=allow_insecure)
    password = data.get("password")
    password_file = _path(data, "password_file", base_dir)
    if password is not None and password_file is not None:
        raise BridgeConfigError("password and password_file: give one of them")
    if password_file is not None:
        try:
            password = password_file.read_text().strip()
        except OSError as exc:
            raise BridgeConfigError(f"password_file: cannot read {password_file}: "
                                    f"{exc.strerror or exc}") from None
    username = data.get("username")
    for key, value in (("username", username), ("password", password)):
        if value is not None and (not isinstance(value, str) or not value):
            raise BridgeConfigError(f"{key}: a non-empty string")
    if password is not None and username is None:
        raise BridgeConfigError("password: also give the username")
    ca_file = _path(data, "ca_file", base_dir)
    client_cert = _path(data, "client_cert", base_dir)
    client_key = _path(data, "client_key", base_dir)
    if (client_cert is None) != (client_key is None):
        raise BridgeConfigError("client_cert and client_key: give both or neither")
    if not broker.tls and (ca_file or client_cert):
        raise BridgeConfigError("ca_file / client_cert need an mqtts:// broker")
    for key, path in (("ca_file", ca_file), ("client_cert", client_cert),
                      ("client_key", client_key)):
        if path is not None and not path.is_file():
            raise BridgeConfigError(f"{key}: {path} does not exist")
    unit_id = data.get("unit_id")
    if unit_id is not None and (not isinstance(unit_id, str) or not UNIT_ID.match(unit_id)):
        raise BridgeConfigError("unit_id: 1 to 32 of a-z 0-9 _ - (starting with a letter or "
                                "digit), e.g. \"room-3\"")
    prefix = data.get("prefix", DEFAULT_PREFIX)
    if not isinstance(prefix, str) or prefix.count("{unit_id}") != 1 \
            or any(c in prefix for c in "+#\0") or prefix.startswith("/") \
            or not prefix.replace("{unit_id}", "x").strip("/"):
        raise BridgeConfigError("prefix: a topic prefix containing {unit_id} once and no + or #, "
                                f"e.g. {DEFAULT_PREFIX!r}")
    if not prefix.endswith("/"):
        prefix += "/"
    discovery_prefix = data.get("discovery_prefix", "homeassistant")
    if not isinstance(discovery_prefix, str) or any(c in discovery_prefix for c in "+#\0"):
        raise BridgeConfigError("discovery_prefix: a topic without + or # (\"\" turns "
                                "Home Assistant discovery off)")
    keepalive_s = data.get("keepalive_s", 30)
    if not isinstance(keepalive_s, int) or isinstance(keepalive_s, bool) \
            or not 5 <= keepalive_s <= 300:
        raise BridgeConfigError("keepalive_s: an integer from 5 to 300")
    outbox = data.get("outbox_max_events", OUTBOX_MAX_EVENTS)
    if not isinstance(outbox, int) or isinstance(outbox, bool) or not 10 <= outbox <= 100_000:
        raise BridgeConfigError("outbox_max_events: an integer from 10 to 100000")
    return BridgeConfig(broker=broker, username=username, password=password, ca_file=ca_file,
                        client_cert=client_cert, client_key=client_key, unit_id=unit_id,
                        prefix=prefix, discovery_prefix=discovery_prefix.strip("/"),
                        allow_remote_stop=data.get("allow_remote_stop", False),
                        allow_insecure=allow_insecure, keepalive_s=keepalive_s,
                        outbox_max_events=outbox)


def load(path: Path) -> BridgeConfig:
    """Read and validate one file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BridgeConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise BridgeConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        return from_dict(data, base_dir=path.parent)
    except BridgeConfigError as exc:
        raise BridgeConfigError(f"{path}: {exc}") from None


def effective_unit_id(config: BridgeConfig | None, appliance_unit_id: str | None) -> str | None:
    """The id this unit is published under: the bridge file's ``unit_id``, else the appliance's."""
    if config is not None and config.unit_id:
        return config.unit_id
    return appliance_unit_id
