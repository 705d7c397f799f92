"""A register-level MAX31865 on a fake SPI bus, so the real Adafruit driver runs on any PC.

The model follows the datasheet where the driver or the appliance can tell the difference, and is
never kinder than the part:

- registers 00-07 with auto-increment, writes at 0x80 + address; 01, 02 and 07 are read-only;
- one-shot conversions start on the rising edge of CS and finish after 52 / 62.5 ms (60 / 50 Hz);
- auto-convert mode (needs VBIAS): the *first* result arrives a full conversion time (52 / 62.5 ms,
  at least 20 ms) after auto mode is switched on, then one every 16.7 / 20 ms. Until then the RTD
  registers keep what they held: 0 after power-on (decodes as about -247 °C), or the last result
  from before a process restart, since the chip keeps its registers;
- the fault bit in bit 0 of the RTD LSB, programmable high/low thresholds checked on every
  conversion, the over/under-voltage check on every conversion, a latched fault status that only
  the fault-clear bit clears;
- the REFIN-/RTDIN- checks (D5, D4, D3) happen **only** in the fault-detection cycle, which takes
  about 0.6 ms and reads back D3:D2 = 00 when finished;
- the ADC quantises: a code is ``round(R / Rref * 32768)`` of the noisy resistance, so with
  ``noise_ohm`` 0 a steady mat gives the same code for as long as it stays steady.

What the RTD "sees" comes from ``rtd_ohms()``, normally the thermal model's sensor node.
Injected faults (``inject``) change what the chip reports; ``spi_error`` makes the bus itself fail:

- ``rtd_open`` / ``rtd_short``: full-scale / near-zero codes (thresholds trip); the fault cycle
  also sees RTDIN- low for an open element;
- ``refin``: the reference input is pulled up (REFIN- > 0.85 VBIAS): conversions saturate at full
  scale and only the fault-detection cycle names the cause (D5);
- ``ovuv``: an input over/under voltage, flagged on every conversion;
- ``stale``: the converter stopped (its oscillator or ADC dead, the SPI interface still
  answering): no new conversion, no one-shot, and a fault-detection cycle that never finishes.
  The RTD registers keep their last value, which looks exactly like a quiet, working chip;
- ``noise_spikes``: single readings 20-40 °C off every 2-5 s.
"""

import random
from typing import Callable

from hw.rtd import celsius_to_ohms

CONFIG_VBIAS = 0x80
CONFIG_AUTO = 0x40
CONFIG_ONE_SHOT = 0x20
CONFIG_FAULT_CYCLE = 0x0C
CONFIG_FAULT_CLEAR = 0x02
CONFIG_50HZ = 0x01

STATUS_HIGHTHRESH = 0x80
STATUS_LOWTHRESH = 0x40
STATUS_REFINLOW = 0x20
STATUS_RTDINLOW = 0x08
STATUS_OVUV = 0x04

CHIP_FAULTS = ("rtd_open", "rtd_short", "refin", "ovuv", "stale", "noise_spikes")

FAULT_CYCLE_S = 0.0006
#: What the fault-detection cycle finds for each injected fault (REFIN/RTDIN bits are only ever
#: set here, never by a conversion).
_CYCLE_BITS = {"rtd_open": STATUS_RTDINLOW, "refin": STATUS_REFINLOW, "ovuv": STATUS_OVUV}


