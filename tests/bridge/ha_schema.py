"""Home Assistant's MQTT discovery rules for the two entity types the bridge announces.

Written from Home Assistant's documentation (home-assistant.io/integrations/mqtt/ "Discovery",
/integrations/sensor.mqtt/, /integrations/binary_sensor.mqtt/, and the sensor / binary sensor
device-class tables of developers.home-assistant.io) and the checks its MQTT sensor platform
makes on a discovery payload: unknown keys are an error (HA's schemas are strict), required keys,
types, device classes and the units allowed for them, ``options`` only for ``enum`` sensors and
never with a unit or a ``state_class``, the device block only with a ``unique_id``, the topic
layout ``<prefix>/<component>/[<node_id>/]<object_id>/config``.
"""

from __future__ import annotations

import re

TOPIC_ID = re.compile(r"^[a-zA-Z0-9_-]+$")

COMMON_KEYS = {
    "availability", "availability_mode", "availability_template", "availability_topic",
    "default_entity_id", "device", "enabled_by_default", "encoding", "entity_category",
    "entity_picture", "icon", "json_attributes_template", "json_attributes_topic", "name",
    "object_id", "origin", "payload_available", "payload_not_available", "platform", "qos",
    "unique_id", "value_template", "state_topic",
}
SENSOR_KEYS = COMMON_KEYS | {"device_class", "expire_after", "force_update",
                             "last_reset_value_template", "options", "state_class",
                             "suggested_display_precision", "unit_of_measurement"}
BINARY_SENSOR_KEYS = COMMON_KEYS | {"device_class", "expire_after", "force_update", "off_delay",
                                    "payload_off", "payload_on"}
DEVICE_KEYS = {"configuration_url", "connections", "hw_version", "identifiers", "manufacturer",
               "model", "model_id", "name", "serial_number", "suggested_area", "sw_version",
               "via_device"}

SENSOR_DEVICE_CLASSES = {
    "absolute_humidity", "apparent_power", "aqi", "area", "atmospheric_pressure", "battery",
    "blood_glucose_concentration", "carbon_dioxide", "carbon_monoxide", "conductivity", "current",
    "data_rate", "data_size", "date", "distance", "duration", "energy", "energy_distance",
    "energy_storage", "enum", "frequency", "gas", "humidity", "illuminance", "irradiance",
    "moisture", "monetary", "nitrogen_dioxide", "nitrogen_monoxide", "nitrous_oxide", "ozone",
    "ph", "pm1", "pm10", "pm25", "power", "power_factor", "precipitation",
    "precipitation_intensity", "pressure", "reactive_energy", "reactive_power",
    "signal_strength", "sound_pressure", "speed", "sulphur_dioxide", "temperature", "timestamp",
    "volatile_organic_compounds", "volatile_organic_compounds_parts", "voltage", "volume",
    "volume_flow_rate", "volume_storage", "water", "weight", "wind_direction", "wind_speed",
}
BINARY_SENSOR_DEVICE_CLASSES = {
    "battery", "battery_charging", "carbon_monoxide", "cold", "connectivity", "door",
    "garage_door", "gas", "heat", "light", "lock", "moisture", "motion", "moving", "occupancy",
    "opening", "plug", "power", "presence", "problem", "running", "safety", "smoke", "sound",
    "tamper", "update", "vibration", "window",
}
# The units HA accepts for the device classes used here (a wrong unit disables the entity).
DEVICE_CLASS_UNITS = {"temperature": {"°C", "°F", "K"},
                      "duration": {"d", "h", "min", "s", "ms", "µs"}}
STATE_CLASSES = {"measurement", "measurement_angle", "total", "total_increasing"}
ENTITY_CATEGORIES = {"config", "diagnostic"}


def _topic_ok(topic) -> bool:
    return isinstance(topic, str) and topic != "" and "+" not in topic and "#" not in topic \
        and "\0" not in topic


