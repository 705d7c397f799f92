"""Control strategies: from the trusted mat temperature and the setpoint to an SSR duty.

Pluggable like Klipper's heater controls: every strategy has ``update(now_s, mat_c, setpoint_c)
-> duty`` (0..1) and ``reset()``, takes time as an argument and does no I/O; one that wants the
readings while the heater is off has ``observe_idle(now_s, mat_c)`` too. Safety is not their
business — the supervisor runs before them and the core ignores their output whenever heat is not
allowed.

``ours`` is the appliance's controller; ``bang_bang``, ``kiln_pid`` and ``full_power`` are the
baselines of the control-quality benchmark (``docs/performance.md``); ``pid`` is the plain PID
they build on.
"""

from appliance.config import ControlConfig
from appliance.thermal import HeatBalance
from appliance.ident import ModelBank
from appliance.runaway import Window
from hw.sim.plant import MatParams

#: Element power, as a ratio to ``[model] heater_w``, that no mat of the envelope has: above it
#: the mat does not match its configuration. The free fit measures power per heat capacity over
#: the bank's shapes, so a 2 x element on a 0.6 x surface fits up to ~3.3 x (sweep 11: 1.9 x on
#: 0.63 x fitted above 2.4 x). (A weak element is not
#: called a mismatch: a warm-up cannot tell it from a heavy mat, or from a patient who warmed the
#: mat and got up; it gets the ``cannot_reach`` notice.)
MISMATCH_HIGH = 3.5
#: The rise from rest (several noise deviations) before a power ratio is believed.
MISMATCH_MIN_RISE_C = 1.0
#: The envelope's slowest sensor (docs/safety.md). A mat that no warm-up identified may have it.
GUARD_SENSOR_TAU_S = 40.0
#: The reading's rise rate is a least-squares slope over this long (noise: a 0.1 °C sensor gives
#: ±0.003 °C/s, i.e. ±0.1 °C of lead at 32 s).
RISE_WINDOW_S = 20.0
#: A warm-up is from rest (what :class:`ModelBank` assumes) when the reading moved less than this
#: while the heater was off before it: a mat cooling after a session, or warmed by a body lying on
#: it, drifts 0.01–0.02 °C/s; a 0.1 °C sensor's slope over 30 s is ±0.001 °C/s.
REST_SLOPE_C_PER_S = 0.004
#: Heater-off history kept for that judgement; with less than half of it, rest is assumed.
IDLE_WINDOW_S = 60.0
#: A release (a patient getting up) is taken back if the filtered reading falls this far below
#: its value at the release within this long (:meth:`ModelBased._check_release`).
RELEASE_FALL_C = 0.1
RELEASE_CHECK_S = 60.0
#: The envelope's warmest body + 0.5 °C (docs/safety.md): above it neither a body nor the room
#: adds heat, so a strong element is the only explanation left for a fast warm-up.
NO_SOURCE_ABOVE_C = 36.5


def _clamp(value: float, low: float = 0.0, high: float = 1.0) -> float:
    return low if value < low else high if value > high else value


def coast_peak_c(model: MatParams, te_c: float, ts_c: float, power_w: float, load_w: float,
                 horizon_s: float, dt: float = 2.0) -> float:
    """Highest surface temperature of ``model`` within ``horizon_s`` from the state (``te_c``,
    ``ts_c``) with ``power_w`` applied and ``load_w`` flowing into the surface."""
    m, te, ts = model, te_c, ts_c
    peak = ts
    for _ in range(int(horizon_s / dt)):
        flow = m.element_to_surface_w_per_k * (te - ts)
        loss = m.surface_to_ambient_w_per_k * (ts - m.ambient_c) - load_w
        te += (power_w - flow) * dt / m.element_j_per_k
        ts += (flow - loss) * dt / m.surface_j_per_k
        peak = max(peak, ts)
    return peak


def unit_response(model: MatParams, horizon_s: float, step_s: float) -> list[float]:
    """Surface rise per watt of constant heater power at each prediction step, from rest."""
    m, dt = model, step_s
    te = ts = 0.0
    out = []
    for _ in range(int(horizon_s / dt)):
        flow = m.element_to_surface_w_per_k * (te - ts)
        te += (1.0 - flow) * dt / m.element_j_per_k
        ts += (flow - m.surface_to_ambient_w_per_k * ts) * dt / m.surface_j_per_k
        out.append(ts)
    return out


