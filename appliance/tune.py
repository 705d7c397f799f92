"""Model identification for the mat: a least-squares fit of the two-node model, and a relay
autotune (Åström–Hägglund) that produces the data for it.

Pure logic, no I/O, time passed in, no numpy: the appliance runs this on a Raspberry Pi inside the
control loop's period.

**The fit.** The two-node model (``hw/sim/plant.py``) is linear. Written in deviations from the
first reading ``y0`` (the mat at rest: element = surface = sensor = ``y0``) its sensor reading is

    y(t) - y0 = q · a(t; C_e, C_s, tau) + w · b(t; C_e, C_s, tau)

where ``a`` is the response to the *commanded* heater power (nominal ``heater_w`` × duty) and
``b`` the response to one watt flowing into the surface all the time. ``q`` is the ratio of the
real heater power to the nominal one (a weak heater: q < 1), ``w`` the constant heat into the
surface that the nominal room does not explain (a cold room: ``w = G_sa · (T_room - y0)``, zero
for a mat at rest in its room; it also absorbs a mat that starts warm and cools, because that free
decay has the same shape as ``b``). ``q`` and ``w`` enter linearly, so for any candidate
(C_e, C_s, tau) they come from a 2×2 least-squares solve; only the capacities and the sensor lag
are searched, by a gradient-free pattern search in log space. The conductances are kept nominal:
with one heater and one sensor, a step response cannot tell a larger capacity from a smaller
conductance apart well, and the capacities are what differs between mats of one design (thicker
foam, a different cover).
"""

import math
from dataclasses import replace

from hw.sim.plant import MatParams

BUCKET_S = 2.0
MAX_FIT_STEP_S = 1.0  # Euler step of the fit's model: larger steps add a lag the fit would blame on tau


class ResponseRecorder:
    """Averages the commanded power and the reading over ``bucket_s`` buckets: the data of a fit.

    ``add(now_s, mat_c, power_w)``: ``power_w`` is the power commanded for the period that *ends*
    at ``now_s`` (what the observer gets), ``mat_c`` the reading at ``now_s``.
    """

    def __init__(self, bucket_s: float = BUCKET_S):
        self.bucket_s = bucket_s
        self.reset()

    def reset(self) -> None:
        self.y0: float | None = None
        self.samples: list[tuple[float, float]] = []   # (mean power W, mean reading °C)
        self._start_s: float | None = None
        self._last_s: float | None = None
        self._energy = 0.0
        self._y_sum = 0.0
        self._y_n = 0

    @property
    def span_s(self) -> float:
        return len(self.samples) * self.bucket_s

    def add(self, now_s: float, mat_c: float, power_w: float) -> None:
        if self._start_s is None:
            self._start_s = self._last_s = now_s
            self.y0 = mat_c
            return
        dt = now_s - self._last_s
        if dt <= 0:
            return
        self._last_s = now_s
        self._energy += power_w * dt
        self._y_sum += mat_c
        self._y_n += 1
        if now_s - self._start_s >= self.bucket_s * (len(self.samples) + 1) - 1e-9:
            self.samples.append((self._energy / self.bucket_s, self._y_sum / self._y_n))
            self._energy = self._y_sum = 0.0
            self._y_n = 0


def responses(powers: list[float], h: float, ce: float, cs: float, tau: float,
              g: float, ga: float) -> tuple[list[float], list[float]]:
    """Sensor responses, bucket-averaged, to the power sequence (``a``) and to 1 W into the surface
    (``b``), from rest. Explicit Euler for the two thermal nodes (their time constants are >= 10 s,
    the step is ``h`` = 2 s, sub-stepped when a candidate is light), the exact exponential for the
    sensor lag."""
    sub = max(1, int(math.ceil(h / MAX_FIT_STEP_S)), int(math.ceil(h * g * 2.0 / min(ce, cs))))
    dt = h / sub
    ke, ks_, kg = dt / ce, dt / cs, g
    decay = math.exp(-dt / tau)
    ea = sa = ra = 0.0
    eb = sb = rb = 0.0
    out_a, out_b = [], []
    for p in powers:
        acc_a = acc_b = 0.0
        for _ in range(sub):
            fa = kg * (ea - sa)
            ea += (p - fa) * ke
            sa += (fa - ga * sa) * ks_
            ra = sa + (ra - sa) * decay
            fb = kg * (eb - sb)
            eb -= fb * ke
            sb += (fb - ga * sb + 1.0) * ks_
            rb = sb + (rb - sb) * decay
            acc_a += ra
            acc_b += rb
        out_a.append(acc_a / sub)
        out_b.append(acc_b / sub)
    return out_a, out_b


