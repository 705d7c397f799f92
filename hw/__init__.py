"""Drivers for the mat's hardware and its simulated twin.

``hw.heater`` and ``hw.rtd`` are the devices the appliance uses, identical on the Pi and in
simulation. ``hw.pi`` builds the Raspberry Pi's SPI bus and chip-select pin (the only module that
imports ``board``); ``hw.sim`` builds a register-level MAX31865, mock GPIO pins and a thermal model
of the mat, so the same driver code runs on any PC.
"""
