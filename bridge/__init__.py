"""The MQTT bridge: the appliance's state and alarms to a clinic's broker (docs/fleet.md)."""
