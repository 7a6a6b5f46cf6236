"""Minimising the profiled criterion over ``theta``.

Three optimizers (``LmerControl.optimizer``):

* ``"L-BFGS-B"`` (default): quasi-Newton under the bounds ``theta_diag >= 0``
  with finite-difference gradients. The criterion is smooth and cheap, so
  it needs fewer evaluations than a derivative-free method.
* ``"bobyqa"``: Powell's derivative-free trust-region method from NLopt
  (``NLOPT_LN_BOBYQA``, lme4's default through ``nloptwrap``, with its
  tolerances ``xtol_abs = ftol_abs = 1e-8``). Needs the ``nlopt`` package.
* ``"Nelder-Mead"``: scipy's bounded simplex method (lme4's ``Nelder_Mead``
  has the same role: slow, but robust to a noisy or kinked criterion).

After the optimizer, for a handful of parameters, Newton steps with a
finite-difference Hessian land on the optimum to many digits (``polish``);
the gradient and Hessian of the last step are kept for the convergence
checks (:mod:`mmbook.engine.convergence`), so they cost nothing extra.

**An abnormal end is never a convergence.** If the optimizer stops
abnormally (L-BFGS-B's ``ABNORMAL_TERMINATION_IN_LNSRCH``, an evaluation
limit, an exception from NLopt, a non-finite criterion or gradient), the
search is restarted with Nelder-Mead from the best point found, then from
each of the alternative starts given (``starts``). Only a run that ends
normally makes the result ``converged``; otherwise its ``messages`` say
what happened, in lme4's words (``convergence code 2 from L-BFGS-B: ...``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize

__all__ = ["OptimizeResult", "minimize_theta", "deriv12", "OPTIMIZERS"]

OPTIMIZERS = ("L-BFGS-B", "bobyqa", "Nelder-Mead")


@dataclass
class OptimizeResult:
    """What the optimizer did (lme4's ``optinfo``).

    Attributes
    ----------
    theta : ndarray
        The optimum, in lme4's ``theta`` (original units).
    fun : float
        The criterion there.
    nfev : int
        Criterion evaluations, retries and the Newton polish included.
    converged : bool
        The optimizer ended normally (after any retry) and, once the fit
        has been checked (:func:`mmbook.engine.stages.check_fit`), the
        convergence checks passed.
    messages : list of str
        Why it did not converge (empty when it did).
    optimizer : str
        The optimizer asked for.
    code : int
        Its convergence code at the end (0: OK; else the code of scipy or
        NLopt, as lme4 prints it).
    message : str
        Its own last message.
    par : ndarray
        The optimum in the parameterisation the optimizer worked in (the
        conditioned ``theta~`` of :mod:`mmbook.engine.conditioning`).
    history : list of dict
        Every run: optimizer, start, criterion reached, evaluations, message.
    derivs : dict or None
        ``{"x", "index", "gradient", "hessian", "step"}``: finite-difference
        derivatives at the optimum over the free parameters ``index``, from
        the Newton polish.
    """

    theta: np.ndarray
    fun: float
    nfev: int
    converged: bool
    messages: list = field(default_factory=list)
    optimizer: str = "L-BFGS-B"
    code: int = 0
    message: str = ""
    par: np.ndarray | None = None
    history: list = field(default_factory=list)
    derivs: dict | None = None

    def __post_init__(self):
        if self.par is None:
            self.par = np.asarray(self.theta, dtype=float).copy()


class _Counted:
    """The criterion with an evaluation count; non-finite values (and NaN) become ``inf``."""

    def __init__(self, f):
        self.f, self.n = f, 0

    def __call__(self, x):
        self.n += 1
        v = float(self.f(x))
        return v if np.isfinite(v) else np.inf


@dataclass
class _Run:
    x: np.ndarray
    fun: float
    ok: bool
    code: int
    message: str
    nfev: int
    optimizer: str
    start: str


def _gradient(f, x, lower, h, f0=None, upper=None, central=True):
    """Finite-difference gradient: central, or forward (``central=False``); one-sided at an active bound.

    A non-finite difference on one side is retried on the other side.
    """
    g = np.empty_like(x)
    for i in range(len(x)):
        hi = h * max(1.0, abs(x[i]))
        e = np.zeros_like(x)
        e[i] = hi
        can_up = upper is None or x[i] + hi <= upper[i]
        can_down = x[i] - hi >= lower[i]
        if central and can_up and can_down:
            g[i] = (f(x + e) - f(x - e)) / (2 * hi)
            if np.isfinite(g[i]):
                continue
        f0 = f(x) if f0 is None else f0
        g[i] = (f(x + e) - f0) / hi if can_up else np.nan
        if not np.isfinite(g[i]) and can_down:
            g[i] = (f0 - f(x - e)) / hi
    return g


def _steps(h, k) -> np.ndarray:
    """The difference steps, one per coordinate (a scalar ``h`` serves all ``k``)."""
    return np.broadcast_to(np.asarray(h, dtype=float), (k,))


def _forward_values(f, x, h):
    """``f(x + h_i e_i)`` for every coordinate ``i`` (``k`` evaluations)."""
    E = np.diag(_steps(h, len(x)))
    return np.array([f(x + E[i]) for i in range(len(x))])


def _forward_derivs(f, x, h, f0):
    """Forward-difference gradient and Hessian: ``k(k+3)/2`` evaluations (5 for ``k = 2``).

    ``H_ii`` from ``f(x + 2h_i e_i)``, ``f(x + h_i e_i)`` and ``f(x)``; ``H_ij`` from the corner
    ``f(x + h_i e_i + h_j e_j)``; the gradient from ``f(x + h_i e_i)``, corrected by ``h_i H_ii / 2``.
    Errors of order ``h`` (the Hessian) and ``h^2`` (the gradient): rough, for a first Newton step
    from a start far from the optimum, never for judging convergence. ``h``: one step, or one per
    coordinate.
    """
    k = len(x)
    h = _steps(h, k)
    E = np.diag(h)
    f1 = np.array([f(x + E[i]) for i in range(k)])
    f2 = np.array([f(x + 2 * E[i]) for i in range(k)])
    H = np.empty((k, k))
    for i in range(k):
        H[i, i] = (f2[i] - 2 * f1[i] + f0) / h[i] ** 2
        for j in range(i):
            H[i, j] = H[j, i] = (f(x + E[i] + E[j]) - f1[i] - f1[j] + f0) / (h[i] * h[j])
    g = (f1 - f0) / h - 0.5 * h * np.diagonal(H)
    return g, H


def _central_gradient(f, x, h):
    """Central-difference gradient with step ``h`` (one, or one per coordinate; ``2k`` evaluations)."""
    h = _steps(h, len(x))
    E = np.diag(h)
    return np.array([(f(x + E[i]) - f(x - E[i])) / (2 * h[i]) for i in range(len(x))])


def deriv12(f, x, h, f0):
    """Central-difference gradient and Hessian (lme4's ``deriv12``), ``2k^2`` evaluations.

    ``h`` is one step for every coordinate (lme4's ``delta``) or one per coordinate, shape ``(k,)``.
    """
    k = len(x)
    h = _steps(h, k)
    E = np.diag(h)
    H = np.empty((k, k))
    fp = np.empty(k)
    fm = np.empty(k)
    for i in range(k):
        fp[i], fm[i] = f(x + E[i]), f(x - E[i])
        H[i, i] = (fp[i] - 2 * f0 + fm[i]) / h[i] ** 2
    for i in range(k):
        for j in range(i):
            ei, ej = E[i], E[j]
            H[i, j] = H[j, i] = ((f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej))
                                 / (4 * h[i] * h[j]))
    g = (fp - fm) / (2 * h)
    return g, H


def _mixed_third(known, x, h):
    r"""``T[i, j]``, the derivative of ``H_ii`` along axis ``j != i``, from the 3 x 3 grid that
    :func:`deriv12` evaluated in the plane of axes ``i`` and ``j`` (``known(point)``: a memoised value
    or None); NaN where a point is missing, and on the diagonal.
    """
    k = len(x)
    h = _steps(h, k)
    E = np.diag(h)
    T = np.full((k, k), np.nan)
    for i in range(k):
        for j in range(k):
            if i == j:
                continue
            side = []
            for s in (E[j], -E[j]):
                v = [known(x + E[i] + s), known(x + s), known(x - E[i] + s)]
                side.append(None if any(a is None for a in v) else (v[0] - 2 * v[1] + v[2]) / h[i] ** 2)
            if side[0] is not None and side[1] is not None:
                T[i, j] = (side[0] - side[1]) / (2 * h[j])
    return T


def _lbfgsb(fc, x0, lower, upper, *, grad_step, central, ftol, gtol, maxfun, start, fgrad=None):
    """One L-BFGS-B run, with an exact gradient (``fgrad``) where there is one, else finite differences."""
    bounds = [(lo if np.isfinite(lo) else None, hi if np.isfinite(hi) else None) for lo, hi in zip(lower, upper)]
    recent: list = []  # (x, f, gradient) of the last evaluations
    n0 = fc.n

    def fun_and_grad(x):
        # Once L-BFGS-B reaches the criterion's rounding noise, its line search asks again and
        # again for points that differ from earlier ones only in the last bits (1e-15); answer
        # those from the recent evaluations instead of computing the criterion again.
        for xc, fcached, gc in recent:
            if np.all(np.abs(x - xc) <= 1e-12 * (1.0 + np.abs(xc))):
                return fcached, gc.copy()
        if fgrad is not None:  # the criterion with its exact gradient (g None: not available here)
            fc.n += 1
            f0, g = fgrad(x)
        else:
            f0, g = fc(x), None
        if g is None:
            with np.errstate(all="ignore"):
                g = np.zeros_like(x) if not np.isfinite(f0) else _gradient(fc, x, lower, grad_step, f0, upper,
                                                                           central)
        recent.append((x.copy(), f0, g))
        del recent[:-16]
        # L-BFGS-B must not see NaN: a non-finite gradient is reported as 0 and the run is judged below
        return f0, np.where(np.isfinite(g), g, 0.0)

    f_start, _ = fun_and_grad(np.asarray(x0, dtype=float))
    if not np.isfinite(f_start):
        return _Run(np.asarray(x0, float), np.inf, False, -1, "the criterion is not finite at the start",
                    fc.n - n0, "L-BFGS-B", start)
    # The gradient's rounding noise and the criterion's curvature both grow with the criterion
    # (with n), so the gradient tolerance does too: below it, line searches only chase noise.
    if fgrad is None:
        gtol = max(gtol, 1e-8 * abs(f_start))
    per_call = 1 if fgrad is not None else len(x0) + (len(x0) if central else 0) + 1
    res = minimize(fun_and_grad, x0, jac=True, method="L-BFGS-B", bounds=bounds,
                   options=dict(ftol=ftol, gtol=gtol, maxiter=max(1, maxfun // per_call),
                                maxfun=max(1, maxfun // per_call), maxcor=20))
    x = np.asarray(res.x, dtype=float)
    fx, g = fun_and_grad(x)
    g_raw = recent[-1][2] if recent and np.array_equal(recent[-1][0], x) else g
    ok = bool(res.success) and np.isfinite(fx) and bool(np.all(np.isfinite(g_raw)))
    msg = str(res.message)
    if res.success and not np.all(np.isfinite(g_raw)):
        msg = "the gradient is not finite at the optimum"
    # the projected gradient: zero at a minimum, except for components pushing against a bound
    pg = np.where(((x <= lower) & (g > 0)) | ((x >= upper) & (g < 0)), 0.0, g)
    if ok and np.max(np.abs(pg), initial=0.0) > max(1e-3, 1e-6 * abs(fx)):
        # L-BFGS-B can report convergence where its line search met non-finite values
        ok = False
        msg = f"stopped where the gradient is {np.max(np.abs(pg)):.3g}: not a minimum ({res.message})"
    code = 0 if ok else int(res.status) if res.status else -1
    return _Run(x, float(fx), ok, code, msg, fc.n - n0, "L-BFGS-B", start)


def _nelder_mead(fc, x0, lower, upper, *, maxfun, step, start):
    """Bounded Nelder-Mead (scipy), from a simplex of steps ``step`` (away from the bounds)."""
    x0 = np.clip(np.asarray(x0, dtype=float), lower, upper)
    n0 = fc.n
    f0 = fc(x0)
    k = len(x0)
    simplex = np.tile(x0, (k + 1, 1))
    for i in range(k):
        d = step * max(1.0, abs(x0[i]))
        simplex[i + 1, i] += d if x0[i] + d <= upper[i] else -d
    bounds = list(zip(lower, upper))
    res = minimize(fc, x0, method="Nelder-Mead", bounds=bounds,
                   options=dict(initial_simplex=simplex, maxfev=maxfun, maxiter=maxfun, xatol=1e-7,
                                fatol=1e-10 * max(1.0, abs(f0)) if np.isfinite(f0) else 1e-10,
                                adaptive=k > 4))
    x = np.asarray(res.x, dtype=float)
    fx = float(res.fun)
    ok = bool(res.success) and bool(np.isfinite(fx))
    code = 0 if ok else int(res.status) if res.status else -1
    return _Run(x, fx, ok, code, str(res.message), fc.n - n0, "Nelder-Mead", start)


def _bobyqa(fc, x0, lower, upper, *, maxfun, start):
    """NLopt's BOBYQA with lme4's ``nloptwrap`` settings."""
    try:
        import nlopt
    except ImportError:
        raise ImportError("optimizer='bobyqa' needs the nlopt package: pip install nlopt "
                          "(or choose optimizer='L-BFGS-B' or 'Nelder-Mead')") from None
    k = len(x0)
    x0 = np.clip(np.asarray(x0, dtype=float), lower, upper)
    n0 = fc.n
    best = {"x": x0.copy(), "f": np.inf}

    def obj(x, grad):
        v = fc(x)
        if v < best["f"]:
            best["x"], best["f"] = np.array(x, dtype=float), v
        return v if np.isfinite(v) else float(np.finfo(float).max)

    opt = nlopt.opt(nlopt.LN_BOBYQA, k)
    opt.set_lower_bounds([lo if np.isfinite(lo) else -float("inf") for lo in lower])
    opt.set_upper_bounds([hi if np.isfinite(hi) else float("inf") for hi in upper])
    opt.set_min_objective(obj)
    opt.set_xtol_abs(1e-8)
    opt.set_ftol_abs(1e-8)
    opt.set_maxeval(int(maxfun))
    try:
        x = np.asarray(opt.optimize(x0), dtype=float)
        status = int(opt.last_optimize_result())
        msg = {nlopt.SUCCESS: "NLOPT_SUCCESS", nlopt.FTOL_REACHED: "NLOPT_FTOL_REACHED",
               nlopt.XTOL_REACHED: "NLOPT_XTOL_REACHED", nlopt.MAXEVAL_REACHED: "NLOPT_MAXEVAL_REACHED",
               nlopt.STOPVAL_REACHED: "NLOPT_STOPVAL_REACHED"}.get(status, f"NLopt status {status}")
    except (RuntimeError, ValueError, nlopt.RoundoffLimited, nlopt.ForcedStop) as exc:
        x, status, msg = best["x"], -1, f"NLopt stopped: {type(exc).__name__}: {exc}"
    fx = fc(x)
    if best["f"] < fx:  # NLopt returns its best point; keep ours if it is better (it cannot be, but check)
        x, fx = best["x"], best["f"]
    # lme4's nloptwrap: a negative status or MAXEVAL_REACHED (5) is a failure
    ok = status > 0 and status != 5 and bool(np.isfinite(fx))
    return _Run(x, float(fx), ok, 0 if ok else status, msg, fc.n - n0, "bobyqa", start)


def _forward_suffices(curv, H, H_at, z, h, fx, noise) -> bool:
    r"""Whether the forward-difference gradient at ``z`` serves as well as the central one.

    Corrected by ``h H_ii / 2`` and by the ``h^2`` term, the forward differences differ from the central
    ones by :math:`(h/2)\,(H_{ii}(z) - H_{ii})`, the change of the Hessian's diagonal since it was
    formed at ``H_at``, about :math:`(h/2) \sum_j T_{iij} (z - H_{at})_j` with the third derivatives
    ``T`` measured there (``curv``: Richardson's correction or :func:`_third_along_path`, and
    :func:`_mixed_third`). Twice that (a
    margin for the terms left out; each third derivative widened by its rounding noise), ``e``, must
    move the criterion by less than its rounding (``noise``) through a Newton step:
    :math:`e' e / (2 \lambda_{min}(H)) \le` ``noise``. False whenever something it needs is missing: no
    third derivatives, a Hessian formed elsewhere or updated since (``H`` None), a step ``h`` more than
    twice or half the one they were measured with, or more than 1 % of a parameter.
    """
    if curv is None or H is None:
        return False
    zc, hc, T = curv
    h, hc = _steps(h, len(z)), _steps(hc, len(z))
    if np.any(h > 1e-2 * np.abs(z)):  # a step that is a good part of a parameter: Taylor's terms would not do
        return False
    if np.any(h < 0.5 * hc) or np.any(h > 2.0 * hc) or np.any(zc != H_at) or not np.all(np.isfinite(T)):
        return False
    # each T[i, j] widened by its rounding noise, that of a second difference in i differenced along j
    Tn = np.abs(T) + 10.0 * np.finfo(float).eps * max(1.0, abs(fx)) / (h[:, None] ** 2 * h[None, :])
    return _negligible(h * (Tn @ np.abs(z - zc)), H, noise)


def _negligible(t, H, noise) -> bool:
    """Whether a gradient error ``t`` (shape ``(k,)``) moves the criterion by less than ``noise`` through a
    Newton step: ``t' t / (2 lambda_min(H))`` at most ``noise``."""
    try:
        lam = np.linalg.eigvalsh(H)
    except np.linalg.LinAlgError:
        return False
    return bool(np.all(np.isfinite(t)) and lam[0] > 0 and 0.5 * float(t @ t) / lam[0] <= noise)


def _third_along_path(rough, z, h, H, T, fx, sc):
    r"""Bounds on ``|f_iii|`` at ``z`` from two Hessians' diagonals, without evaluations; None where they
    cannot be had.

    ``rough = (x0, h0, d0)``: the forward-difference Hessian's diagonal formed at ``x0`` with step ``h0``
    (:func:`_forward_derivs`; ``d0_i`` is the second difference centred at ``x0 + h0 e_i``);
    ``H`` the central-difference Hessian at ``z`` and ``T`` the mixed third derivatives there
    (:func:`_mixed_third`). Along :math:`\Delta = z - x_0 - h_0 e_i`,
    :math:`H_{ii} - d_{0i} \approx f_{iii} \Delta_i + \sum_{j \ne i} T_{iij} \Delta_j`. The bound is three
    times the estimate plus its rounding noise, divided by :math:`|\Delta_i|`; None when the path is
    longer than 1 % of a parameter's scale ``sc`` (the fourth derivatives would count), a step ``h_i``
    more than 1 % of its parameter, or something is missing.
    """
    if rough is None or T is None or np.any(h > 1e-2 * np.abs(z)):
        return None
    x0, h0, d0 = rough
    k = len(z)
    h, h0 = _steps(h, k), _steps(h0, k)
    eps_f = np.finfo(float).eps * max(1.0, abs(fx))
    Toff = np.where(np.eye(k, dtype=bool), 0.0, T)
    if not np.all(np.isfinite(Toff)):
        return None
    out = np.empty(k)
    for i in range(k):
        d = z - x0
        d[i] -= h0[i]
        if np.max(np.abs(d) / sc) > 1e-2 or d[i] == 0.0:
            return None
        rest = float(Toff[i] @ d)
        est = (H[i, i] - d0[i] - rest) / d[i]
        others = np.abs(d) / h
        others[i] = 0.0
        rnd = (8.0 * eps_f / h[i] ** 2 + 8.0 * eps_f / h0[i] ** 2
               + 10.0 * eps_f / h[i] ** 2 * float(np.sum(others))) / abs(d[i])
        out[i] = 3.0 * abs(est) + rnd
    return out


def _polish(fc, x, fx, lower, upper, *, boundary_tol, polish_steps, newton=True, fgrad=None, rough_start=False):
    """Newton steps on the free parameters with a finite-difference Hessian; derivatives at the end.

    With an exact gradient (``fgrad``, see :func:`minimize_theta`) the gradient is exact and the
    Hessian is formed from central differences of gradients (``2k`` calls instead of ``2k^2 + 4k``
    evaluations); where ``fgrad`` gives no gradient, the finite differences below are used.

    The Hessian (lme4's ``deriv12``: central differences, ``2k^2``
    evaluations) is computed once and reused while the steps succeed,
    updated by BFGS's formula with the change of the gradient along each
    step. The gradient is recomputed at every point, as cheaply as the step
    allows: forward differences (``k`` evaluations) corrected by the
    Hessian's diagonal while the step they give is long (their error then
    moves it by far less than its size); else central differences (``2k``)
    with their ``h^2 f_iii / 6`` term removed by Richardson's extrapolation
    from ``h / 2`` (``2k`` more), reused within 1 % of where it was
    measured. Two economies, each taken only
    where its error is shown to move the criterion by less than its rounding
    through a Newton step (:func:`_negligible`): the term is not measured
    where a bound on ``f_iii`` from the change of the Hessian's diagonal
    since a forward-difference one (:func:`_third_along_path`) makes it
    negligible; and near where a central-difference Hessian was formed, the
    forward differences stand for the central ones (:func:`_forward_suffices`,
    with the third derivatives of the Hessian's grid). A forward-difference
    Hessian (Newton's method from the moment start) is formed again by
    central differences as soon as the steps are short. Only a refined
    gradient ends the steps. The steps stop when the
    next one would be negligible (below ``1e-10`` or below what the
    criterion's rounding noise can confirm); if the Hessian was formed
    farther than 0.1 % away, it is formed again at that point and the
    step judged again, so the derivatives returned belong to it
    (``derivs["settled"]``: the steps stopped there).

    Returns ``(x, fx, derivs)``; ``derivs`` holds the gradient at the
    returned ``x`` and the last Hessian computed (None when no parameter is
    free, or a difference step would leave the bounds). Nothing from the
    linear algebra escapes: a singular or non-finite Hessian just ends the
    polish.
    """
    free = ~((lower == 0) & (x < boundary_tol))
    if not free.any():
        return x, fx, None
    idx = np.flatnonzero(free)

    seen: dict = {}  # the points evaluated so far (a fresh Hessian repeats a gradient's differences)

    def fsub(z):
        key = np.asarray(z, dtype=float).tobytes()
        if key not in seen:
            xx = x.copy()
            xx[idx] = z
            seen[key] = fc(xx)
        return seen[key]

    def known(z):
        return seen.get(np.asarray(z, dtype=float).tobytes())

    def gsub(z):
        if fgrad is None:
            return None
        xx = x.copy()
        xx[idx] = z
        fc.n += 1
        fz, gz = fgrad(xx)
        return None if gz is None or not np.isfinite(fz) else np.asarray(gz, dtype=float)[idx]

    z = x[idx].copy()
    derivs, H = None, None
    H_rough = False  # H from forward differences (rough_start): formed again by central ones if judged far from it
    prev = None  # (z, gradient) of the last round, for BFGS's update of a reused Hessian
    H_at = z
    corr = None  # the h^2 term's correction of the central gradient: (h, correction, where, f_iii or a bound)
    curv = None  # third derivatives where the Hessian was formed by central differences: (z, h, T)
    H_pure = False  # H is the central-difference Hessian formed at H_at (no BFGS update since)
    rough = None  # (where, step, diagonal) of the last forward-difference Hessian, as formed (before any update)
    noise = 10.0 * np.finfo(float).eps * max(1.0, abs(fx))  # what a change of the criterion must exceed
    for step_no in range(polish_steps + 1):
        # each parameter's own scale and step (lme4's 1e-4, relative beyond 1): a small parameter next
        # to a large one keeps a step that is small beside it
        sc = np.maximum(1.0, np.abs(z))
        h = 1e-4 * sc
        if np.any(z - h < lower[idx]) or np.any(z + h > upper[idx]):
            break
        fresh = H is None
        central_H = False  # the Hessian formed at z by central differences in this round
        g = gsub(z)
        if g is not None and fresh:
            cols = [(gsub(z + e), gsub(z - e)) for e in np.diag(h)]
            if all(a is not None and b is not None for a, b in cols):
                # column i: the change of the gradient along axis i, over that axis's own step
                H = np.column_stack([(a - b) / (2 * hi) for (a, b), hi in zip(cols, h)])
                H = 0.5 * (H + H.T)
            else:
                g = None
        accurate = True  # g from central differences (or exact) with the h^2 term removed
        near_corr = corr is not None and np.max(np.abs(z - corr[2]) / sc) <= 1e-2
        # Richardson's correction measured nearby, scaled to this h (0 where there is none)
        h2_term = corr[1] * (h / corr[0]) ** 2 if near_corr else 0.0
        if g is None:
            # The cheapest estimate first, refined only where the step it gives is short. Far from the
            # optimum an error of the gradient of order h (forward differences corrected by the
            # Hessian's diagonal) or h^2 (central differences) moves the step by far less than its size.
            if fresh and rough_start and step_no == 0:
                g_h, H = _forward_derivs(fsub, z, h, fx)  # k(k+3)/2 evaluations instead of 2k^2
                kind, H_rough, H_at = "forward", True, z.copy()
                rough = (z.copy(), h.copy(), np.diagonal(H).copy())
            elif fresh:
                g_h, H = deriv12(fsub, z, h, fx)
                kind, central_H = "central", True
            elif newton and step_no < polish_steps:
                g_h = (_forward_values(fsub, z, h) - fx) / h - 0.5 * h * np.diagonal(H)
                kind = "forward"
            else:
                g_h, kind = _central_gradient(fsub, z, h), "central"
            g = g_h + h2_term
            long_step = False
            if newton and step_no < polish_steps and np.all(np.isfinite(g)):
                try:  # (a Hessian that is not positive definite ends the steps: judged on the refined g)
                    long_step = bool(np.all(np.linalg.eigvalsh(H) > 0)
                                     and np.max(np.abs(np.linalg.solve(H, g)) / sc) > 1e-4)
                except np.linalg.LinAlgError:
                    long_step = False
            if long_step and rough_start and np.max(np.abs(z - H_at) / sc) > 1e-3:
                # Newton's method with a long step to take, far from where its Hessian was formed: a step
                # from a Hessian 1 % off leaves 1 % of it to go; forming it again here costs k(k+1)/2
                # evaluations beyond the gradient's (whose are memoised)
                g_h, H = _forward_derivs(fsub, z, h, fx)
                g = g_h + h2_term
                H_rough, fresh, H_at = True, True, z.copy()
                rough = (z.copy(), h.copy(), np.diagonal(H).copy())
            if long_step:
                accurate = False
            else:
                if H_rough or (not fresh and newton and np.max(np.abs(z - H_at) / sc) > 1e-3):
                    # near the optimum with a forward-difference Hessian, or one formed far from it (and only
                    # updated since): form it here by central differences (those along the axes are memoised),
                    # for Newton's quadratic steps and the third derivatives that judge the later gradients
                    g_h, H = deriv12(fsub, z, h, fx)
                    fresh, H_rough, central_H = True, False, True
                elif kind == "forward" and not (near_corr and _forward_suffices(
                        curv, H if H_pure else None, H_at, z, h, fx, noise)):
                    g_h = _central_gradient(fsub, z, h)  # the other side (the + side is memoised)
                if near_corr:
                    # the h^2 term is a smooth function of theta: near where it was measured, it is the one
                    # measured, scaled to this h (the central differences alone, corrected by it)
                    g = g_h + h2_term
                    if central_H:  # the third derivatives here (f_iii as they were found with the correction)
                        T = _mixed_third(known, z, h)
                        T[np.diag_indices(len(z))] = corr[3]
                        curv = (z.copy(), h, T)
                else:
                    # Richardson's extrapolation removes the h^2 term of the central differences, h^2 f_iii / 6:
                    # at h = 1e-4 it is ~1e-6 (the criterion's third derivative is large), enough to move
                    # theta by 1e-8. (Third differences would take k evaluations instead of 2k, but their
                    # error is of order h f'''' against Richardson's h^2: where h is a good part of a
                    # parameter, as it is with badly scaled ones, that is the difference that counts.)
                    T = _mixed_third(known, z, h) if central_H else None
                    f3 = _third_along_path(rough, z, h, H, T, fx, sc) if central_H else None
                    if f3 is not None and _negligible(h * h / 6.0 * f3, H, noise):
                        # bounded by the change of the Hessian's diagonal since the forward-difference one
                        # and found below the criterion's rounding: not measured, not applied
                        g = g_h
                        corr = (h, np.zeros_like(g), z.copy(), f3)
                    else:
                        g = (4.0 * _central_gradient(fsub, z, h / 2) - g_h) / 3.0
                        f3 = -6.0 * (g - g_h) / h ** 2
                        corr = (h, g - g_h, z.copy(), f3)
                    if central_H:  # the third derivatives here, for judging later whether forward differences suffice
                        T[np.diag_indices(len(z))] = f3
                        curv = (z.copy(), h, T)
        if fresh:
            H_at, H_pure = z.copy(), central_H
        elif prev is not None and np.all(np.isfinite(g)) and (
                (accurate and prev[2]) or np.max(np.abs(z - prev[0]) / sc) > 1e-3):
            # BFGS's update of the reused Hessian with the change of the gradient along the last step:
            # superlinear convergence from a start where the first Hessian was far from the optimum's
            # (a forward estimate's error would swamp the change along a short step: not used then)
            sv, yv = z - prev[0], g - prev[1]
            sy, Hs = float(sv @ yv), H @ (z - prev[0])
            if sy > 1e-12 * np.linalg.norm(sv) * np.linalg.norm(yv) and float(sv @ Hs) > 0:
                H = H + np.outer(yv, yv) / sy - np.outer(Hs, Hs) / float(sv @ Hs)
                H_pure = False
        prev = (z.copy(), g.copy(), accurate)
        derivs = {"x": x.copy(), "index": idx, "gradient": g, "hessian": H, "step": h, "settled": False}
        if not newton or step_no == polish_steps or not (np.all(np.isfinite(g)) and np.all(np.isfinite(H))):
            break
        try:
            if not np.all(np.linalg.eigvalsh(H) > 0):
                break
            step = np.linalg.solve(H, g)
        except np.linalg.LinAlgError:
            break
        if np.max(np.abs(step) / sc) <= 1e-10 or 0.5 * float(g @ step) <= noise:
            # nothing left that the criterion can confirm: the derivatives describe this point, a
            # minimum (positive definite Hessian, Newton decrement below the criterion's rounding)
            if np.max(np.abs(z - H_at) / sc) > 1e-3 and step_no < polish_steps:
                H = None  # the Hessian was formed (and updated) elsewhere: form it here, then judge again
                continue
            derivs["settled"] = True
            break
        # near the optimum the criterion's change is below its rounding noise (~1e-15 relative):
        # a short Newton step from an accurate gradient is then trusted over the comparison
        slack = noise if np.max(np.abs(step) / sc) < 1e-4 else 0.0
        for t in (1.0, 0.5, 0.25):  # backtracking where the criterion is far from quadratic
            znew = np.minimum(np.maximum(z - t * step, lower[idx]), upper[idx])
            fnew = fsub(znew)
            if fnew < fx + slack:
                break
        else:
            if fresh:
                break
            H = None  # the reused Hessian may be stale: compute it here and try again
            continue
        z, fx = znew, fnew
        x = x.copy()
        x[idx] = z
        derivs = None
    return x, fx, derivs


def _newton(fc, x0, lower, upper, *, boundary_tol, steps=12):
    """Newton's method from ``x0`` with finite-difference derivatives: ``(run, derivs)``.

    The polish (:func:`_polish`) started at ``x0`` with more steps. Where the
    start is already close (the moment start usually is), it reaches the
    optimum in a few Hessians' worth of evaluations, where L-BFGS-B's
    first line search from an identity Hessian overshoots by orders of
    magnitude and spends several iterations recovering. The run ends
    normally (``ok``) only when the last Newton step was negligible at a
    positive definite Hessian; anything else (a bound reached, an
    indefinite Hessian, a step that does not lower the criterion, the step
    budget spent) is handed to L-BFGS-B from the lowest point found.
    """
    n0 = fc.n
    x0 = np.asarray(x0, dtype=float)
    f0 = fc(x0)
    if not np.isfinite(f0):
        return _Run(x0, np.inf, False, -1, "the criterion is not finite at the start", fc.n - n0, "Newton",
                    "start"), None
    with np.errstate(all="ignore"):
        x, fx, derivs = _polish(fc, x0, f0, lower, upper, boundary_tol=boundary_tol, polish_steps=steps,
                                rough_start=True)
    ok = bool(derivs is not None and derivs.get("settled") and len(derivs["index"]) == len(x)
              and np.isfinite(fx))
    msg = ("Newton's method converged: the last step was below the criterion's rounding" if ok else
           "Newton's method did not settle; L-BFGS-B continues from its lowest point")
    return _Run(x, float(fx), ok, 0 if ok else -1, msg, fc.n - n0, "Newton", "start"), derivs if ok else None


def minimize_theta(f, theta0, lower, *, optimizer: str = "L-BFGS-B", maxfun: int = 100_000, starts=(),
                   grad_step=1e-6, ftol=1e-12, gtol=1e-6, maxiter=None, polish=True, polish_max_params=10,
                   boundary_tol=1e-4, upper=None, central=False, polish_steps=4, fgrad=None,
                   newton_max_params=0) -> OptimizeResult:
    """Minimise ``f(theta)`` subject to ``lower <= theta <= upper``.

    The lowest point found has any component within ``10 boundary_tol`` of a
    bound put on it where the criterion does not rise beyond its rounding
    (:func:`_onto_bounds`: a gradient method stalls just above a zero
    variance), before the polish.

    Parameters
    ----------
    f : callable
        The profiled criterion; ``inf`` (or NaN) where it is undefined.
    theta0, lower, upper : ndarray
        Start and bounds (``upper`` default: none).
    optimizer : {"L-BFGS-B", "bobyqa", "Nelder-Mead"}
    maxfun : int
        Evaluation budget of each run.
    starts : sequence of (str, ndarray)
        Alternative starts, tried (after a Nelder-Mead restart from the
        best point) when the optimizer ends abnormally.
    grad_step, central : float, bool
        L-BFGS-B's finite-difference gradient: relative step, and central
        (2 evaluations per parameter) or forward (1). Forward differences
        reach the optimum in about half the evaluations; the Newton polish
        then makes ``theta`` accurate. A step of 1e-6 keeps the gradient
        above the criterion's rounding noise even when the criterion is
        large (a smaller step made L-BFGS-B's line searches fail on
        200,000-row crossed designs: 111 evaluations instead of 33).
    ftol, gtol : float
        L-BFGS-B's stopping tolerances.
    polish : bool
        After the optimizer, take Newton steps on the parameters away from
        their bounds with a finite-difference Hessian (only with at most
        ``polish_max_params`` parameters), keeping a step only if it lowers
        ``f``; the derivatives at the end are returned in ``derivs``.
    fgrad : callable, optional
        ``fgrad(theta) -> (f(theta), gradient or None)``: an exact gradient
        for L-BFGS-B instead of finite differences (where it returns None,
        finite differences are used).
    newton_max_params : int
        With L-BFGS-B, no exact gradient, the polish on, at most this many
        parameters and a start inside the bounds, Newton's method with
        finite-difference derivatives is tried first (:func:`_newton`);
        L-BFGS-B runs from its lowest point unless it converged. Default 0
        (never): it pays from a start near the optimum, such as
        :meth:`mmbook.engine.pls.PLS.moment_start` of random intercepts.

    Returns
    -------
    OptimizeResult
        ``theta`` and ``par`` are both the optimum in ``f``'s parameters.

    Raises
    ------
    ValueError
        Unknown optimizer.
    ImportError
        ``optimizer="bobyqa"`` without the nlopt package.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(map(repr, OPTIMIZERS))}, got {optimizer!r}")
    if maxiter is not None:  # kept for callers of the old signature
        maxfun = min(maxfun, int(maxiter) * (len(lower) + 1))
    fc = _Counted(f)
    lower = np.asarray(lower, dtype=float)
    upper = np.full_like(lower, np.inf) if upper is None else np.asarray(upper, dtype=float)
    theta0 = np.clip(np.asarray(theta0, dtype=float), lower, upper)

    def primary(x0, label):
        if optimizer == "L-BFGS-B":
            return _lbfgsb(fc, x0, lower, upper, grad_step=grad_step, central=central, ftol=ftol, gtol=gtol,
                           maxfun=maxfun, start=label, fgrad=fgrad)
        if optimizer == "bobyqa":
            return _bobyqa(fc, x0, lower, upper, maxfun=maxfun, start=label)
        return _nelder_mead(fc, x0, lower, upper, maxfun=maxfun, step=0.1, start=label)

    def search(x0, label):
        """The optimizer from ``x0``; after an abnormal end, Nelder-Mead from its best point, then the other starts."""
        rs = [primary(x0, label)]
        if rs[-1].ok:
            return rs
        best = min(rs, key=lambda r: r.fun)
        if np.isfinite(best.fun):
            rs.append(_nelder_mead(fc, best.x, lower, upper, maxfun=maxfun, step=0.02,
                                   start=f"the best point of {best.optimizer}"))
        for lab, s in starts:
            if rs[-1].ok:
                break
            rs.append(primary(np.clip(np.asarray(s, dtype=float), lower, upper), lab))
            if not rs[-1].ok and np.isfinite(rs[-1].fun):
                rs.append(_nelder_mead(fc, rs[-1].x, lower, upper, maxfun=maxfun, step=0.02,
                                       start=f"the best point of {optimizer} from {lab}"))
        return rs

    newton_derivs = None
    if (optimizer == "L-BFGS-B" and fgrad is None and polish and 0 < len(theta0) <= newton_max_params
            and np.all(theta0 - lower > 10 * boundary_tol) and np.all(upper - theta0 > 10 * boundary_tol)):
        run, newton_derivs = _newton(fc, theta0, lower, upper, boundary_tol=boundary_tol)
        runs = [run] if run.ok else search(run.x, "the last point of Newton's method") + [run]
    else:
        runs = search(theta0, "start")
    best = min(runs, key=lambda r: r.fun)
    if np.isfinite(best.fun):
        x2 = _off_boundary(fc, best.x, best.fun, lower, upper, boundary_tol)
        if x2 is not None:
            runs += search(x2, "a point off the boundary")

    for escape in range(3):
        # the result: the lowest point; converged if a run that ended normally reached it
        final = min(runs, key=lambda r: (r.fun, not r.ok))
        x, fx = final.x.copy(), final.fun
        reached = [r for r in runs if r.ok and r.fun <= fx + 1e-10 * max(1.0, abs(fx))]
        converged = bool(reached) and np.isfinite(fx)
        last = reached[-1] if reached else final
        derivs = None
        if np.isfinite(fx):
            x_on, fx = _onto_bounds(fc, x, fx, lower, upper, boundary_tol)
            moved, x = not np.array_equal(x_on, x), x_on
        if not (polish and np.isfinite(fx) and len(x) <= polish_max_params):
            break
        if newton_derivs is not None and final.optimizer == "Newton" and escape == 0 and not moved:
            derivs = newton_derivs  # Newton's method ended where its derivatives were computed
            x3 = _down_the_saddle(fc, x, fx, lower, upper, derivs)
            if x3 is None:
                break
            runs += search(x3, "a point along the Hessian's negative curvature")
            continue
        with np.errstate(all="ignore"):  # differences of inf are judged, not warned about
            x, fx, derivs = _polish(fc, x, fx, lower, upper, boundary_tol=boundary_tol, polish_steps=polish_steps,
                                    fgrad=fgrad)
        # a saddle (negative curvature where the gradient vanishes, as on a nearly flat ridge
        # towards the boundary): descend along that direction and search again from there
        x3 = _down_the_saddle(fc, x, fx, lower, upper, derivs) if escape < 2 else None
        if x3 is None:
            break
        runs += search(x3, "a point along the Hessian's negative curvature")

    messages = []
    if not converged:
        first = runs[0]
        last = first
        messages.append(f"convergence code {first.code} from {first.optimizer}: {first.message}")
        if len(runs) > 1:
            messages.append(f"{len(runs) - 1} restart{'s' if len(runs) > 2 else ''}, none ending normally at the "
                            "lowest point: " + "; ".join(
                                f"{r.optimizer} from {r.start}: {r.message}"
                                + (f" (at a higher criterion, {r.fun:.10g})" if r.ok else "") for r in runs[1:]))
    history = [dict(optimizer=r.optimizer, start=r.start, fun=r.fun, nfev=r.nfev, ok=r.ok, message=r.message)
               for r in runs]
    # the criterion at x itself (L-BFGS-B may answer from an evaluation 1e-12 away); Newton's method
    # evaluated it there
    exact = derivs is not None and derivs is newton_derivs
    return OptimizeResult(theta=x, fun=float(fx if exact else fc(x)) if np.isfinite(fx) else np.inf, nfev=fc.n,
                          converged=converged, messages=messages, optimizer=optimizer,
                          code=0 if converged else last.code, message=last.message, history=history,
                          derivs=derivs)


def _down_the_saddle(fc, x, fx, lower, upper, derivs, tol=1e-6):
    """A lower point along the eigenvector of the Hessian's most negative eigenvalue, or None.

    lme4's ``checkHess`` calls a Hessian with an eigenvalue below ``-tol``
    "degenerate": the point is not a minimum. Points at distances ``1e-4`` to
    ``0.3`` on both sides are tried (inside the bounds).
    """
    if derivs is None or not np.all(np.isfinite(derivs["hessian"])):
        return None
    try:
        w, V = np.linalg.eigh(derivs["hessian"])
    except np.linalg.LinAlgError:
        return None
    noise = 10.0 * np.finfo(float).eps * max(1.0, abs(fx)) / np.min(derivs["step"]) ** 2  # a second difference's
    if not w[0] < -max(tol, noise):
        return None
    v = np.zeros_like(x)
    v[derivs["index"]] = V[:, 0]
    best, fbest = None, fx
    for t in (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3):
        for sign in (1.0, -1.0):
            trial = np.clip(x + sign * t * v, lower, upper)
            ft = fc(trial)
            if ft < fbest:
                best, fbest = trial, ft
    return best


def _onto_bounds(fc, x, fx, lower, upper, boundary_tol):
    """``(x, f(x))`` with the components within ``10 boundary_tol`` of a bound put on it where that is no worse.

    Near a zero lower bound the criterion depends on the square of the
    parameter, so its gradient vanishes there and a gradient method can stop
    at ``1e-5`` above a bound that is the optimum, ``1e-7`` above its
    criterion. Each such component is tried exactly on the bound (one
    evaluation each) and kept there if the criterion does not rise by more
    than its rounding noise.
    """
    reach = 10.0 * boundary_tol
    near = np.flatnonzero(((x - lower > 0) & (x - lower < reach)) | ((upper - x > 0) & (upper - x < reach)))
    for i in near:
        trial = x.copy()
        trial[i] = lower[i] if x[i] - lower[i] < reach else upper[i]
        ft = fc(trial)
        # on the bound the criterion is flat to second order: a difference within its rounding noise
        # is none, and the bound (a variance exactly 0, as lme4 reports it) is kept
        if ft <= fx + 10.0 * np.finfo(float).eps * max(1.0, abs(fx)):
            x, fx = trial, ft
    return x, fx


def _off_boundary(fc, x, fx, lower, upper, boundary_tol):
    """A point off the boundary with a lower criterion, or None (lme4's ``restart_edge``).

    On the boundary a variance is zero and the criterion depends on its
    square, so its gradient there is zero and a gradient method stops even
    when moving inward lowers the criterion (a long first step can land
    there). Probe inward along each such component; the search restarts
    from the best point found.
    """
    on_bound = np.flatnonzero((lower == 0) & (x < boundary_tol))
    if not on_bound.size:
        return None
    x2, f2 = x.copy(), fx
    for i in on_bound:
        for v in (1e-3, 1e-2, 0.03, 0.1, 0.3, 1.0):
            trial = x2.copy()
            trial[i] = min(v, upper[i])
            ft = fc(trial)
            if ft < f2:
                x2, f2 = trial, ft
    return x2 if f2 < fx - 1e-12 * max(1.0, abs(fx)) else None
