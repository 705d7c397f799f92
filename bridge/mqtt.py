"""paho-mqtt clients made the same way for the bridge, ``lumbarest fleet`` and the Rooms screen.

MQTT 5 (Mosquitto has it since 1.6; the bridge needs its subscription options, see
:func:`command_subscription`), TLS with the configured CA (or the system's), user/password or a client
certificate, reconnects with backoff (1 s doubling to 30 s) by paho's own network thread.
"""

from __future__ import annotations

import ssl
import sys
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

from bridge.config import BridgeConfig

RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 30


def make_client(config: BridgeConfig, client_id: str | None = None, *,
                will: tuple[str, str] | None = None, clean_session: bool = True) -> mqtt.Client:
    """A configured, not yet connected client.

    :param client_id: default: a random ``lumbarest-<hex>`` (viewers); the bridge passes a fixed
        one per unit.
    :param will: ``(topic, payload)`` published retained by the broker when this client dies.
    """
    client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                         client_id=client_id or f"lumbarest-{uuid.uuid4().hex[:12]}",
                         protocol=mqtt.MQTTv5)
    if config.broker.tls:
        context = ssl.create_default_context(cafile=str(config.ca_file) if config.ca_file else None)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if config.client_cert:
            context.load_cert_chain(str(config.client_cert), str(config.client_key))
        client.tls_set_context(context)
    if config.username:
        client.username_pw_set(config.username, config.password)
    if will is not None:
        client.will_set(will[0], will[1], qos=1, retain=True)
    client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
    return client


def connect_in_background(client: mqtt.Client, config: BridgeConfig) -> None:
    """Start paho's network thread; it connects, and reconnects after every loss, by itself."""
    client.connect_async(config.broker.host, config.broker.port, keepalive=config.keepalive_s,
                         clean_start=True)
    client.loop_start()


def connect_error() -> str | None:
    """Inside an ``on_connect_fail`` callback: why the connection failed.

    paho calls that callback from within its ``except OSError`` block without passing the
    exception, so it is the one being handled (refused, unreachable, a TLS certificate that
    does not verify — the sentence staff need in the journal)."""
    exc = sys.exc_info()[1]
    return None if exc is None else (str(exc) or type(exc).__name__)


def command_subscription() -> SubscribeOptions:
    """QoS 1; no retained message at subscribe time, and the retain flag as it was published,
    so that a retained command is recognised and refused instead of acting at every reconnect
    (with MQTT 3.1.1 a subscriber cannot tell)."""
    return SubscribeOptions(qos=1, retainAsPublished=True,
                            retainHandling=SubscribeOptions.RETAIN_DO_NOT_SEND)
