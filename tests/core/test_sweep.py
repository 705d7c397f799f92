"""The envelope sweep's machinery: draws within the envelope, judging, the CLI contract."""

import json

from appliance import sweep
from appliance.sim import main as sim_main
from hw.sim.plant import MatParams


def test_draws_are_reproducible_and_inside_the_envelope():
    model = MatParams()
    for index in range(30):
        first = sweep.draw(index, 7, fault=index % 2 == 0)
        assert first == sweep.draw(index, 7, fault=index % 2 == 0)
        for name, (kind, low, high) in sweep.ENVELOPE.items():
            value = first["plant"][name]
            if kind == "scale":
                value /= getattr(model, name)
            assert low - 1e-3 <= value <= high + 1e-3, (name, value)
        patient = [e["action"] for e in first["event"] if e["action"].startswith("patient")]
        assert all(a != b for a, b in zip(patient, patient[1:])), "lie down and get up alternate"
        faults = [e for e in first["event"] if e["action"] == "fault"]
        assert len(faults) == (1 if index % 2 == 0 else 0)


def test_judge_counts_false_trips_misses_and_the_surface():
    clean = {"event": []}
    ok = {"faults": [], "max_surface_c": 40.2}
    assert not sweep.judge(ok, clean)["false_trips"]
    tripped = sweep.judge({"faults": [{"code": "heating_while_off", "detected_at_s": 50.0}],
                           "max_surface_c": 41.2}, clean)
    assert tripped["false_trips"] == ["heating_while_off"] and tripped["surface_failed"]
    faulted = {"event": [{"at_s": 100.0, "action": "fault", "fault": "heater_open"}]}
    late = sweep.judge({"faults": [{"code": "no_heating_effect", "detected_at_s": 195.0}],
                        "max_surface_c": 40.0, "fault_effect_at_s": 100.0}, faulted)
    assert late["missed"] and late["detect_s"] == 95.0
    early = sweep.judge({"faults": [{"code": "rtd_open", "detected_at_s": 20.0},
                                    {"code": "no_heating_effect", "detected_at_s": 150.0}],
                         "max_surface_c": 40.0, "fault_effect_at_s": 100.0}, faulted)
    assert early["false_trips"] == ["rtd_open"] and not early["missed"]


def test_a_power_fault_is_timed_from_its_first_effect():
    # A welded SSR during a full-power warm-up changes nothing until the controller asks for less.
    stuck = {"event": [{"at_s": 100.0, "action": "fault", "fault": "ssr_stuck_on"}]}
    verdict = sweep.judge({"faults": [{"code": "heating_while_off", "detected_at_s": 400.0}],
                           "max_surface_c": 41.5, "setpoint_c": 40.0, "fault_effect_at_s": 300.0}, stuck)
    assert verdict["detect_s"] == 100.0 and not verdict["missed"] and verdict["latent_s"] == 200.0
    never = sweep.judge({"faults": [], "max_surface_c": 38.0, "setpoint_c": 40.0,
                         "fault_effect_at_s": None}, stuck)
    assert not never["missed"]


def test_the_plant_reports_when_a_power_fault_first_changes_the_power():
    from hw.sim.plant import MatModel
    mat = MatModel(MatParams())
    mat.set_relay(0.0, True)
    mat.set_ssr(0.0, 1.0)
    mat.inject(10.0, "ssr_stuck_on")        # full power asked: nothing changes
    assert mat.fault_effect_at_s is None
    mat.set_ssr(25.0, 0.4)
    assert mat.fault_effect_at_s == 25.0


def test_sweep_cli_prints_the_contract_fields(tmp_path, capsys):
    code = sim_main(["--sweep", "2", "--seed", "1", "--faults", "--jobs", "1", "--json",
                     "--out", str(tmp_path)])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("runs", "false_trips", "misses", "per_fault", "max_surface_c", "failures"):
        assert key in summary
    assert summary["runs"] == 2
    assert code == (1 if summary["failures"] else 0)
    for failure in summary["failures"]:
        assert (tmp_path / failure["file"].split("/")[-1]).exists()


def test_fault_observability_times_the_first_departure_from_the_twin_after_the_effect():
    from bench.fault_observability import departure_s
    twin = [(t * 0.25, 38.0, 38.0) for t in range(400)]
    # The faulted reading drifts from 10 s on; a glitch before the effect does not count.
    faulted = [(t, (37.0 if t == 2.0 else 38.0 - max(0.0, t - 10.0) * 0.012), 38.0) for t, *_ in twin]
    assert departure_s(faulted, twin, 5.0, 0.05) == 14.25 - 5.0   # the first sample past 0.05 °C
    assert departure_s(faulted, twin, 5.0, 0.1) == 18.5 - 5.0
    assert departure_s(twin, twin, 0.0, 0.05) is None
