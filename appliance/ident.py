"""Which mats of the envelope could this be? A bank of candidate models, judged by the warm-up.

A mat's ``[model]`` may be far from the real one: the envelope (``docs/safety.md``) allows an
element of 0.6–2 × the configured power, capacities and couplings 0.6–1.4 × and a sensor lag of
4–40 s. What decides the overshoot of a warm-up is exactly that: how much heat the element stores,
and how far the surface runs ahead of a slow sensor. :class:`ModelBank` simulates a grid of mat
*shapes* (sensor lag × heat capacity × coupling) from rest, each driven by the power actually
commanded. From rest, in a room at the starting temperature, the model is linear and homogeneous,
so each shape's response is proportional to the element's power: the best power for a shape is a
least-squares ratio, kept within the envelope, and its sum of squared errors follows in closed
form. The candidates whose error stays within a few noise variances of the best are *plausible*;
a controller can stop heating when *any* plausible mat would overshoot, and hold with the best.

Pure logic with time passed in. The simulation assumes the mat was at rest (at room temperature)
when the bank started; :attr:`valid` turns false when no candidate explains the readings (a mat
that was warm, or a patient lying on it), and the caller falls back to its observer.
:meth:`free_fit` tells the one case apart that the envelope cannot explain and a calibration can:
a mat whose shape the grid knows but whose element is far stronger or weaker than configured.
"""

import math
from dataclasses import dataclass, replace

from hw.sim.plant import MatParams

POWER_RATIO_RANGE = (0.5, 2.2)          # the envelope's 0.6–2.0 with a margin
#: Sensor lags no more than ~1.5 x apart: the lag and the coupling trade against each other in a
#: warm-up, and with only 4, 10, 20 and 40 s a 30 s sensor was fitted as 10 s behind a loose
#: coupling, from which the get-up reserve and the hold came out wrong (docs/performance.md).
SENSOR_TAUS_S = (4.0, 7.0, 10.0, 15.0, 20.0, 30.0, 40.0)
CAPACITY_SCALES = (0.6, 1.0, 1.4, 2.0)
COUPLING_SCALES = (0.6, 1.0, 1.4)
#: How well a free fit must explain the readings (noise variances per sample): stricter than
#: :attr:`ModelBank.valid`, because it is used to say the mat is wrong, not to pick a model.
FREE_FIT_SIGMAS2 = 3.0


@dataclass
class Body:
    """A mat's element and surface at the nominal power, without the sensor: their rise (K above
    the start) to the commanded power so far. The shapes that differ only in their sensor lag
    share one."""

    model: MatParams
    re: float = 0.0
    rs: float = 0.0


@dataclass
class Shape:
    """One mat shape at the nominal power: a body seen through one sensor lag; the sensor's rise
    and its running sums against the readings."""

    model: MatParams
    body: Body
    rr: float = 0.0
    s_rr: float = 0.0
    s_rd: float = 0.0


@dataclass(frozen=True)
class FreeFit:
    """The best shape at its least-squares power with no bound on it (:meth:`ModelBank.free_fit`)."""

    power_ratio: float       # element power / the configured ``heater_w``
    explained: bool          # within ``FREE_FIT_SIGMAS2`` noise variances per sample
    rise_c: float            # the last reading above the start


@dataclass(frozen=True)
class Candidate:
    """A shape at its best power: a mat that could be this one, with its present state."""

    model: MatParams
    te_c: float
    ts_c: float
    tr_c: float
    sse: float


