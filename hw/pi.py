"""The Raspberry Pi's side of the hardware: the SPI bus and the MAX31865 chip-select.

The only module that imports ``board``, ``busio`` and ``digitalio`` (Adafruit Blinka). On a PC
``board`` is empty and on an unknown ARM board it raises, so the import happens inside the
functions and any failure is reported to the caller, which latches ``sensor_missing`` and keeps
the heater off.

On a Pi 3/4/5 Blinka's pin module imports ``gpiod`` (the libgpiod v2 bindings, the ``pi`` extra
and the image's wheel list). ``python -m hw.pi`` imports all three modules and exits non-zero if
Blinka cannot drive this board; the image build runs it in the arm64 root with the board forced
to a Pi 4 (``BLINKA_FORCEBOARD`` / ``BLINKA_FORCECHIP``), so a missing dependency fails the build
instead of the first power-on.
"""

import os
import sys

# The image's packages are fixed: Blinka must never stop to offer to pip-install something when
# the appliance or `lumbarest hwcheck` runs from a terminal (the unit sets it too).
os.environ.setdefault("BLINKA_SKIP_DEPENDENCY_CHECK", "1")


def blinka_board() -> str:
    """Import Blinka's ``board``, ``busio`` and ``digitalio``; return the board's id."""
    import board  # noqa: PLC0415 - Pi-only, see the module docstring
    import busio  # noqa: PLC0415,F401
    import digitalio  # noqa: PLC0415,F401

    if not hasattr(board, "SPI"):
        raise RuntimeError(f"Blinka's board {board.board_id!r} has no SPI bus")
    return str(board.board_id)


def build_spi(cs_pin: int):
    """``(spi, cs)`` for the MAX31865 on SPI0 with chip-select on GPIO ``cs_pin``."""
    import board  # noqa: PLC0415 - Pi-only, see the module docstring
    import digitalio  # noqa: PLC0415

    spi = board.SPI()
    cs = digitalio.DigitalInOut(getattr(board, f"D{cs_pin}"))
    return spi, cs


def main() -> int:
    try:
        board_id = blinka_board()
    except Exception as exc:  # noqa: BLE001 - any failure fails the check
        print(f"Blinka cannot drive this board: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"Blinka: board {board_id}, board/busio/digitalio import")
    return 0


if __name__ == "__main__":
    sys.exit(main())
