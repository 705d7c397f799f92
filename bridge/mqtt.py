"""paho-mqtt clients made the same way for the bridge, ``lumbarest fleet`` and the Rooms screen.

MQTT 3.1.1, TLS with the configured CA (or the system's), user/password or a client
certificate, reconnects with backoff (1 s doubling to 30 s) by paho's own network thread.
"""

from __future__ import annotations

import ssl
import uuid

import paho.mqtt.client as mqtt

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
                         protocol=mqtt.MQTTv311, clean_session=clean_session)
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
    client.connect_async(config.broker.host, config.broker.port, keepalive=config.keepalive_s)
    client.loop_start()
