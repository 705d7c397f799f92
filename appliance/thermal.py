"""A heat balance of the mat, estimated from the sensor and the commanded power.

The mat is a two-node body (``hw/sim/plant.py`` has the equations): an element that receives the
heater's power and a surface that the RTD is bonded to, with a lag. A Luenberger observer runs
that model with the *commanded* power and corrects it with the readings. Besides the element,
surface and sensor temperatures it estimates one more state: ``unexplained_w``, the heat that
flows into the surface without the model accounting for it.

``unexplained_w`` is about zero when the nominal model holds. A patient lying down makes it about
−25 W, a colder room a few watts negative. A heater that does not heat, or a sensor that no longer
touches the mat, drives it towards minus the commanded power; an SSR stuck on drives it towards
plus the power that was not commanded. Safety (:mod:`appliance.runaway`) uses those signatures;
the controller (:mod:`appliance.control`) uses the same estimate to counter a patient's load and
to know how much heat the element holds.
"""

from hw.sim.plant import MatParams

STATES = 4  # element, surface, sensor (°C), unexplained heat into the surface (W)


def _matmul(a, b):
    return [[sum(a[i][k] * b[k][j] for k in range(len(b))) for j in range(len(b[0]))]
            for i in range(len(a))]


def _inverse(m):
    n = len(m)
    aug = [list(row) + [1.0 if i == j else 0.0 for j in range(n)] for i, row in enumerate(m)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(aug[r][col]))
        aug[col], aug[pivot] = aug[pivot], aug[col]
        scale = aug[col][col]
        aug[col] = [v / scale for v in aug[col]]
        for r in range(n):
            if r != col and aug[r][col]:
                factor = aug[r][col]
                aug[r] = [v - factor * p for v, p in zip(aug[r], aug[col])]
    return [row[n:] for row in aug]


def observer_gain(model: MatParams, pole_per_s: float) -> list[float]:
    """Ackermann's formula: the gain that puts all observer poles at ``-pole_per_s``."""
    g, ga = model.element_to_surface_w_per_k, model.surface_to_ambient_w_per_k
    ce, cs, tau = model.element_j_per_k, model.surface_j_per_k, model.sensor_tau_s
    a = [[-g / ce, g / ce, 0.0, 0.0],
         [g / cs, -(g + ga) / cs, 0.0, 1.0 / cs],
         [0.0, 1.0 / tau, -1.0 / tau, 0.0],
         [0.0, 0.0, 0.0, 0.0]]
    c = [[0.0, 0.0, 1.0, 0.0]]
    rows = [c[0]]
    for _ in range(STATES - 1):
        rows.append(_matmul([rows[-1]], a)[0])
    shifted = [[a[i][j] + (pole_per_s if i == j else 0.0) for j in range(STATES)] for i in range(STATES)]
    phi = shifted
    for _ in range(STATES - 1):
        phi = _matmul(phi, shifted)
    last = [[0.0] for _ in range(STATES - 1)] + [[1.0]]
    return [row[0] for row in _matmul(phi, _matmul(_inverse(rows), last))]


class HeatBalance:
    """The observer. Feed :meth:`update` once per sample with time passed in.

    :param model: the nominal mat (``[model]`` in the configuration).
    :param pole_per_s: observer speed; faster reacts sooner and passes more sensor noise.
    """

    def __init__(self, model: MatParams, *, pole_per_s: float = 0.08):
        self.m = model
        self.gain = observer_gain(model, pole_per_s)
        self.reset()

    def reset(self) -> None:
        self.te_c: float | None = None
        self.ts_c: float | None = None
        self.tr_c: float | None = None
        self.unexplained_w: float | None = None
        self.y_f: float | None = None
        self.age_s = 0.0
        self._t_last: float | None = None

    @property
    def model_inflow_w(self) -> float:
        return self.m.element_to_surface_w_per_k * (self.te_c - self.ts_c) if self.te_c is not None else 0.0

    def start_from(self, now_s: float, te_c: float, ts_c: float, tr_c: float) -> None:
        """Continue from a known state (another estimator's), with no unexplained heat."""
        self.te_c, self.ts_c, self.tr_c, self.y_f = te_c, ts_c, tr_c, tr_c
        self.unexplained_w = 0.0
        self._t_last = now_s

    def update(self, now_s: float, mat_c: float | None, power_w: float) -> None:
        """``power_w`` is the power commanded during the period that just ended.

        Without a reading (``mat_c`` None: a rejected sample) the model runs on uncorrected.
        """
        if self._t_last is None:
            if mat_c is None:
                return
            # Start from equilibrium at the reading: right after a reset or at power-up.
            self.te_c = self.ts_c = self.tr_c = self.y_f = mat_c
            self.unexplained_w = 0.0
            self._t_last = now_s
            return
        dt = now_s - self._t_last
        if dt <= 0:
            return
        self._t_last = now_s
        self.age_s += dt
        m = self.m
        g, ga = m.element_to_surface_w_per_k, m.surface_to_ambient_w_per_k
        innovation = 0.0
        if mat_c is not None:
            self.y_f += min(1.0, dt / 2.0) * (mat_c - self.y_f)
            innovation = mat_c - self.tr_c
        flow = g * (self.te_c - self.ts_c)
        d_te = (power_w - flow) / m.element_j_per_k
        d_ts = (flow - ga * (self.ts_c - m.ambient_c) + self.unexplained_w) / m.surface_j_per_k
        d_tr = (self.ts_c - self.tr_c) / m.sensor_tau_s
        k = self.gain
        self.te_c += dt * (d_te + k[0] * innovation)
        self.ts_c += dt * (d_ts + k[1] * innovation)
        self.tr_c += dt * (d_tr + k[2] * innovation)
        self.unexplained_w += dt * k[3] * innovation