def free_response(model: MatParams, te_c: float, ts_c: float, load_w: float, steps: int,
                  step_s: float) -> list[float]:
    """Surface temperature at each prediction step with the heater off from the state (``te_c``,
    ``ts_c``): the heat already in the element still arrives; the room and the load take theirs."""
    m, dt = model, step_s
    g, ga = m.element_to_surface_w_per_k, m.surface_to_ambient_w_per_k
    ke, ks = dt / m.element_j_per_k, dt / m.surface_j_per_k
    te, ts, amb = te_c, ts_c, m.ambient_c
    out = []
    for _ in range(steps):
        flow = g * (te - ts)
        te -= flow * ke
        ts += (flow - ga * (ts - amb) + load_w) * ks
        out.append(ts)
    return out


def max_power_w(free: list[float], unit: list[float], target_c: float, start: int) -> float:
    """The largest constant power that keeps ``free[k] + P * unit[k]`` at or below ``target_c``
    for every step from ``start`` on (the model is linear)."""
    return min((target_c - f) / u for f, u in zip(free[start:], unit[start:]))


class Pid:
    """PID with derivative on measurement and anti-windup by clamping the integral.

    Derivative on measurement: a setpoint change does not kick the output. The integral is kept
    within what the output can use, so it never winds up while the output is saturated.

    :param kp_per_c: duty per °C of error.
    :param ki_per_c_s: duty per °C·s of accumulated error.
    :param kd_s: duty per °C/s of rise, times seconds (derivative time x kp).
    :param derivative_smooth_s: first-order filter on the derivative (sensor noise).
    """

    def __init__(self, kp_per_c: float, ki_per_c_s: float, kd_s: float = 0.0,
                 derivative_smooth_s: float = 4.0):
        self.kp = kp_per_c
        self.ki = ki_per_c_s
        self.kd = kd_s
        self.smooth_s = derivative_smooth_s
        self.reset()

    def reset(self) -> None:
        self.integral = 0.0
        self._last_c: float | None = None
        self._last_s: float | None = None
        self._rate = 0.0

    def update(self, now_s: float, mat_c: float, setpoint_c: float, feed_forward: float = 0.0) -> float:
        error = setpoint_c - mat_c
        if self._last_s is not None and now_s > self._last_s:
            dt = now_s - self._last_s
            alpha = min(1.0, dt / self.smooth_s)
            self._rate += alpha * ((mat_c - self._last_c) / dt - self._rate)
            self.integral += self.ki * error * dt
        self._last_c, self._last_s = mat_c, now_s
        unclamped = feed_forward + self.kp * error - self.kd * self._rate
        self.integral = _clamp(self.integral, -1.0 - unclamped, 1.0 - unclamped)
        return _clamp(unclamped + self.integral)


class BangBang:
    """A typical heating pad: on below setpoint − ``hysteresis_c``, off above the setpoint."""

    def __init__(self, hysteresis_c: float = 1.0):
        self.hysteresis_c = hysteresis_c
        self.reset()

    def reset(self) -> None:
        self._on = True

    def update(self, now_s: float, mat_c: float, setpoint_c: float) -> float:
        if mat_c >= setpoint_c:
            self._on = False
        elif mat_c < setpoint_c - self.hysteresis_c:
            self._on = True
        return 1.0 if self._on else 0.0


class FullPower:
    """100 % until the sensor first reaches the setpoint, then off: the physical lower bound of
    the time to reach the setpoint, and the overshoot that costs."""

    def reset(self) -> None:
        self._reached = False

    def __init__(self):
        self.reset()

    def update(self, now_s: float, mat_c: float, setpoint_c: float) -> float:
        self._reached = self._reached or mat_c >= setpoint_c
        return 0.0 if self._reached else 1.0


