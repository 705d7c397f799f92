"""The real Adafruit driver against the register-level fake MAX31865 (simulation at the bus)."""

import adafruit_max31865
import pytest

from hw.clock import VirtualClock
from hw.rtd import (CYCLE_TIMEOUT, FAULT_BITS, NO_RESPONSE, RtdSensor, celsius_to_ohms,
                    decode_fault_bits)
from hw.sim.max31865 import FakeChipSelect, FakeMax31865, FakeSpiBus


class Rtd:
    """An RTD at a settable temperature."""

    def __init__(self, temperature_c=25.0, nominal_ohm=100.0):
        self.temperature_c = temperature_c
        self.nominal_ohm = nominal_ohm

    def ohms(self):
        return celsius_to_ohms(self.temperature_c, self.nominal_ohm)


@pytest.fixture
def bench():
    clock = VirtualClock()
    adafruit_max31865.time = clock  # the driver's one-shot sleeps pass virtual time
    rtd = Rtd()
    chip = FakeMax31865(rtd.ohms, clock)
    bus = FakeSpiBus(chip)
    return clock, rtd, chip, bus


@pytest.mark.parametrize("wires", [2, 3, 4])
def test_temperatures_0_to_60_c_within_0_05(bench, wires):
    clock, rtd, chip, bus = bench
    sensor = RtdSensor(bus, FakeChipSelect(bus), wires=wires, clock=clock)
    assert bool(chip.registers[0] & 0x10) == (wires == 3)
    for tenth in range(0, 601, 7):
        rtd.temperature_c = tenth / 10
        clock.sleep(0.25)
        sample = sensor.read()
        assert sample.ok and sample.fault_bits == ()
        assert sample.temperature_c == pytest.approx(rtd.temperature_c, abs=0.05)
        assert sample.resistance_ohm == pytest.approx(rtd.ohms(), abs=0.02)


def test_pt1000_with_its_reference_resistor(bench):
    clock, _, _, _ = bench
    rtd = Rtd(37.0, nominal_ohm=1000.0)
    chip = FakeMax31865(rtd.ohms, clock, nominal_ohm=1000.0, ref_resistor_ohm=4300.0)
    bus = FakeSpiBus(chip)
    sensor = RtdSensor(bus, FakeChipSelect(bus), nominal_ohm=1000.0, ref_resistor_ohm=4300.0, clock=clock)
    assert sensor.read().temperature_c == pytest.approx(37.0, abs=0.05)


def test_unmodified_driver_one_shot_path_and_register_images(bench):
    """The driver's own one-shot read (bias, one-shot on CS rising edge, 65 ms wait) works."""
    clock, rtd, chip, bus = bench
    driver = adafruit_max31865.MAX31865(bus, FakeChipSelect(bus), wires=3)
    for temperature, image in ((37.0, 0x4418), (40.0, 0x44CA), (43.0, 0x457A)):
        rtd.temperature_c = temperature
        assert driver.temperature == pytest.approx(temperature, abs=0.05)
        # DOMAIN.md's 16-bit register images for PT100 / 430 ohm (bit 0 = fault, clear).
        word = chip.registers[1] << 8 | chip.registers[2]
        assert abs(word - image) <= 2 and not word & 1
    assert not chip.registers[0] & 0x20  # the one-shot bit clears itself


def test_one_shot_result_only_after_conversion_time(bench):
    clock, rtd, chip, bus = bench
    rtd.temperature_c = 30.0
    chip._write(0, 0x80)           # bias on, no conversion yet
    chip._write(0, 0xA0)           # one-shot requested...
    chip.cs_rising()               # ...starts on the rising edge of CS
    clock.sleep(0.030)
    chip._settle()
    assert chip.registers[1:3] == b"\x00\x00"
    clock.sleep(0.030)
    chip._settle()
    assert chip.registers[1] != 0


@pytest.mark.parametrize("fault, bits, code", [
    ("rtd_open", ("HIGHTHRESH",), 0x7FFF),
    ("rtd_short", ("LOWTHRESH",), 0x0004),
    ("refin", ("REFINLOW",), None),
    ("ovuv", ("OVUV",), None),
])
def test_injected_faults_are_decoded_and_carry_no_temperature(bench, fault, bits, code):
    clock, rtd, chip, bus = bench
    sensor = RtdSensor(bus, FakeChipSelect(bus), clock=clock)
    chip.inject(fault)
    clock.sleep(0.1)
    chip._settle()
    assert chip.registers[2] & 1  # the RTD LSB fault bit is set with the status
    sample = sensor.read()
    assert sample.temperature_c is None and sample.error == "fault"
    assert set(bits) <= set(sample.fault_bits)
    if code is not None:
        assert sample.code == code
    chip.inject(None)
    clock.sleep(0.1)
    assert sensor.read().ok       # the latch was cleared and the next reading is good


