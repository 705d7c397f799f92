"""The real Adafruit driver against the register-level fake MAX31865 (simulation at the bus)."""

import adafruit_max31865
import pytest

from hw.clock import VirtualClock
from hw.rtd import FAULT_BITS, RtdSensor, celsius_to_ohms, decode_fault_bits
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
    sensor = RtdSensor(bus, FakeChipSelect(bus), wires=wires)
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
    sensor = RtdSensor(bus, FakeChipSelect(bus), nominal_ohm=1000.0, ref_resistor_ohm=4300.0)
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
    sensor = RtdSensor(bus, FakeChipSelect(bus))
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
    sensor = RtdSensor(bus, FakeChipSelect(bus))
    chip.inject("ovuv")
    chip._settle()
    chip.inject(None)
    assert chip.registers[7] & 0x04            # still latched after the cause went away
    chip._write(0, (chip.registers[0] & ~0x2C) | 0x02)
    assert chip.registers[7] == 0              # the fault-clear bit cleared it
    clock.sleep(0.1)
    assert sensor.read().ok


def test_thresholds_programmed_by_the_sensor_trip_the_chip(bench):
    clock, rtd, chip, bus = bench
    sensor = RtdSensor(bus, FakeChipSelect(bus), valid_range_c=(0.0, 50.0))
    rtd.temperature_c = 55.0
    clock.sleep(0.1)
    assert "HIGHTHRESH" in sensor.read().fault_bits
    rtd.temperature_c = 30.0
    clock.sleep(0.1)
    assert sensor.read().ok


def test_fault_detection_cycle(bench):
    clock, rtd, chip, bus = bench
    sensor = RtdSensor(bus, FakeChipSelect(bus))
    assert sensor.fault_detection() == ()
    chip.inject("rtd_open")
    assert "HIGHTHRESH" in sensor.fault_detection() or "REFINLOW" in sensor.fault_detection()


def test_spi_error_is_a_sample_not_an_exception(bench):
    clock, rtd, chip, bus = bench
    sensor = RtdSensor(bus, FakeChipSelect(bus))
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


def test_stale_and_noise_spike_faults(bench):
    clock, rtd, chip, bus = bench
    sensor = RtdSensor(bus, FakeChipSelect(bus))
    rtd.temperature_c = 35.0
    chip.inject("stale")
    codes = set()
    for step in range(20):
        clock.sleep(0.25)
        rtd.temperature_c = 35.0 + step
        codes.add(sensor.read().code)
    assert len(codes) == 1
    chip.inject("noise_spikes")
    rtd.temperature_c = 35.0
    readings = []
    for _ in range(200):
        clock.sleep(0.25)
        readings.append(sensor.read().temperature_c)
    spikes = [t for t in readings if abs(t - 35.0) > 15]
    assert 10 <= len(spikes) <= 40 and all(abs(t - 35.0) < 0.1 or abs(t - 35.0) >= 19 for t in readings)