class KilnPid:
    """The kiln-controller approach: full on/off outside ±``band_c``, a fixed PID inside, and
    the output held for a ``window_s`` SSR window."""

    def __init__(self, band_c: float = 5.0, window_s: float = 2.0):
        self.band_c = band_c
        self.window_s = window_s
        self.pid = Pid(kp_per_c=0.25, ki_per_c_s=0.002, kd_s=10.0)
        self.reset()

    def reset(self) -> None:
        self.pid.reset()
        self._window_end_s: float | None = None
        self._held = 0.0

    def update(self, now_s: float, mat_c: float, setpoint_c: float) -> float:
        if self._window_end_s is not None and now_s < self._window_end_s:
            return self._held
        self._window_end_s = now_s + self.window_s
        error = setpoint_c - mat_c
        if error > self.band_c:
            self.pid.reset()
            self._held = 1.0
        elif error < -self.band_c:
            self.pid.reset()
            self._held = 0.0
        else:
            self._held = self.pid.update(now_s, mat_c, setpoint_c)
        return self._held


class GetUpWatch:
    """Notices a load that went away (a patient getting up) sooner than the observer does, and
    takes a false alarm back.

    While a body lies on the mat the element runs ``-load_w / G_es`` K hotter to push the body's
    heat through the surface. When it leaves, that stored heat still arrives and the RTD shows it
    late; every second of holding power after that adds to the overshoot. A one-sided CUSUM of the
    reading's excess over the observer's prediction (the innovation), in units of the sensor noise
    (estimated from successive differences), flags the change a few seconds before the observer's
    slow disturbance state has moved; the controller then drops its load estimate at once, so the
    predictive hold sees an element with heat to spare and turns the heater off.

    A patient who got up leaves the mat warmer: the reading rises. If it falls instead within
    :data:`RELEASE_CHECK_S` of a release, without having risen first, the body is still there and
    the model merely predicted badly (a mat it describes poorly): :meth:`taken_back` says so, and
    the next release needs twice the evidence — else releases and re-learnt loads alternate for
    as long as she lies. (After a real get-up the reading rises, then falls as the heater stays
    off: the rise confirms the release.)

    :param sigmas: the CUSUM threshold, in noise deviations.
    :param min_load_w: the smallest observed load (W drawn from the surface) worth watching.
    """

    def __init__(self, sigmas: float, min_load_w: float):
        self.min_load_w = min_load_w
        self.sigmas = sigmas
        self.noise_var = 0.05 ** 2
        self.releases = 0
        self.false_releases = 0
        self._cusum = 0.0
        self._last_y: float | None = None
        self._release: tuple[float, float] | None = None   # (when, filtered reading) of the last

    def update(self, now_s: float, dt: float, mat_c: float, predicted_c: float | None,
               load_w: float, filtered_c: float) -> bool:
        """One sample; True when the load is gone."""
        if self._last_y is not None:
            diff = mat_c - self._last_y
            self.noise_var += min(1.0, dt / 60.0) * (diff * diff / 2.0 - self.noise_var)
        self._last_y = mat_c
        if predicted_c is None or -load_w < self.min_load_w:
            self._cusum = 0.0
            return False
        sigma = max(0.01, self.noise_var ** 0.5)
        self._cusum = max(0.0, self._cusum + (mat_c - predicted_c) / sigma - 1.0)
        if self._cusum <= self.sigmas:
            return False
        self._cusum = 0.0
        self.releases += 1
        self._release = (now_s, filtered_c)
        return True

    def taken_back(self, now_s: float, filtered_c: float) -> bool:
        """The last release was false: the reading fell since (call before :meth:`update`)."""
        if self._release is None:
            return False
        at_s, then_c = self._release
        if filtered_c > then_c + RELEASE_FALL_C:
            self._release = None   # she got up: the mat warms
            return False
        if filtered_c < then_c - RELEASE_FALL_C:
            self._release = None
            self.false_releases += 1
            self.sigmas *= 2.0
            return True
        if now_s - at_s > RELEASE_CHECK_S:
            self._release = None
        return False