def test_every_status_bit_decodes():
    for bit, name in FAULT_BITS:
        assert decode_fault_bits(bit) == (name,)
    assert decode_fault_bits(0xFC) == tuple(name for _, name in FAULT_BITS)
    assert decode_fault_bits(0x03) == ()  # D1, D0 are not faults


def test_fault_status_latches_until_cleared(bench):
    clock, rtd, chip, bus = bench
    sensor = RtdSensor(bus, FakeChipSelect(bus), clock=clock)
    chip.inject("ovuv")
    clock.sleep(0.1)
    chip._settle()
    chip.inject(None)
    assert chip.registers[7] & 0x04            # still latched after the cause went away
    chip._write(0, (chip.registers[0] & ~0x2C) | 0x02)
    assert chip.registers[7] == 0              # the fault-clear bit cleared it
    clock.sleep(0.1)
    assert sensor.read().ok


def test_thresholds_programmed_by_the_sensor_trip_the_chip(bench):
    clock, rtd, chip, bus = bench
    sensor = RtdSensor(bus, FakeChipSelect(bus), valid_range_c=(0.0, 50.0), clock=clock)
    rtd.temperature_c = 55.0
    clock.sleep(0.1)
    assert "HIGHTHRESH" in sensor.read().fault_bits
    rtd.temperature_c = 30.0
    clock.sleep(0.1)
    assert sensor.read().ok


def test_fault_detection_cycle(bench):
    clock, rtd, chip, bus = bench
    sensor = RtdSensor(bus, FakeChipSelect(bus), clock=clock)
    assert sensor.fault_detection() == ()
    assert chip.fault_cycles == 1
    chip.inject("rtd_open")
    assert "RTDINLOW" in sensor.fault_detection()
    chip.inject("refin")
    assert "REFINLOW" in sensor.fault_detection()


def test_fault_detection_cycle_fails_when_its_bits_never_clear(bench):
    """A cycle that never finishes is a failure, not a pass (a dead converter answers on SPI)."""
    clock, rtd, chip, bus = bench
    sensor = RtdSensor(bus, FakeChipSelect(bus), clock=clock)
    chip.inject("stale")
    started = clock.monotonic()
    assert sensor.fault_detection() == (CYCLE_TIMEOUT,)
    assert clock.monotonic() - started <= 0.03       # it gives up quickly


def test_fault_detection_fails_when_no_chip_answers(bench):
    clock, rtd, chip, bus = bench
    sensor = RtdSensor(bus, FakeChipSelect(bus), clock=clock)

    class Silent(FakeSpiBus):      # MISO stuck low: every register reads 0
        def readinto(self, buf, start=0, end=None, write_value=0):
            super().readinto(buf, start, end, write_value)
            buf[start:end] = bytes(len(buf[start:end]))

    sensor._driver._device.spi = Silent(chip)
    sensor._driver._device.spi.configure(polarity=0, phase=1)
    assert sensor.fault_detection() == (NO_RESPONSE,)


def test_a_flagged_fault_is_read_before_anything_clears_it(bench):
    """The driver's read_rtd() would clear the latched status with a one-shot read (and sleep
    75 ms in the control loop): a fault that came and went would read as a good value."""
    clock, rtd, chip, bus = bench
    sensor = RtdSensor(bus, FakeChipSelect(bus), clock=clock)
    assert sensor.read().ok
    chip.inject("ovuv")
    clock.sleep(0.05)
    chip.inject(None)             # the cause went away; the chip keeps the latch and the fault bit
    clock.sleep(0.05)
    started = clock.monotonic()
    sample = sensor.read()
    assert sample.error == "fault" and "OVUV" in sample.fault_bits
    assert clock.monotonic() - started < 0.01     # no one-shot sleep in the control loop
    clock.sleep(0.25)
    assert sensor.read().ok