def _linear_fit(d: list[float], a: list[float], b: list[float], fit_offset: bool):
    """Least squares for ``d ≈ q a + w b``: (q, w, sum of squared residuals)."""
    saa = sum(x * x for x in a)
    sad = sum(x * y for x, y in zip(a, d))
    if fit_offset:
        sbb = sum(x * x for x in b)
        sab = sum(x * y for x, y in zip(a, b))
        sbd = sum(x * y for x, y in zip(b, d))
        det = saa * sbb - sab * sab
        if det > 1e-12 * max(saa * sbb, 1e-30):
            q = (sad * sbb - sab * sbd) / det
            w = (saa * sbd - sab * sad) / det
        else:
            q, w = (sad / saa if saa else 0.0), 0.0
    else:
        q, w = (sad / saa if saa else 0.0), 0.0
    sse = sum((y - q * x - w * z) ** 2 for y, x, z in zip(d, a, b))
    return q, w, sse


def fit_model(samples: list[tuple[float, float]], y0: float, base: MatParams, *,
              bucket_s: float = BUCKET_S, tie_capacities: bool = False, fit_offset: bool = True,
              fit_tau: bool = True, start: tuple[float, float, float] | None = None,
              max_evals: int = 120) -> dict:
    """Fit the two-node model to recorded (mean power, mean reading) buckets.

    :param base: the nominal model; its conductances are kept, its ``heater_w`` defines ``q``.
    :param tie_capacities: search one common capacity scale instead of two (the warm-up of a
        session: a step response identifies the mat's overall inertia better than its split).
    :param start: (element J/K, surface J/K, sensor tau s) to start the search from.
    :returns: ``element_j_per_k``, ``surface_j_per_k``, ``sensor_tau_s``, ``heater_w``,
        ``ambient_c`` (the room the fit implies), ``rms_c`` (residual), ``evals``.
    """
    powers = [p for p, _ in samples]
    d = [y - y0 for _, y in samples]
    g, ga = base.element_to_surface_w_per_k, base.surface_to_ambient_w_per_k
    lo = (math.log(base.element_j_per_k / 4), math.log(base.surface_j_per_k / 4), math.log(2.0))
    hi = (math.log(base.element_j_per_k * 4), math.log(base.surface_j_per_k * 4), math.log(60.0))
    x0 = start or (base.element_j_per_k, base.surface_j_per_k, base.sensor_tau_s)
    x = [math.log(v) for v in x0]
    cache: dict = {}

    def cost(point):
        key = tuple(round(v, 6) for v in point)
        if key not in cache:
            ce, cs, tau = (math.exp(v) for v in point)
            a, b = responses(powers, bucket_s, ce, cs, tau, g, ga)
            q, w, sse = _linear_fit(d, a, b, fit_offset)
            if q <= 0:
                sse = float("inf")
            cache[key] = (sse, q, w)
        return cache[key][0]

    # First the overall inertia (both capacities together, the best-determined direction),
    # then each capacity on its own: a one-stage search stalls in the valley between them.
    stages = [[(1.0, 1.0, 0.0)]] if tie_capacities else [[(1.0, 1.0, 0.0)], [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0)]]
    best = cost(x)
    for axes in stages:
        if fit_tau:
            axes = axes + [(0.0, 0.0, 1.0)]
        step = math.log(1.6)
        while step > math.log(1.01) and len(cache) < max_evals:
            improved = False
            for axis in axes:
                for sign in (1.0, -1.0):
                    trial = [min(h_, max(l_, v + sign * step * a_))
                             for v, a_, l_, h_ in zip(x, axis, lo, hi)]
                    c = cost(trial)
                    if c < best:
                        best, x, improved = c, trial, True
            if not improved:
                step /= 2.0
    sse, q, w = cache[tuple(round(v, 6) for v in x)]
    ce, cs, tau = (math.exp(v) for v in x)
    return {"element_j_per_k": ce, "surface_j_per_k": cs, "sensor_tau_s": tau,
            "heater_w": q * base.heater_w, "power_ratio": q, "offset_w": w,
            "ambient_c": y0 + w / ga, "rms_c": math.sqrt(sse / max(1, len(d))),
            "evals": len(cache), "span_s": len(d) * bucket_s}


