"""The "always" rows of issue 12 for ``ours``, on a fixed sample of the envelope sweep, in CI.

36 fault-free scenarios of seed 121 (``appliance.sweep.draw``; 32 of them heat), each run with
``ours`` through the whole simulated stack with the heating-effect checks blinded, exactly as
``lumbarest-sim --sweep 36 --seed 121 --control-report`` runs them (``docs/performance.md``,
"Control across the envelope"). The figures are :func:`appliance.control_report.measure`'s.

* Strict, because they hold on this sample: no fault latches (what is left of the safety after
  the blinding — over-temperature, sensor faults — must not fire under a working controller), and
  the true surface after a patient got up never passes 41.0 °C.
* A **ratchet** on what does not hold yet (issue 12 is open): the true surface while a patient
  lies on the mat more than 0.3 °C over the setpoint, and within 10 min after a get-up more than
  0.6 °C over it. The number of runs that break each rule may not grow beyond what was measured
  when the sample was fixed; lower a bound when a change improves it. Both become zero, and
  strict, when issue 12 closes. The sample is the first 36 scenarios of a seed chosen before
  measuring, not picked for its results.
"""

import pytest

from appliance import control_report

SEED, RUNS = 121, 36
PATIENT_ON_OVER_C, GETUP_OVER_C, GETUP_MAX_C = 0.3, 0.6, 41.0
#: Runs of this sample that break the rule today (measured at the commit that fixed the sample).
#: They become 0 when issue 12 closes.
RATCHET = {"patient_on_over_0_3": 1, "getup_over_0_6": 1}


@pytest.fixture(scope="module")
def sample():
    return control_report.run_report(RUNS, SEED, jobs=1, controllers=("ours",))


def _heated(sample):
    return [r for r in sample if r["figures"]]


def test_the_sample_is_the_declared_one(sample):
    assert [r["index"] for r in sample] == list(range(RUNS))
    assert len(_heated(sample)) >= 30
    with_patient = [r for r in _heated(sample) if r["figures"]["patient_on_excess_c"] is not None]
    with_getup = [r for r in _heated(sample) if r["figures"]["getup_excess_c"] is not None]
    assert len(with_patient) >= 25 and len(with_getup) >= 20, "the sample must exercise the rules"


def test_no_fault_latches_under_ours(sample):
    for r in sample:
        assert not r["faults"], (r["index"], r["faults"])


def test_surface_after_a_get_up_never_passes_41_c(sample):
    for r in _heated(sample):
        surface = r["figures"]["getup_surface_c"]
        assert surface is None or surface <= GETUP_MAX_C, (r["index"], r["figures"])


def test_surface_under_and_after_a_patient_does_not_get_worse(sample):
    """The ratchet; the lines printed name the runs that still break the rule."""
    on = [r for r in _heated(sample)
          if (r["figures"]["patient_on_excess_c"] or float("-inf")) > PATIENT_ON_OVER_C]
    up = [r for r in _heated(sample)
          if (r["figures"]["getup_excess_c"] or float("-inf")) > GETUP_OVER_C]
    for label, runs, key in (("patient on", on, "patient_on_excess_c"),
                             ("after get-up", up, "getup_excess_c")):
        for r in runs:
            print(f"{label}: scenario {r['index']} of seed {SEED}: surface {r['figures'][key]} °C "
                  f"over the setpoint {r['figures']['setpoint_c']} °C")
    assert len(on) <= RATCHET["patient_on_over_0_3"], "more runs over setpoint + 0.3 °C with a patient on"
    assert len(up) <= RATCHET["getup_over_0_6"], "more runs over setpoint + 0.6 °C after a get-up"
