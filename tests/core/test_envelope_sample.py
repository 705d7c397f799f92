"""A fixed sample of the envelope sweep (``docs/safety.md``, "Operating envelope"), in CI.

40 fault-free and 40 faulted scenarios drawn by :mod:`appliance.sweep` from fixed seeds, through
the whole simulated stack. Two kinds of assertion:

* what holds everywhere in the envelope already: every sensor, converter and loop fault caught
  within its deadline, and the surface never past the over-temperature trip;
* a **ratchet** on what does not yet (issue 11 is open): the false trips, misses and surface
  failures of this sample may not grow beyond what was measured when the sample was fixed.
  Lower them when a change improves them; the issue is done when they are all zero.
"""

import pytest

from appliance import sweep

CLEAN_SEED, FAULT_SEED, RUNS = 101, 102, 40
ROBUST_FAULTS = ("rtd_open", "rtd_short", "refin", "ovuv", "spi_error", "stale", "loop_stall")
# faults "misses" went 3 -> 4 on purpose: no_heating_effect judges 60 s of drive instead of 20 s
# (fewer false alarms when a patient lies down; open heaters caught later, docs/safety.md).
# The false trips went 2 + 1 -> 0 + 0 and the misses 4 -> 3 when the missing-heat bound began
# to allow a patient and a weak element together.
RATCHET = {"clean": {"false_trips": 0, "surface_failures": 0},
           "faults": {"false_trips": 0, "misses": 3, "surface_failures": 0}}


@pytest.fixture(scope="module")
def sample():
    return {"clean": sweep.run_sweep(RUNS, CLEAN_SEED, faults=False, jobs=2),
            "faults": sweep.run_sweep(RUNS, FAULT_SEED, faults=True, jobs=2)}


def _summary(runs, seed, faults):
    return sweep.report(runs, seed, faults, None)


def test_sensor_converter_and_loop_faults_are_caught_within_their_deadlines(sample):
    checked = 0
    for _, scenario, result, verdict in sample["faults"]:
        if verdict["fault"] in ROBUST_FAULTS:
            checked += 1
            assert not verdict["missed"], (verdict, scenario)
    assert checked >= 15


def test_no_run_reaches_the_trip_temperature_at_the_surface(sample):
    for kind in ("clean", "faults"):
        for _, scenario, result, verdict in sample[kind]:
            if verdict["fault"] != "ssr_stuck_on":
                assert result["max_surface_c"] < 42.0, scenario


@pytest.mark.parametrize("kind", ["clean", "faults"])
def test_false_trips_misses_and_surfaces_do_not_grow(sample, kind):
    summary = _summary(sample[kind], CLEAN_SEED if kind == "clean" else FAULT_SEED, kind == "faults")
    print(sweep.table(summary))
    assert summary["runs"] == RUNS
    for key, bound in RATCHET[kind].items():
        got = summary[key]["count"] if key == "false_trips" else summary[key]
        assert got <= bound, f"{kind} {key}: {got} > {bound} (the ratchet)"