class FakeMax31865:
    """The chip. ``clock`` gives time for conversions and spikes (``monotonic()``).

    :param rtd_ohms: what the RTD element measures right now, in ohms.
    :param ref_resistor_ohm: the board's reference resistor.
    :param noise_ohm: Gaussian noise of one conversion, 1 sigma, in ohms (0: a quiet converter).
    """

    def __init__(self, rtd_ohms: Callable[[], float], clock, *, nominal_ohm: float = 100.0,
                 ref_resistor_ohm: float = 430.0, noise_ohm: float = 0.0, seed: int = 0):
        self._rtd_ohms = rtd_ohms
        self._clock = clock
        self.nominal_ohm = nominal_ohm
        self.ref_resistor_ohm = ref_resistor_ohm
        self.noise_ohm = noise_ohm
        self._rng = random.Random(seed)
        self.registers = bytearray(8)
        self.registers[3:5] = b"\xff\xff"  # high fault threshold at power-on
        self._one_shot_done_at: float | None = None
        self._pending_one_shot = False
        self._next_auto_at: float | None = None   # when the next auto-mode result is due
        self._fault_cycle_done_at: float | None = None
        self.fault: str | None = None
        self._next_spike_at = 0.0
        self.conversions = 0
        self.fault_cycles = 0

    # -- fault injection -------------------------------------------------------------------
    def inject(self, fault: str | None) -> None:
        """Make the chip report ``fault`` (one of :data:`CHIP_FAULTS`) from now on; None clears."""
        if fault is not None and fault not in CHIP_FAULTS:
            raise ValueError(f"unknown chip fault {fault!r}")
        self._settle()  # conversions due before the fault happened, happened without it
        self.fault = fault
        self._next_spike_at = self._clock.monotonic() + self._rng.uniform(2.0, 5.0)

    @property
    def stopped(self) -> bool:
        return self.fault == "stale"

    # -- conversions -------------------------------------------------------------------------
    def _one_shot_s(self) -> float:
        return 0.0625 if self.registers[0] & CONFIG_50HZ else 0.052

    def _auto_period_s(self) -> float:
        return 0.020 if self.registers[0] & CONFIG_50HZ else 1 / 60

    def _ohms_now(self) -> float:
        ohms = self._rtd_ohms()
        if self.noise_ohm:
            ohms += self._rng.gauss(0.0, self.noise_ohm)
        if self.fault == "noise_spikes" and self._clock.monotonic() >= self._next_spike_at:
            self._next_spike_at = self._clock.monotonic() + self._rng.uniform(2.0, 5.0)
            offset_c = self._rng.uniform(20.0, 40.0) * self._rng.choice((-1, 1))
            ohms += celsius_to_ohms(offset_c, self.nominal_ohm) - self.nominal_ohm
        return ohms

    def _rtd_code(self) -> int:
        return max(0, min(0x7FFF, round(self._ohms_now() / self.ref_resistor_ohm * 32768)))

    def _convert(self) -> None:
        """Finish one conversion: update the RTD registers and the fault status."""
        self.conversions += 1
        status = 0
        if self.fault in ("rtd_open", "refin"):
            code = 0x7FFF       # an open element or a collapsed reference: full scale
        elif self.fault == "rtd_short":
            code = 0x0004
        else:
            code = self._rtd_code()
            if self.fault == "ovuv":
                status = STATUS_OVUV
        high = (self.registers[3] << 8 | self.registers[4]) >> 1
        low = (self.registers[5] << 8 | self.registers[6]) >> 1
        if code >= high:
            status |= STATUS_HIGHTHRESH
        if code <= low:
            status |= STATUS_LOWTHRESH
        self.registers[7] |= status
        word = (code << 1) | (1 if self.registers[7] else 0)
        self.registers[1], self.registers[2] = word >> 8, word & 0xFF

    def _settle(self) -> None:
        """Bring the registers up to date with the clock before the bus reads them."""
        now = self._clock.monotonic()
        if self.stopped:
            return  # a dead converter: nothing finishes, the registers keep what they hold
        config = self.registers[0]
        if self._one_shot_done_at is not None and now >= self._one_shot_done_at:
            self._one_shot_done_at = None
            self.registers[0] &= ~CONFIG_ONE_SHOT
            if config & CONFIG_VBIAS:
                self._convert()
        if self._fault_cycle_done_at is not None and now >= self._fault_cycle_done_at:
            self._fault_cycle_done_at = None
            self.registers[0] &= ~CONFIG_FAULT_CYCLE
            self.fault_cycles += 1
            self.registers[7] |= _CYCLE_BITS.get(self.fault, 0)
            if self.registers[7]:
                self.registers[2] |= 1
        # Auto-convert: one result per filter period, however often the bus polls. A poll that
        # comes late sees only the latest result.
        if self._next_auto_at is not None and now >= self._next_auto_at:
            period = self._auto_period_s()
            missed = int((now - self._next_auto_at) // period)
            self._next_auto_at += (missed + 1) * period
            self._convert()

    def _auto_running(self, config: int) -> bool:
        return bool(config & CONFIG_AUTO and config & CONFIG_VBIAS)

    # -- the bus side --------------------------------------------------------------------------
    def transfer(self, mosi: bytes) -> bytes:
        """One CS-low frame: address byte, then data bytes with auto-increment."""
        self._settle()
        if not mosi:
            return b""
        address = mosi[0] & 0x7F
        miso = bytearray(len(mosi))
        if mosi[0] & 0x80:
            for offset, value in enumerate(mosi[1:]):
                self._write(address + offset, value)
        else:
            for offset in range(1, len(mosi)):
                miso[offset] = self.registers[(address + offset - 1) & 0x07]
        return bytes(miso)

    def _write(self, address: int, value: int) -> None:
        if address == 0:
            if value & CONFIG_FAULT_CLEAR and not value & 0x2C:
                self.registers[7] = 0
                self.registers[2] &= 0xFE
            if value & CONFIG_ONE_SHOT and not self.stopped:
                self._pending_one_shot = True
            if (value & CONFIG_FAULT_CYCLE) == 0x04 and value & CONFIG_VBIAS and not self.stopped:
                self._fault_cycle_done_at = self._clock.monotonic() + FAULT_CYCLE_S
            was_running = self._auto_running(self.registers[0])
            self.registers[0] = value & ~CONFIG_FAULT_CLEAR
            running = self._auto_running(self.registers[0])
            if running and not was_running:
                # The first result of auto mode takes a whole conversion.
                self._next_auto_at = self._clock.monotonic() + self._one_shot_s()
            elif not running:
                self._next_auto_at = None
        elif 3 <= address <= 6:
            self.registers[address] = value
        # 01, 02 and 07 are read-only

    def cs_rising(self) -> None:
        """A one-shot conversion starts on the rising edge of CS after the write."""
        if self._pending_one_shot:
            self._pending_one_shot = False
            self._one_shot_done_at = self._clock.monotonic() + self._one_shot_s()


class FakeChipSelect:
    """The ``DigitalInOut``-like chip-select the driver toggles; the rising edge ends a frame."""

    def __init__(self, bus: "FakeSpiBus"):
        self._bus = bus
        self._value = True

    def switch_to_output(self, value: bool = False, **_kwargs) -> None:
        self.value = value

    @property
    def value(self) -> bool:
        return self._value

    @value.setter
    def value(self, level: bool) -> None:
        level = bool(level)
        if level == self._value:
            return
        self._value = level
        if level:
            self._bus.end_frame()
        else:
            self._bus.begin_frame()


class FakeSpiBus:
    """The ``busio.SPI``-like bus: lock, configure, write, readinto, unlock.

    A frame collects the bytes clocked out while CS is low; reads are answered from the chip's
    register model at the moment they happen, as on the wire.
    """

    def __init__(self, chip: FakeMax31865):
        self.chip = chip
        self.fail = False
        self.mode: tuple[int, int] | None = None
        self._locked = False
        self._frame: bytearray | None = None

    def try_lock(self) -> bool:
        if self._locked:
            return False
        self._locked = True
        return True

    def unlock(self) -> None:
        self._locked = False

    def configure(self, *, baudrate: int = 100000, polarity: int = 0, phase: int = 0, bits: int = 8) -> None:
        self.mode = (polarity, phase)

    def _check(self) -> None:
        if self.fail:
            raise OSError(5, "Input/output error (simulated SPI fault)")
        if self.mode != (0, 1) and self.mode != (1, 1):
            raise OSError(22, "MAX31865 needs SPI mode 1 or 3")

    def begin_frame(self) -> None:
        self._frame = bytearray()

    def end_frame(self) -> None:
        if self._frame is not None and self._frame[:1] and self._frame[0] & 0x80:
            self.chip.transfer(bytes(self._frame))
        self._frame = None
        self.chip.cs_rising()

    def write(self, buf, start: int = 0, end: int | None = None) -> None:
        self._check()
        if self._frame is not None:
            self._frame.extend(buf[start:end])

    def readinto(self, buf, start: int = 0, end: int | None = None, write_value: int = 0) -> None:
        self._check()
        end = len(buf) if end is None else end
        count = end - start
        if self._frame is None:
            buf[start:end] = bytes(count)
            return
        answer = self.chip.transfer(bytes(self._frame) + bytes([write_value]) * count)
        buf[start:end] = answer[len(self._frame):]
        self._frame.extend([write_value] * count)