def fitted_params(base: MatParams, fit: dict, *, with_ambient: bool = True) -> MatParams:
    """``base`` with the fitted capacities, sensor lag, heater power (and room)."""
    keys = ("element_j_per_k", "surface_j_per_k", "sensor_tau_s", "heater_w")
    changes = {k: fit[k] for k in keys}
    if with_ambient:
        changes["ambient_c"] = fit["ambient_c"]
    return replace(base, **changes)


def final_states(model: MatParams, powers: list[float], y0: float,
                 bucket_s: float = BUCKET_S) -> tuple[float, float, float]:
    """Element, surface and sensor temperatures at the end of ``powers`` (W per bucket), starting
    at rest at ``y0`` in a room at ``model.ambient_c``: how a controller that switches to a fitted
    model starts its observer."""
    g, ga = model.element_to_surface_w_per_k, model.surface_to_ambient_w_per_k
    ce, cs, tau = model.element_j_per_k, model.surface_j_per_k, model.sensor_tau_s
    sub = max(1, int(math.ceil(bucket_s / MAX_FIT_STEP_S)), int(math.ceil(bucket_s * g * 2.0 / min(ce, cs))))
    dt = bucket_s / sub
    decay = math.exp(-dt / tau)
    te = ts = tr = y0
    for p in powers:
        for _ in range(sub):
            flow = g * (te - ts)
            te += (p - flow) * dt / ce
            ts += (flow - ga * (ts - model.ambient_c)) * dt / cs
            tr = ts + (tr - ts) * decay
    return te, ts, tr


