"""Simulated hardware at the bus level: a MAX31865 register model on a fake SPI bus, mock GPIO
pins, and a thermal model of the mat that both of them are wired to."""
