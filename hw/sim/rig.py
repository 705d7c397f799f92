"""The simulated hardware rig: everything below the appliance's drivers, wired together.

The appliance gets the same objects it gets on the Pi — an SPI bus and chip-select for the real
Adafruit MAX31865 driver, and a gpiozero pin factory — only here the bus is
:class:`~hw.sim.max31865.FakeSpiBus`, the pins are mock pins, and both are wired to a
:class:`~hw.sim.plant.MatModel` that closes the loop.
"""

import adafruit_max31865

from hw.rtd import celsius_to_ohms
from hw.sim.max31865 import CHIP_FAULTS, FakeChipSelect, FakeMax31865, FakeSpiBus
from hw.sim.pins import MatPinFactory
from hw.sim.plant import PLANT_FAULTS, MatModel, MatParams

#: Faults the rig itself can inject (``loop_stall`` and ``ui_disconnect`` belong to the runner).
RIG_FAULTS = CHIP_FAULTS + PLANT_FAULTS + ("spi_error",)


class SimulatedRig:
    """The mat, its RTD chip and its pins.

    :param params: the simulated mat.
    :param clock: a :class:`~hw.clock.VirtualClock` or :class:`~hw.clock.RealClock`.
    :param heater_pin: BCM number of the SSR pin; ``relay_pin`` likewise, or ``None``.
    :param seed: seeds the sensor noise.
    """

    def __init__(self, params: MatParams, clock, *, heater_pin: int, relay_pin: int | None,
                 heater_active_high: bool = True, relay_active_high: bool = True,
                 nominal_ohm: float = 100.0, ref_resistor_ohm: float = 430.0, seed: int = 0):
        self.clock = clock
        self.mat = MatModel(params, start_s=clock.monotonic(), relay_fitted=relay_pin is not None)
        self._heater_pin = f"GPIO{heater_pin}"
        self._relay_pin = f"GPIO{relay_pin}" if relay_pin is not None else None
        self._heater_active_high = heater_active_high
        self._relay_active_high = relay_active_high
        self.pin_factory = MatPinFactory(self._pin_changed)
        # Sensitivity of a PT100 near body temperature, to turn °C of noise into ohms.
        ohm_per_c = celsius_to_ohms(41.0, nominal_ohm) - celsius_to_ohms(40.0, nominal_ohm)
        self.chip = FakeMax31865(self._rtd_ohms, clock, nominal_ohm=nominal_ohm,
                                 ref_resistor_ohm=ref_resistor_ohm,
                                 noise_ohm=params.sensor_noise_c * ohm_per_c, seed=seed)
        self.nominal_ohm = nominal_ohm
        self.spi = FakeSpiBus(self.chip)
        self.cs = FakeChipSelect(self.spi)
        # The driver sleeps for one-shot conversions; in virtual time those sleeps must pass
        # virtual time, or a faulted sensor would slow the simulation to real time.
        adafruit_max31865.time = clock

    def _rtd_ohms(self) -> float:
        return celsius_to_ohms(self.mat.sensor_at(self.clock.monotonic()), self.nominal_ohm)

    def _pin_changed(self, name: str, level: float) -> None:
        now = self.clock.monotonic()
        if name == self._heater_pin:
            self.mat.set_ssr(now, level if self._heater_active_high else 1.0 - level)
        elif name == self._relay_pin:
            self.mat.set_relay(now, bool(level) == self._relay_active_high)

    def set_patient(self, on: bool) -> None:
        self.mat.set_patient(self.clock.monotonic(), on)

    def inject(self, fault: str) -> None:
        """Start one of :data:`RIG_FAULTS` now."""
        if fault == "spi_error":
            self.spi.fail = True
        elif fault in CHIP_FAULTS:
            self.chip.inject(fault)
        elif fault in PLANT_FAULTS:
            self.mat.inject(self.clock.monotonic(), fault)
        else:
            raise ValueError(f"unknown fault {fault!r}; known: {', '.join(RIG_FAULTS)}")

    def clear_faults(self) -> None:
        self.spi.fail = False
        self.chip.inject(None)
        self.mat.clear_faults(self.clock.monotonic())