def validate(topic: str, document: dict, discovery_prefix: str = "homeassistant") -> list[str]:
    """Every problem Home Assistant would have with this discovery message (empty: none)."""
    problems = []
    parts = topic.split("/")
    if not topic.startswith(discovery_prefix + "/") or parts[-1] != "config" \
            or len(parts) not in (4, 5):
        return [f"{topic}: not <prefix>/<component>/[<node_id>/]<object_id>/config"]
    component = parts[1]
    if not all(TOPIC_ID.match(p) for p in parts[2:-1]):
        problems.append(f"{topic}: node_id and object_id must be [a-zA-Z0-9_-]+")
    allowed = {"sensor": SENSOR_KEYS, "binary_sensor": BINARY_SENSOR_KEYS}.get(component)
    if allowed is None:
        return [f"{topic}: component {component!r} is not checked here"]
    if not isinstance(document, dict):
        return [f"{topic}: the payload is not a JSON object"]
    for key in sorted(set(document) - allowed):
        problems.append(f"{key}: not a {component} option")
    if not _topic_ok(document.get("state_topic")):
        problems.append("state_topic: required, a topic without wildcards")
    for key in ("availability_topic", "json_attributes_topic"):
        if key in document and not _topic_ok(document[key]):
            problems.append(f"{key}: a topic without wildcards")
    if "availability" in document and "availability_topic" in document:
        problems.append("availability and availability_topic must not be used together")
    for key in ("name", "value_template", "json_attributes_template", "icon", "unique_id",
                "payload_available", "payload_not_available", "payload_on", "payload_off"):
        if key in document and not isinstance(document[key], str):
            problems.append(f"{key}: a string")
    if "json_attributes_template" in document and "json_attributes_topic" not in document:
        problems.append("json_attributes_template needs json_attributes_topic")
    if "icon" in document and not re.match(r"^[a-z0-9-]+:[a-z0-9-]+$", document["icon"]):
        problems.append("icon: prefix:name, e.g. mdi:alarm-light")
    if document.get("qos", 0) not in (0, 1, 2):
        problems.append("qos: 0, 1 or 2")
    if "entity_category" in document and document["entity_category"] not in ENTITY_CATEGORIES:
        problems.append("entity_category: config or diagnostic")
    device = document.get("device")
    if device is not None:
        if "unique_id" not in document:
            problems.append("device: needs unique_id (HA's device registry)")
        if not isinstance(device, dict):
            problems.append("device: an object")
        else:
            for key in sorted(set(device) - DEVICE_KEYS):
                problems.append(f"device.{key}: not a device option")
            ids = device.get("identifiers")
            if not (isinstance(ids, list) and ids and all(isinstance(i, str) for i in ids)) \
                    and not isinstance(ids, str) and "connections" not in device:
                problems.append("device.identifiers: a list of strings (or connections)")
    device_class = document.get("device_class")
    unit = document.get("unit_of_measurement")
    if component == "binary_sensor":
        if device_class is not None and device_class not in BINARY_SENSOR_DEVICE_CLASSES:
            problems.append(f"device_class: {device_class!r} is not a binary sensor class")
        return problems
    if device_class is not None and device_class not in SENSOR_DEVICE_CLASSES:
        problems.append(f"device_class: {device_class!r} is not a sensor class")
    if "state_class" in document and document["state_class"] not in STATE_CLASSES:
        problems.append(f"state_class: {document['state_class']!r} is not a state class")
    if device_class in DEVICE_CLASS_UNITS and unit not in DEVICE_CLASS_UNITS[device_class]:
        problems.append(f"unit_of_measurement: {unit!r} is not valid for {device_class}")
    if "options" in document:
        options = document["options"]
        if not (isinstance(options, list) and options and all(isinstance(o, str) for o in options)):
            problems.append("options: a non-empty list of strings")
        if "state_class" in document:
            problems.append("options: not allowed together with state_class")
        if device_class not in (None, "enum"):
            problems.append("options: only for device_class enum")
    if device_class == "enum":
        if unit is not None:
            problems.append("unit_of_measurement: not valid with device_class enum")
        if "state_class" in document:
            problems.append("state_class: not valid with device_class enum")
        if "options" not in document:
            problems.append("options: required with device_class enum")
    precision = document.get("suggested_display_precision")
    if precision is not None and not (isinstance(precision, int) and precision >= 0):
        problems.append("suggested_display_precision: a non-negative integer")
    return problems