class BankApproach:
    """A warm-up from rest, steered by the bank of mats it could be (:class:`ModelBank`): when
    full power must stop, and the duty after that, so that the best candidate lands on the
    setpoint and no plausible one passes it by more than ``robust_overreach_c``; and whether the
    warm-up shows a mat outside the envelope (:meth:`mismatch`).

    :param nominal: the configured ``[model]``.
    :param horizon_s: / ``step_s`` / ``skip_s``: the prediction, as :class:`ModelBased`'s.
    """

    def __init__(self, nominal: MatParams, *, horizon_s: float, step_s: float, skip_s: float,
                 boost_overreach_c: float, robust_overreach_c: float):
        self.bank = ModelBank(nominal)
        self.horizon_s = horizon_s
        self.step_s = step_s
        self.skip_s = skip_s
        self.boost_overreach_c = boost_overreach_c
        self.robust_overreach_c = robust_overreach_c
        self._units: dict[tuple, list[float]] = {}

    def _candidate_duty(self, c, target_c: float) -> float:
        """The largest duty that keeps bank candidate ``c``'s surface at or below ``target_c``."""
        m = c.model
        key = (m.element_j_per_k, m.surface_j_per_k, m.element_to_surface_w_per_k,
               m.surface_to_ambient_w_per_k)   # the unit response depends on these alone
        unit = self._units.get(key)
        if unit is None:
            unit = self._units[key] = unit_response(m, self.horizon_s, self.step_s)
        free = free_response(m, c.te_c, c.ts_c, 0.0, len(unit), self.step_s)
        return _clamp(max_power_w(free, unit, target_c, int(self.skip_s / self.step_s)) / m.heater_w)

    def duty(self, setpoint_c: float) -> float:
        """After the boost: the best candidate's hold law towards ``boost_overreach_c`` past the
        setpoint, but no more than any plausible candidate's towards ``robust_overreach_c``."""
        robust = min((self._candidate_duty(c, setpoint_c + self.robust_overreach_c)
                      for c in self.bank.plausible()), default=1.0)
        return min(self._candidate_duty(self.bank.best, setpoint_c + self.boost_overreach_c), robust)

    def boost_ends(self, setpoint_c: float, lead_c: float) -> bool:
        """Full power must stop now if, held at its holding power from here, the best candidate
        would pass ``boost_overreach_c`` (or, ``lead_c`` further ahead, ``robust_overreach_c``)
        or any plausible one ``robust_overreach_c`` above the setpoint: the heat stored in the
        element and hidden by the sensor's lag still arrives."""
        def peak(c) -> float:
            m = c.model
            hold = m.surface_to_ambient_w_per_k * (setpoint_c - m.ambient_c)
            return coast_peak_c(m, c.te_c, c.ts_c, hold, 0.0, self.horizon_s)
        best = peak(self.bank.best)
        if best >= setpoint_c + self.boost_overreach_c:
            return True
        if best + lead_c >= setpoint_c + self.robust_overreach_c:
            return True
        return any(peak(c) >= setpoint_c + self.robust_overreach_c for c in self.bank.plausible())

    def mismatch(self) -> tuple[bool, float | None]:
        """For a bank that explains no mat of the envelope at rest: (not sure yet, the element's
        power ratio to ``[model] heater_w`` if only an element far stronger than the envelope's
        explains the warm-up, :meth:`ModelBank.free_fit`).

        A body of 32–36 °C lying on a cooler mat is a heat source the bank does not model and
        makes the element look stronger; so a strong element is only believed once the reading
        is above the warmest body and the room.
        """
        fit = self.bank.free_fit()
        if fit is None or not fit.explained or fit.power_ratio <= MISMATCH_HIGH:
            return False, None
        if fit.rise_c < MISMATCH_MIN_RISE_C or self.bank.room_c + fit.rise_c <= NO_SOURCE_ABOVE_C:
            return True, None
        return False, round(fit.power_ratio, 2)


