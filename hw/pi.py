"""The Raspberry Pi's side of the hardware: the SPI bus and the MAX31865 chip-select.

The only module that imports ``board`` and ``digitalio`` (Adafruit Blinka). On a PC ``board`` is
empty and on an unknown ARM board it raises, so the import happens inside the function and any
failure is reported to the caller, which latches ``sensor_missing`` and keeps the heater off.
"""


def build_spi(cs_pin: int):
    """``(spi, cs)`` for the MAX31865 on SPI0 with chip-select on GPIO ``cs_pin``."""
    import board  # noqa: PLC0415 - Pi-only, see the module docstring
    import digitalio  # noqa: PLC0415

    spi = board.SPI()
    cs = digitalio.DigitalInOut(getattr(board, f"D{cs_pin}"))
    return spi, cs
