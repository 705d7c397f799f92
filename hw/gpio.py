"""The Pi's GPIO pin factory: gpiozero's lgpio factory, told which board it runs on.

gpiozero's lgpio factory needs the Pi's revision code (for the header layout and to pick
gpiochip4 on a Pi 5) and reads it from ``/proc/device-tree/system/linux,revision``, then from a
``Revision`` line in ``/proc/cpuinfo``. Debian's arm64 kernel prints no such line, and the device
tree node is only there when the firmware adds it: without both, gpiozero raises
``PinUnknownPi`` and neither the heater nor ``--failsafe-off`` could touch a pin. So the revision
is looked up here, with one more source: the board's model name in ``/proc/device-tree/model``,
mapped to a revision code of that model. If none of them answers, :class:`PiRevisionUnknown`
names the files, and the appliance starts with ``output_missing`` latched (heater off).
"""

import struct
from pathlib import Path

DEVICE_TREE = Path("/proc/device-tree")
CPUINFO = Path("/proc/cpuinfo")
REVISION_NODE = "system/linux,revision"
MODEL_NODE = "model"

# Model name -> (processor, type) of the new-style revision code, for the boards that have the
# 40-pin header this appliance uses. Longest names first, so "3 Model B Plus" is not a "3 Model B".
_MODELS = {
    "Raspberry Pi 3 Model B Plus": (2, 0x0D),
    "Raspberry Pi 3 Model A Plus": (2, 0x0E),
    "Raspberry Pi 3 Model B": (2, 0x08),
    "Raspberry Pi Zero 2 W": (2, 0x12),
    "Raspberry Pi 4 Model B": (3, 0x11),
    "Raspberry Pi 400": (3, 0x13),
    "Raspberry Pi Compute Module 4": (3, 0x14),
    "Raspberry Pi 5": (4, 0x17),
}


class PiRevisionUnknown(RuntimeError):
    """No source tells which Raspberry Pi this is."""


def revision_for_model(model: str) -> int | None:
    """A new-style revision code for the board called ``model`` (1 GB, revision 0: gpiozero
    only uses the type and the header layout), or ``None`` if it is not a known board."""
    for name in sorted(_MODELS, key=len, reverse=True):
        if model.startswith(name):
            processor, board_type = _MODELS[name]
            return 0x800000 | 2 << 20 | processor << 12 | board_type << 4
    return None


def find_pi_revision(device_tree: Path = DEVICE_TREE, cpuinfo: Path = CPUINFO) -> tuple[int, str]:
    """``(revision code, where it came from)``; raises :class:`PiRevisionUnknown`."""
    node = device_tree / REVISION_NODE
    try:
        data = node.read_bytes()
        if len(data) >= 4:
            return struct.unpack(">L", data[:4])[0], str(node)
    except OSError:
        pass
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("Revision"):
                return int(line.split(":", 1)[1].strip(), 16), str(cpuinfo)
    except (OSError, ValueError, IndexError):
        pass
    model_file = device_tree / MODEL_NODE
    try:
        model = model_file.read_bytes().rstrip(b"\0").decode("ascii", "replace").strip()
    except OSError:
        model = ""
    revision = revision_for_model(model)
    if revision is not None:
        return revision, f"{model_file} ({model})"
    raise PiRevisionUnknown(
        f"cannot tell which Raspberry Pi this is: {node} is missing, {cpuinfo} has no Revision "
        f"line and {model_file} ({model or 'missing'}) names no supported board; the GPIO "
        "pins stay untouched (heater off)")


def with_revision(factory_class, revision: int):
    """A subclass of a gpiozero pin factory that uses ``revision`` instead of looking it up."""

    class Factory(factory_class):
        def _get_revision(self):
            return revision

    Factory.__name__ = Factory.__qualname__ = f"{factory_class.__name__}WithRevision"
    return Factory


def make_pin_factory(*, device_tree: Path = DEVICE_TREE, cpuinfo: Path = CPUINFO,
                     factory_class=None):
    """gpiozero's lgpio pin factory (or ``factory_class``) for this board.

    The result has ``revision_source``: the file the revision came from.
    """
    revision, source = find_pi_revision(device_tree, cpuinfo)
    if factory_class is None:
        from gpiozero.pins.lgpio import LGPIOFactory as factory_class  # noqa: PLC0415,N813
    factory = with_revision(factory_class, revision)()
    factory.revision_source = source
    return factory