class ModelBased:
    """``ours``: an observer-based, model-predictive controller that learns the mat during the
    warm-up. Design and measurements: ``docs/performance.md``.

    * **Observer** (:class:`appliance.thermal.HeatBalance`): element, surface and sensor
      temperatures and the *unexplained* heat into the surface — a patient's body, a room that is
      not the model's. The RTD lags the surface by ~8 s and the surface lags the element by ~50 s,
      so the reading alone always tells the past; the observer tells the present.
    * **Learning the mat** (:mod:`appliance.tune`): the warm-up at full power is a step response.
      At each of ``fit_at_s`` seconds into it the controller fits the model's capacity scale and
      heater power to the recorded (power, reading) history, and from then on observes and
      predicts with the fitted mat. A mat with twice the heat capacity (and the same heater)
      stores twice the heat in its element, which a nominal model does not expect and overshoots;
      a weak heater makes the nominal observer read missing heat as a patient's load. The fit ends
      at 240 s, before a patient would plausibly lie down; it is bounded and kept only when it
      explains the data. What a step response pins down is the power per heat capacity; that is
      also what the prediction needs. Only a warm-up from rest (:meth:`observe_idle`: no drift
      before Start) is kept for later episodes; until one has been, :meth:`unknown_lag_lead_c`
      allows for the envelope's slowest sensor.
    * **Approach**: full power while the mat, held at the holding power from now on, would peak
      less than ``boost_overreach_c`` above the setpoint within ``horizon_s``. The prediction
      starts from the observed element and surface, so the heat already stored in the element is
      counted before it arrives. Boosting slightly *past* the point where holding power would just
      reach the setpoint is deliberate: the predictive hold below then runs the heater under the
      holding power for a while, which lands the surface on the setpoint sooner, without overshoot.
    * **Hold**: each sample, the largest constant power for which the predicted surface stays at
      or below the setpoint over the horizon (:meth:`power_for`). The model is linear, so that is
      one pass over a precomputed unit response: cheap. At equilibrium it is the holding power
      (room losses plus the observed load); with heat stored in the element it is less; with the
      surface low it is more. The observer's unexplained-heat state is the integral action: a
      steady model error becomes a load estimate, so no separate integrator (and no windup).
    * **Load rejection**: the observed load enters the prediction as a constant heat flow, i.e.
      feed-forward of the patient's body; a CUSUM on the innovation drops the load estimate at
      once when the patient gets up (:class:`GetUpWatch`), and restores it if she did not.

    Constructor defaults are the tuned values (``bench/control_bench.py``); ``ControlConfig``
    has no keys for them yet.
    """

    def __init__(self, model: MatParams, cfg: ControlConfig, *, boost_overreach_c: float = 0.25,
                 horizon_s: float = 120.0, step_s: float = 4.0, skip_s: float = 20.0,
                 load_smooth_s: float = 5.0, adapt: bool = True,
                 observer_pole_per_s: float = 0.08, hold_margin_c: float = 0.0,
                 release_sigmas: float = 4.0, release_min_load_w: float = 4.0,
                 min_bank_samples: int = 40, approach_band_c: float = 1.0,
                 robust_overreach_c: float = 1.0, getup_allow_c: float = 0.2,
                 min_rise_c: float = 4.0):
        self.nominal = model
        self.approach = BankApproach(model, horizon_s=horizon_s, step_s=step_s, skip_s=skip_s,
                                     boost_overreach_c=boost_overreach_c,
                                     robust_overreach_c=robust_overreach_c)
        self.bank = self.approach.bank
        self.min_bank_samples = min_bank_samples
        self.approach_band_c = approach_band_c
        self.min_rise_c = min_rise_c
        self.robust_overreach_c = robust_overreach_c
        self.getup_allow_c = getup_allow_c
        self.boost_overreach_c = boost_overreach_c
        self.horizon_s = horizon_s
        self.step_s = step_s
        self.skip_s = skip_s
        self.load_smooth_s = load_smooth_s
        self.adapt = adapt
        self.pole = observer_pole_per_s
        self.hold_margin_c = hold_margin_c
        self.release_sigmas = release_sigmas
        self.release_min_load_w = release_min_load_w
        #: The likeliest mat of the last warm-up from rest (:class:`appliance.ident.Candidate`).
        self.learned = None
        self._idle = Window(IDLE_WINDOW_S)
        self.reset()

    def reset(self) -> None:
        """A new heating episode (a start, a resume, a pre-warm). What the last warm-up from rest
        taught about the mat (:attr:`identified`) is kept: a pause does not change the mat, and a
        warm mat has no warm-up to learn from."""
        self._use_model(self.identified or self.nominal)
        #: The model in use came from a warm-up from rest (else the sensor lag is guarded).
        self.trusted = self.learned is not None
        self._from_rest = True
        self.bank.reset()
        self._identifying = self.adapt
        self.boosting = True
        self.load_w = 0.0
        self._last_duty = 0.0
        self._last_s: float | None = None
        self._rise = Window(RISE_WINDOW_S)
        self.getup = GetUpWatch(self.release_sigmas, self.release_min_load_w)
        self._before_release: tuple[float, float] | None = None   # (unexplained_w, load_w)
        #: Set by a warm-up from rest that only an element outside the envelope explains: its
        #: power ratio to ``[model] heater_w``; the core latches ``mat_mismatch`` on it.
        self.mismatch_ratio: float | None = None

    def observe_idle(self, now_s: float, mat_c: float) -> None:
        """A reading while the heater is off: whether the next warm-up starts from rest."""
        self._idle.add(now_s, mat_c)

    def _at_rest(self) -> bool:
        idle = self._idle
        if idle.covered_s < IDLE_WINDOW_S / 2:
            return True   # just powered up: nothing says otherwise
        return abs(idle.slope()) <= REST_SLOPE_C_PER_S

    @property
    def identified(self) -> MatParams | None:
        return self.learned.model if self.learned is not None else None

    def _use_model(self, model: MatParams) -> None:
        self.m = model
        self.balance = HeatBalance(model, pole_per_s=self.pole)
        self._unit = self._unit_response()

    def _adopt_best(self) -> None:
        """Hold with the likeliest candidate of the warm-up, from its own state. Kept for later
        episodes only if the warm-up was from rest: a drift at the start (a body that warmed the
        mat, a session's heat still leaving) passes for the heater's doing."""
        best = self.bank.likeliest()
        if self._from_rest:
            self.learned = best
            self.trusted = True
        self._use_model(best.model)
        self.balance.start_from(self._last_s, best.te_c, best.ts_c, best.tr_c)
        self.load_w = 0.0

    def coast_peak_c(self, power_w: float) -> float:
        """Highest surface temperature within the horizon if ``power_w`` were applied from now."""
        return coast_peak_c(self.m, self.balance.te_c, self.balance.ts_c, power_w, self.load_w,
                            self.horizon_s)

    def getup_reserve_c(self, setpoint_c: float) -> float:
        """How far below the setpoint to hold while a body lies on the mat, so that the heat
        the element holds for it, arriving after she gets up with the heater cut at once, takes
        the surface no more than ``getup_allow_c`` past the setpoint."""
        if self.load_w >= 0.0:
            return 0.0
        b = self.balance
        peak = coast_peak_c(self.m, b.te_c, b.ts_c, 0.0, 0.0, self.horizon_s)
        return max(0.0, peak - setpoint_c - self.getup_allow_c)

    def hold_w(self, setpoint_c: float) -> float:
        """The power that holds the surface at ``setpoint_c``: room losses plus the load."""
        m = self.m
        return max(0.0, m.surface_to_ambient_w_per_k * (setpoint_c - m.ambient_c) - self.load_w)

    def _unit_response(self) -> list[float]:
        return unit_response(self.m, self.horizon_s, self.step_s)

    def free_response(self) -> list[float]:
        """Surface temperature at each prediction step with the heater off from now."""
        return free_response(self.m, self.balance.te_c, self.balance.ts_c, self.load_w,
                             len(self._unit), self.step_s)

    def power_for(self, target_c: float) -> float:
        """The largest constant power that keeps the predicted surface at or below ``target_c``
        over the whole horizon (:func:`max_power_w`). Only steps after ``skip_s`` count: the
        first seconds' unit response is tiny and would turn sensor noise into power. Near
        equilibrium this is the holding power; after the boost it lets the element's stored heat
        arrive first; far below the target it exceeds the heater.
        """
        return max_power_w(self.free_response(), self._unit, target_c, int(self.skip_s / self.step_s))

    def _watch_getup(self, now_s: float, dt: float, mat_c: float, predicted_c: float | None) -> None:
        """Drop the load estimate when :class:`GetUpWatch` sees the patient get up; restore it
        when that proves false."""
        b = self.balance
        if self.getup.taken_back(now_s, b.y_f) and self._before_release is not None:
            b.unexplained_w, self.load_w = self._before_release
        if self.getup.update(now_s, dt, mat_c, predicted_c, self.load_w, b.y_f):
            self._before_release = (b.unexplained_w, self.load_w)
            b.unexplained_w = 0.0
            self.load_w = 0.0

    def unknown_lag_lead_c(self, model: MatParams) -> float:
        """How much further the surface may be ahead of a rising reading than ``model`` thinks,
        unless :attr:`trusted`: a first-order sensor reads the surface ``tau x rate`` late, and
        the envelope's sensors lag up to :data:`GUARD_SENSOR_TAU_S`. Zero at a steady hold."""
        if self.trusted or len(self._rise.samples) < 8:
            return 0.0
        return max(0.0, GUARD_SENSOR_TAU_S - model.sensor_tau_s) * max(0.0, self._rise.slope())

    def update(self, now_s: float, mat_c: float, setpoint_c: float) -> float:
        if self._last_s is None:
            # A heating episode that starts within reach of the setpoint (a resume, a session
            # after a pre-warm) has nothing to boost for: the predictive hold takes it from here.
            # Its observer starts at equilibrium and cannot know the heat the element still holds.
            self.boosting = setpoint_c - mat_c > self.approach_band_c
            self._from_rest = self._at_rest()
            self._idle.clear()
        dt = 0.0 if self._last_s is None else now_s - self._last_s
        self._last_s = now_s
        if self._identifying and self.bank.samples == 0 and setpoint_c - mat_c < self.min_rise_c:
            self._identifying = False   # a mat already warm: no warm-up from rest to learn from
        if self._identifying:
            self.bank.update(now_s, mat_c, self._last_duty)
        m = self.m
        predicted_c = self.balance.tr_c
        self.balance.update(now_s, mat_c, self._last_duty * m.heater_w)
        self._rise.add(now_s, mat_c)
        if dt > 0:
            self._watch_getup(now_s, dt, mat_c, predicted_c)
            self.load_w += min(1.0, dt / self.load_smooth_s) * (self.balance.unexplained_w - self.load_w)
        if self._identifying and self.bank.samples >= self.min_bank_samples:
            if not self.bank.valid:
                # not a mat of the envelope at rest: the observer takes it from here
                self._identifying, self.mismatch_ratio = self.approach.mismatch()
            elif mat_c >= setpoint_c - self.approach_band_c:
                self._identifying = False
                self._adopt_best()
            else:
                # a fit from a drifting start may have the lags wrong: guard them
                lead_c = 0.0 if self._from_rest else self.unknown_lag_lead_c(self.bank.best.model)
                if self.boosting and self.approach.boost_ends(setpoint_c, lead_c):
                    self.boosting = False
                duty = 1.0 if self.boosting else self.approach.duty(setpoint_c)
                self._last_duty = duty
                return duty
        hold_w = self.hold_w(setpoint_c)
        lead_c = self.unknown_lag_lead_c(m)
        if self.boosting:
            peak_c = self.coast_peak_c(hold_w)
            self.boosting = (peak_c < setpoint_c + self.boost_overreach_c
                             and peak_c + lead_c < setpoint_c + self.robust_overreach_c)
        elif setpoint_c - mat_c > 2.0:
            self.boosting = True  # a new, higher setpoint, or a large cold load
        if self.boosting:
            duty = 1.0
        else:
            duty = _clamp(self.power_for(setpoint_c - self.hold_margin_c - lead_c
                                         - self.getup_reserve_c(setpoint_c)) / m.heater_w)
        self._last_duty = duty
        return duty


def make_controller(name: str, cfg: ControlConfig, model: MatParams):
    """The strategy called ``name`` (``ControlConfig.strategy``)."""
    if name == "ours":
        return ModelBased(model, cfg)
    if name == "pid":
        return Pid(cfg.kp_per_c, cfg.ki_per_c_s, cfg.kd_s)
    if name == "bang_bang":
        return BangBang()
    if name == "kiln_pid":
        return KilnPid()
    if name == "full_power":
        return FullPower()
    raise ValueError(f"unknown controller {name!r}")


CONTROLLERS = ("ours", "pid", "bang_bang", "kiln_pid", "full_power")