class RelayAutotune:
    """Relay-feedback test (Åström–Hägglund) around ``setpoint_c``, then a model fit.

    The heater is switched between ``high_duty`` and ``low_duty`` whenever the (2 s smoothed)
    reading crosses ``setpoint_c ± amplitude_c``. The mat's lags turn that into a limit cycle
    whose amplitude ``a`` and period ``Pu`` give the ultimate gain ``Ku = 4 d / (π a)`` (``d``
    half the duty swing) and period: the classic autotune data. The whole recorded response
    (the heat-up from the room and the cycles) is then fitted with the two-node model
    (:func:`fit_model`): element and surface capacities, sensor lag and heater power, which is
    what :class:`appliance.control.ModelBased` uses.

    Safety: the appliance runs this with every safety rule active. The test temperature must be
    at least ``1 + amplitude_c`` K below ``max_setpoint_c`` (the mat's lag carries the reading
    up to ~0.5 K past the upper switching point), and the output is 0 whenever the reading is at
    or above ``max_setpoint_c``. Start with the mat at room temperature: the fit assumes a mat at
    rest at the first reading.

    :param model: the nominal mat (``[model]``); its conductances are kept by the fit.
    :param cycles: limit cycles measured after ``settle_cycles`` discarded ones.
    :param max_duration_s: give up (``done`` with ``result()["ok"]`` false) after this long.
    """

    def __init__(self, model: MatParams, setpoint_c: float, *, amplitude_c: float = 0.3,
                 high_duty: float = 1.0, low_duty: float = 0.0, cycles: int = 3,
                 settle_cycles: int = 1, max_duration_s: float = 7200.0,
                 max_setpoint_c: float = 40.0, bucket_s: float = 4.0, smooth_s: float = 2.0):
        if not 0 <= low_duty < high_duty <= 1:
            raise ValueError("need 0 <= low_duty < high_duty <= 1")
        if setpoint_c + amplitude_c + 1.0 > max_setpoint_c:
            raise ValueError(f"test temperature {setpoint_c} °C is too close to max_setpoint_c "
                             f"{max_setpoint_c} °C; use at most {max_setpoint_c - 1.0 - amplitude_c} °C")
        self.model = model
        self.setpoint_c = setpoint_c
        self.amplitude_c = amplitude_c
        self.high, self.low = high_duty, low_duty
        self.cycles = cycles
        self.settle_cycles = settle_cycles
        self.max_duration_s = max_duration_s
        self.max_setpoint_c = max_setpoint_c
        self.smooth_s = smooth_s
        self.recorder = ResponseRecorder(bucket_s)
        self.done = False
        self.on = True
        self._start_s: float | None = None
        self._last_s: float | None = None
        self._duty = 0.0
        self._y: float | None = None
        self._on_switches: list[float] = []
        self._extremes: list[tuple[float, float]] = []   # (max of off phase, min of next on phase)
        self._phase_max = -math.inf
        self._phase_min = math.inf
        self._cycle_max: float | None = None
        self._result: dict | None = None
        self.gave_up = False

    def update(self, now_s: float, mat_c: float) -> float:
        if self._start_s is None:
            self._start_s = self._last_s = now_s
            self._y = mat_c
        dt = now_s - self._last_s
        self._last_s = now_s
        if not self.done:
            self.recorder.add(now_s, mat_c, self._duty * self.model.heater_w)
        self._y += min(1.0, dt / self.smooth_s) * (mat_c - self._y) if dt > 0 else 0.0
        y = self._y
        if self.done:
            self._duty = 0.0
            return 0.0
        if self.on:
            self._phase_min = min(self._phase_min, y)
            if y >= self.setpoint_c + self.amplitude_c:
                self.on = False
                if self._cycle_max is not None and self._phase_min < math.inf:
                    self._extremes.append((self._cycle_max, self._phase_min))
                self._phase_max = y
        else:
            self._phase_max = max(self._phase_max, y)
            if y <= self.setpoint_c - self.amplitude_c:
                self.on = True
                self._on_switches.append(now_s)
                self._cycle_max = self._phase_max
                self._phase_min = y
        if self.measured_cycles >= self.cycles and len(self._extremes) > self.settle_cycles:
            self.done = True
        elif now_s - self._start_s >= self.max_duration_s:
            self.done = self.gave_up = True
        if self.done:
            self._duty = 0.0
            return 0.0
        duty = self.high if self.on else self.low
        if mat_c >= self.max_setpoint_c:
            duty = 0.0
        self._duty = duty
        return duty

    @property
    def measured_cycles(self) -> int:
        """Limit cycles completed after the discarded settling ones."""
        return max(0, len(self._on_switches) - 1 - self.settle_cycles)

    def relay_data(self) -> dict:
        """Ultimate gain and period from the measured limit cycles (no fit; cheap)."""
        switches = self._on_switches[self.settle_cycles:]
        periods = [b - a for a, b in zip(switches, switches[1:])]
        extremes = self._extremes[self.settle_cycles:]
        if not periods or not extremes:
            return {"ok": False}
        amp = sum(hi - lo for hi, lo in extremes) / (2 * len(extremes))
        d = (self.high - self.low) / 2
        ku = 4 * d / (math.pi * amp) if amp > 0 else math.inf
        pu = sum(periods) / len(periods)
        # Tyreus–Luyben: less overshoot than Ziegler–Nichols, suited to lag-dominated heating.
        kp = ku / 2.2
        ti, td = 2.2 * pu, pu / 6.3
        return {"ok": True, "ultimate_gain_per_c": ku, "ultimate_gain_w_per_k": ku * self.model.heater_w,
                "ultimate_period_s": pu, "oscillation_amplitude_c": amp, "cycles": len(periods),
                "kp_per_c": kp, "ki_per_c_s": kp / ti, "kd_s": kp * td}

    def result(self) -> dict:
        """Relay data plus the fitted model. The fit costs ~1 s of CPU on a PC for a one-hour
        record: call it once ``done`` is true, outside the control loop's thread."""
        if self._result is not None:
            return self._result
        out = self.relay_data()
        rec = self.recorder
        if rec.samples:
            fit = fit_model(rec.samples, rec.y0, self.model, bucket_s=rec.bucket_s,
                            fit_offset=False, fit_tau=True, max_evals=150)
            out["fit"] = fit
            out["ok"] = bool(out.get("ok")) and fit["rms_c"] < 0.3
        else:
            out["ok"] = False
        out["gave_up"] = self.gave_up
        out["duration_s"] = (self._last_s - self._start_s) if self._start_s is not None else 0.0
        if self.done:
            self._result = out
        return out

    def as_config(self) -> dict:
        """TOML-ready sections: ``{"model": {...}, "control": {...}}`` — the fitted ``[model]``
        keys ``ModelBased`` uses, and the relay PID gains for the ``pid`` strategy."""
        res = self.result()
        cfg: dict = {}
        if "fit" in res:
            fit = res["fit"]
            cfg["model"] = {k: round(fit[k], 1) for k in
                            ("heater_w", "element_j_per_k", "surface_j_per_k", "sensor_tau_s")}
        if res.get("ultimate_period_s"):
            cfg["control"] = {"kp_per_c": round(res["kp_per_c"], 4),
                              "ki_per_c_s": round(res["ki_per_c_s"], 6),
                              "kd_s": round(res["kd_s"], 3)}
        return cfg
