"""What each fault means to the people at the unit: priority, words, advice, and what it does.

Priorities follow IEC 60601-1-8: over-temperature and anything that may leave the mat heating
without control is HIGH; a sensor or system fault that has already made the heater safe is a
MEDIUM technical alarm; limits that end heating on purpose are LOW; the end of a session is an
information signal. The words are for patients and clinic staff: what happened, then what to do.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class AlarmSpec:
    priority: str            # high | medium | low | info
    kind: str                # physiological | technical | information
    title: str
    text: str
    advice: str
    needs: str = "ack"       # ack | service | none
    ends_session: bool = True  # False: the traction session goes on without heat


_SENSOR_ADVICE = ("The heater is off. You can stay on the mat without heat or get up slowly. "
                  "Staff: acknowledge; if it comes back, call service.")

CATALOGUE: dict[str, AlarmSpec] = {
    "over_temperature": AlarmSpec(
        "high", "physiological", "The mat is too hot",
        "The mat temperature went over the safe limit.",
        "The heater is off. Get up from the mat now if it feels hot. "
        "Staff: check the patient's skin, then acknowledge. Call service if it happens again."),
    "heating_while_off": AlarmSpec(
        "high", "technical", "The heater does not switch off",
        "The mat kept warming although the heater was switched off. The power switch may be stuck.",
        "The heater power has been cut. Get up from the mat. Do not use the unit: call service.",
        needs="service"),
    "no_heating_effect": AlarmSpec(
        "high", "technical", "The mat is not heating as expected",
        "The heater was on but the mat did not warm up. The heater or its sensor may be faulty.",
        "The heater is off. Staff: check that the sensor is in place, then acknowledge. "
        "Call service if it comes back."),
    "mat_mismatch": AlarmSpec(
        "medium", "technical", "The mat does not match the settings",
        "This mat does not match the unit's settings: it heats much faster than any mat the "
        "unit is set up for.",
        "The heater is off. Calibrate the mat before using it: Service \u2192 Calibrate, "
        "or run lumbarest tune. Staff: call service.",
        needs="service"),
    "sensor_detached": AlarmSpec(
        "high", "technical", "Temperature sensor may be loose",
        "The temperature reading fell faster than the mat can cool. The sensor may have come loose.",
        "The heater is off. Staff: check the sensor on the mat, then acknowledge. "
        "Call service if it comes back."),
    "rtd_open": AlarmSpec("medium", "technical", "Temperature sensor fault",
                          "The mat's temperature sensor is not connected or is broken.", _SENSOR_ADVICE),
    "rtd_short": AlarmSpec("medium", "technical", "Temperature sensor fault",
                           "The mat's temperature sensor wiring is shorted.", _SENSOR_ADVICE),
    "refin": AlarmSpec("medium", "technical", "Temperature sensor fault",
                       "The temperature measurement circuit reports a reference fault.", _SENSOR_ADVICE),
    "ovuv": AlarmSpec("medium", "technical", "Temperature sensor fault",
                      "The temperature measurement circuit reports a voltage fault.", _SENSOR_ADVICE),
    "spi_error": AlarmSpec("medium", "technical", "Temperature sensor not answering",
                           "The controller cannot talk to the temperature sensor.", _SENSOR_ADVICE),
    "sensor_range": AlarmSpec("medium", "technical", "Temperature reading not possible",
                              "The temperature sensor reads a value a mat cannot have.", _SENSOR_ADVICE),
    "sensor_jump": AlarmSpec("medium", "technical", "Temperature reading unstable",
                             "The temperature reading jumps. The sensor wiring may be loose.", _SENSOR_ADVICE),
    "sensor_stale": AlarmSpec("medium", "technical", "No temperature reading",
                              "No valid temperature reading has arrived for a while.", _SENSOR_ADVICE),
    "sensor_frozen": AlarmSpec("medium", "technical", "Temperature reading frozen",
                               "The temperature reading stopped changing while the heater was on.",
                               _SENSOR_ADVICE),
    "sensor_missing": AlarmSpec("medium", "technical", "Temperature sensor missing",
                                "The controller found no temperature sensor when it started.",
                                "The heater cannot be used. Call service.", needs="service"),
    "output_missing": AlarmSpec("medium", "technical", "Heater output missing",
                                "The controller could not take control of the heater outputs.",
                                "The heater cannot be used. Call service.", needs="service"),
    "selftest_failed": AlarmSpec("medium", "technical", "Self-test failed",
                                 "The start-up check of the heater and sensor did not pass.",
                                 "The heater cannot be used until the check passes. Call service.",
                                 needs="service"),
    "loop_stall": AlarmSpec("medium", "technical", "Controller was not responding",
                            "The temperature control stopped for a moment; the heater was switched off.",
                            "The heater is off. Staff: acknowledge to continue. Call service if it repeats."),
    "internal_error": AlarmSpec("medium", "technical", "Controller error",
                                "The controller met an unexpected error and restarted.",
                                "The heater is off. Staff: acknowledge. Call service if it repeats."),
    "ui_lost": AlarmSpec("medium", "technical", "Screen not connected",
                         "The screen lost its connection to the controller during heating.",
                         "Heating has stopped; the session goes on without heat. "
                         "Touch Acknowledge to turn the heat back on.",
                         ends_session=False),
    "heating_time_cap": AlarmSpec("low", "technical", "Heating time limit reached",
                                  "The mat has been heated for the longest time allowed in one go.",
                                  "Heating has stopped; the session goes on without heat.",
                                  ends_session=False),
    "interrupted": AlarmSpec("low", "information", "Last session was interrupted",
                             "The last session did not finish: the power went off or the controller restarted.",
                             "Nothing restarts by itself. Start a new session if you want one.",
                             ends_session=False),
}

#: Raw MAX31865 fault bits -> fault code.
FAULT_BIT_CODES = {"HIGHTHRESH": "rtd_open", "LOWTHRESH": "rtd_short", "REFINLOW": "refin",
                   "REFINHIGH": "refin", "RTDINLOW": "refin", "OVUV": "ovuv"}