class ModelBank:
    """The grid of shapes (84: 12 bodies, each behind 7 sensor lags) and their least-squares
    powers.

    :param nominal: the configured ``[model]``; the grid scales it.
    :param plausible_sigmas2: how many noise variances per sample (on average) a candidate may be
        worse than the best one and still count.
    """

    def __init__(self, nominal: MatParams, *, plausible_sigmas2: float = 2.0):
        self.nominal = nominal
        self.plausible_sigmas2 = plausible_sigmas2
        self.bodies = [
            Body(replace(nominal, element_j_per_k=nominal.element_j_per_k * c,
                         surface_j_per_k=nominal.surface_j_per_k * c,
                         element_to_surface_w_per_k=nominal.element_to_surface_w_per_k * g))
            for c in CAPACITY_SCALES for g in COUPLING_SCALES]
        self.shapes = [Shape(replace(b.model, sensor_tau_s=tau), b)
                       for tau in SENSOR_TAUS_S for b in self.bodies]
        self.reset()

    def reset(self) -> None:
        self.room_c: float | None = None
        self.samples = 0
        self.s_dd = 0.0
        self.noise_var = 0.05 ** 2
        self._t_last: float | None = None
        self._y_last: float | None = None
        self._candidates: list[Candidate] | None = None

    def start(self, now_s: float, mat_c: float) -> None:
        """Every shape at rest at ``mat_c``, which is taken as the room."""
        self.reset()
        self.room_c = mat_c
        for b in self.bodies:
            b.re = b.rs = 0.0
        for s in self.shapes:
            s.rr = s.s_rr = s.s_rd = 0.0
        self._t_last = now_s
        self._y_last = mat_c

    def update(self, now_s: float, mat_c: float, duty: float) -> None:
        """``duty``: the fraction of full power commanded over the period that just ended."""
        if self._t_last is None:
            self.start(now_s, mat_c)
            return
        dt = now_s - self._t_last
        if dt <= 0:
            return
        self._t_last = now_s
        diff = mat_c - self._y_last
        self._y_last = mat_c
        self.noise_var += min(1.0, dt / 30.0) * (diff * diff / 2.0 - self.noise_var)
        d = mat_c - self.room_c
        power = duty * self.nominal.heater_w
        for b in self.bodies:
            m = b.model
            flow = m.element_to_surface_w_per_k * (b.re - b.rs)
            b.re += dt * (power - flow) / m.element_j_per_k
            b.rs += dt * (flow - m.surface_to_ambient_w_per_k * b.rs) / m.surface_j_per_k
        for s in self.shapes:
            s.rr += dt * (s.body.rs - s.rr) / s.model.sensor_tau_s
            s.s_rr += s.rr * s.rr
            s.s_rd += s.rr * d
        self.s_dd += d * d
        self.samples += 1
        self._candidates = None

    def candidates(self) -> list[Candidate]:
        """Every shape at its least-squares power (within :data:`POWER_RATIO_RANGE`)."""
        if self._candidates is None:
            low, high = POWER_RATIO_RANGE
            room, out = self.room_c, []
            for s in self.shapes:
                q = min(high, max(low, s.s_rd / s.s_rr)) if s.s_rr > 0 else 1.0
                sse = max(0.0, self.s_dd - 2 * q * s.s_rd + q * q * s.s_rr)
                model = replace(s.model, heater_w=self.nominal.heater_w * q, ambient_c=room)
                body = s.body
                out.append(Candidate(model, room + q * body.re, room + q * body.rs,
                                     room + q * s.rr, sse))
            self._candidates = out
        return self._candidates

    @property
    def best(self) -> Candidate:
        return min(self.candidates(), key=lambda c: c.sse)

    def _explains(self, sse: float, sigmas2: float = 9.0) -> bool:
        return sse / self.samples <= sigmas2 * max(self.noise_var, 0.02 ** 2)

    @property
    def valid(self) -> bool:
        """The best candidate explains the readings to within a few noise deviations."""
        return bool(self.samples) and self._explains(self.best.sse)

    def free_fit(self) -> FreeFit | None:
        """The shape that fits best when its power may take any value, and that power.

        The same closed form as :meth:`candidates` without :data:`POWER_RATIO_RANGE`: ratio
        ``s_rd / s_rr``, error ``s_dd - s_rd² / s_rr``. Where :attr:`valid` is false only because
        the bound held the power back, this fit still explains the readings: the mat is a known
        shape with an element outside the envelope. ``None`` before anything was heated.
        """
        fits = [(s.s_rd / s.s_rr, max(0.0, self.s_dd - s.s_rd * s.s_rd / s.s_rr))
                for s in self.shapes if s.s_rr > 0]
        if not fits or self._y_last is None:
            return None
        ratio, sse = min(fits, key=lambda f: f[1])
        return FreeFit(ratio, self._explains(sse, FREE_FIT_SIGMAS2), self._y_last - self.room_c)

    def likeliest(self) -> Candidate:
        """Among the plausible candidates, the one closest to the configured model: where the
        warm-up cannot tell mats apart (a patient lying on it looks like a weaker element), the
        configuration is the better guess."""
        n = self.nominal

        def distance(c: Candidate) -> float:
            m = c.model
            return sum(abs(math.log(a / b)) for a, b in (
                (m.heater_w, n.heater_w), (m.sensor_tau_s, n.sensor_tau_s),
                (m.element_j_per_k, n.element_j_per_k),
                (m.element_to_surface_w_per_k, n.element_to_surface_w_per_k)))
        return min(self.plausible(), key=distance)

    def plausible(self) -> list[Candidate]:
        limit = self.best.sse + self.plausible_sigmas2 * max(self.noise_var, 0.02 ** 2) * self.samples
        return [c for c in self.candidates() if c.sse <= limit]
