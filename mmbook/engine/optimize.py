"""Minimising the profiled criterion over ``theta``.

lme4 uses BOBYQA, a derivative-free trust-region method. Here the criterion
is smooth and cheap, so a quasi-Newton method with accurate finite-difference
gradients converges in fewer evaluations: L-BFGS-B under the bounds
``theta_diag >= 0`` with central differences, then (for a handful of
parameters) Newton steps with a finite-difference Hessian to land on the
optimum to many digits, not just the criterion to a few.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize

__all__ = ["OptimizeResult", "minimize_theta"]


@dataclass
class OptimizeResult:
    theta: np.ndarray
    fun: float
    nfev: int
    converged: bool
    messages: list = field(default_factory=list)


class _Counted:
    def __init__(self, f):
        self.f, self.n = f, 0

    def __call__(self, x):
        self.n += 1
        return self.f(x)


def _gradient(f, x, lower, h, f0=None, upper=None, central=True):
    """Finite-difference gradient: central, or forward (``central=False``); one-sided at an active bound."""
    g = np.empty_like(x)
    for i in range(len(x)):
        hi = h * max(1.0, abs(x[i]))
        e = np.zeros_like(x)
        e[i] = hi
        if not central and (upper is None or x[i] + hi <= upper[i]):
            f0 = f(x) if f0 is None else f0
            g[i] = (f(x + e) - f0) / hi
        elif x[i] - hi < lower[i]:
            f0 = f(x) if f0 is None else f0
            g[i] = (f(x + e) - f0) / hi
        elif upper is not None and x[i] + hi > upper[i]:
            f0 = f(x) if f0 is None else f0
            g[i] = (f0 - f(x - e)) / hi
        else:
            g[i] = (f(x + e) - f(x - e)) / (2 * hi)
    return g


def _hessian(f, x, h, f0):
    k = len(x)
    H = np.empty((k, k))
    fp = np.empty(k)
    fm = np.empty(k)
    for i in range(k):
        e = np.zeros(k)
        e[i] = h
        fp[i], fm[i] = f(x + e), f(x - e)
        H[i, i] = (fp[i] - 2 * f0 + fm[i]) / h ** 2
    for i in range(k):
        for j in range(i):
            ei = np.zeros(k)
            ej = np.zeros(k)
            ei[i] = ej[j] = h
            H[i, j] = H[j, i] = (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)) / (4 * h * h)
    g = (fp - fm) / (2 * h)
    return g, H


def minimize_theta(f, theta0, lower, *, grad_step=1e-6, ftol=1e-12, gtol=1e-6, maxiter=2000,
                   polish=True, polish_max_params=10, boundary_tol=1e-4, upper=None,
                   central=False, polish_steps=1, fgrad=None) -> OptimizeResult:
    """Minimise ``f(theta)`` subject to ``theta >= lower``.

    Parameters
    ----------
    f : callable
        The profiled criterion; returns ``inf`` where it is undefined.
    theta0, lower : ndarray
    grad_step, central : float, bool
        Relative step of the finite-difference gradient, and whether it is
        central (2 evaluations per parameter) or forward (1). Forward
        differences reach the optimum in about half the evaluations; the
        Newton polish then makes ``theta`` accurate. A step of 1e-6 keeps the
        gradient above the criterion's rounding noise even when the criterion
        is large (a smaller step made L-BFGS-B's line searches fail on
        200,000-row crossed designs: 111 evaluations instead of 33).
    polish : bool
        After L-BFGS-B, take Newton steps on the parameters away from their
        bounds with a finite-difference Hessian (only with at most
        ``polish_max_params`` parameters), keeping a step only if it lowers
        ``f``.
    fgrad : callable, optional
        ``fgrad(theta) -> (f(theta), gradient or None)``: an exact gradient to use instead of
        finite differences (where it returns None, finite differences are used).
    """
    fc = _Counted(f)
    lower = np.asarray(lower, dtype=float)
    upper_ = np.full_like(lower, np.inf) if upper is None else np.asarray(upper, dtype=float)
    bounds = [(lo if np.isfinite(lo) else None, hi if np.isfinite(hi) else None) for lo, hi in zip(lower, upper_)]

    recent: list = []  # (x, f, gradient) of the last evaluations

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
            g = np.zeros_like(x) if not np.isfinite(f0) else _gradient(fc, x, lower, grad_step, f0, upper_, central)
        recent.append((x.copy(), f0, g))
        del recent[:-16]
        return f0, g.copy()

    theta0 = np.asarray(theta0, dtype=float)
    # The gradient's rounding noise and the criterion's curvature both grow with the criterion
    # (with n), so the gradient tolerance does too: below it, line searches only chase noise.
    f_start, _ = fun_and_grad(theta0)
    if np.isfinite(f_start) and fgrad is None:
        gtol = max(gtol, 1e-8 * abs(f_start))
    res = minimize(fun_and_grad, theta0, jac=True, method="L-BFGS-B",
                   bounds=bounds, options=dict(ftol=ftol, gtol=gtol, maxiter=maxiter, maxcor=20))
    x, fx = res.x.copy(), float(res.fun)
    messages = []
    if not res.success and "ABNORMAL" not in str(res.message).upper():
        messages.append(f"optimizer (L-BFGS-B): {res.message}")
    # On the boundary a variance is zero and the criterion depends on its square, so its gradient
    # there is zero and L-BFGS-B stops even when moving inward lowers the criterion (a long first
    # step can land there). Probe inward along each such component and restart from the best point.
    on_bound = np.flatnonzero((lower == 0) & (x < boundary_tol))
    if on_bound.size:
        x2, f2 = x.copy(), fx
        for i in on_bound:
            for v in (1e-3, 1e-2, 0.03, 0.1, 0.3, 1.0):
                trial = x2.copy()
                trial[i] = v
                ft = fc(trial)
                if ft < f2:
                    x2, f2 = trial, ft
        if f2 < fx - 1e-12 * max(1.0, abs(fx)):
            res2 = minimize(fun_and_grad, x2, jac=True, method="L-BFGS-B", bounds=bounds,
                            options=dict(ftol=ftol, gtol=gtol, maxiter=maxiter, maxcor=20))
            if res2.fun < fx:
                x, fx = res2.x.copy(), float(res2.fun)

    if polish and len(x) <= polish_max_params:
        free = ~((lower == 0) & (x < boundary_tol))
        if free.any():
            idx = np.flatnonzero(free)

            def fsub(z):
                xx = x.copy()
                xx[idx] = z
                return fc(xx)

            z = x[idx].copy()
            for _ in range(polish_steps):
                h = 1e-4 * max(1.0, float(np.max(np.abs(z))))
                if np.any(z - h < lower[idx]) or np.any(z + h > upper_[idx]):
                    break
                g, H = _hessian(fsub, z, h, fsub(z))
                try:
                    step = np.linalg.solve(H, g)
                except np.linalg.LinAlgError:
                    break
                if not np.all(np.linalg.eigvalsh(H) > 0):
                    break
                znew = np.minimum(np.maximum(z - step, lower[idx]), upper_[idx])
                fnew = fsub(znew)
                if not fnew <= fx:
                    break
                improvement = fx - fnew
                z, fx = znew, fnew
                x[idx] = z
                if improvement < 1e-13 * max(1.0, abs(fx)) and np.max(np.abs(step)) < 1e-9:
                    break
    return OptimizeResult(theta=x, fun=float(f(x)), nfev=fc.n, converged=not messages, messages=messages)