def test_first_auto_result_takes_a_whole_conversion(bench):
    """Before the first auto-mode result the RTD registers read 0 (about -247 °C)."""
    clock, rtd, chip, bus = bench
    chip._write(0, 0x80 | 0x40 | 0x01)      # bias and auto on, 50 Hz
    for after_s in (0.0, 0.010, 0.019, 0.060):
        clock.advance_to(after_s)
        chip._settle()
        assert chip.registers[1:3] == b"\x00\x00", after_s
    clock.advance_to(0.0625)
    chip._settle()
    first = chip.conversions
    assert first == 1 and chip.registers[1] != 0
    clock.advance_to(0.0625 + 0.1)
    chip._settle()
    assert chip.conversions == first + 1    # a late poll sees only the latest result


def test_a_restarted_sensor_never_reports_the_value_from_before_the_restart(bench):
    """The chip keeps its registers across a process restart; the new process must wait for
    the first conversion of its own instead of reading the old result (or 0)."""
    clock, rtd, chip, bus = bench
    rtd.temperature_c = 30.0
    before = RtdSensor(bus, FakeChipSelect(bus), clock=clock)
    assert before.read().temperature_c == pytest.approx(30.0, abs=0.05)
    rtd.temperature_c = 38.0                 # the mat warmed while the appliance restarted
    after = RtdSensor(bus, FakeChipSelect(bus), clock=clock)
    sample = after.read()
    assert sample.ok and sample.temperature_c == pytest.approx(38.0, abs=0.05)


def test_refin_bits_appear_only_in_the_fault_detection_cycle(bench):
    clock, rtd, chip, bus = bench
    sensor = RtdSensor(bus, FakeChipSelect(bus), clock=clock)
    chip.inject("refin")
    clock.sleep(0.2)
    chip._settle()
    assert chip.registers[7] & 0x38 == 0 and chip.registers[7] & 0x80   # conversions: threshold only
    cycles = chip.fault_cycles
    sample = sensor.read()
    assert chip.fault_cycles == cycles + 1   # the sensor asked the cycle for the cause
    assert sample.error == "fault" and {"REFINLOW", "HIGHTHRESH"} <= set(sample.fault_bits)


def test_spi_error_is_a_sample_not_an_exception(bench):
    clock, rtd, chip, bus = bench
    sensor = RtdSensor(bus, FakeChipSelect(bus), clock=clock)
    bus.fail = True
    sample = sensor.read()
    assert sample.error == "spi_error" and sample.temperature_c is None
    bus.fail = False
    clock.sleep(0.1)
    assert sensor.read().ok


def test_bus_refuses_wrong_spi_mode(bench):
    clock, rtd, chip, bus = bench
    bus.configure(baudrate=500000, polarity=0, phase=0)
    with pytest.raises(OSError):
        bus.write(b"\x00")


def test_a_quiet_converter_passes_the_liveness_probe_and_a_stopped_one_fails_it(bench):
    """With no noise a steady RTD gives one code for ever; only the probe tells a stopped
    converter from a working one."""
    clock, rtd, chip, bus = bench
    rtd.temperature_c = 35.0
    sensor = RtdSensor(bus, FakeChipSelect(bus), clock=clock, probe_period_s=5.0)
    samples = []
    for _ in range(240):                     # 60 s at 4 Hz
        clock.sleep(0.25)
        samples.append(sensor.read())
    assert all(s.ok for s in samples) and len({s.code for s in samples}) == 1
    assert chip.fault_cycles >= 11
    chip.inject("stale")
    stopped_at = clock.monotonic()
    rtd.temperature_c = 36.0                 # the mat moves; the stopped chip does not see it
    first_stale = None
    for _ in range(40):
        clock.sleep(0.25)
        sample = sensor.read()
        if sample.error == "stale":
            first_stale = first_stale or clock.monotonic()
            assert sample.fault_bits == (CYCLE_TIMEOUT,) and sample.temperature_c is None
        else:
            assert first_stale is None and sample.code == samples[-1].code
    assert first_stale is not None and first_stale - stopped_at <= 5.0 + 0.25
    chip.inject(None)
    clock.sleep(0.25)
    assert sensor.read().ok


def test_noise_spike_fault(bench):
    clock, rtd, chip, bus = bench
    sensor = RtdSensor(bus, FakeChipSelect(bus), clock=clock)
    chip.inject("noise_spikes")
    rtd.temperature_c = 35.0
    readings = []
    for _ in range(200):
        clock.sleep(0.25)
        readings.append(sensor.read().temperature_c)
    spikes = [t for t in readings if abs(t - 35.0) > 15]
    assert 10 <= len(spikes) <= 40 and all(abs(t - 35.0) < 0.1 or abs(t - 35.0) >= 19 for t in readings)
