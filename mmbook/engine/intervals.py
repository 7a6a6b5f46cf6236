"""Confidence intervals for a fit's parameters, as lme4's ``confint.merMod``.

Wald intervals for the fixed effects; profile-likelihood intervals for all
parameters (lme4's ``profile`` + ``confint``); bootstrap percentiles.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import optimize, stats

from .bootstrap import bootstrap
from .optimize import minimize_theta

__all__ = ["confint", "param_names", "sdcor"]


def param_names(fit) -> list[str]:
    """lme4's names of the variance parameters (``oldNames = TRUE``): .sig01, ..., .sigma."""
    k = sum(t.ntheta for t in fit.terms)
    return [f".sig{i + 1:02d}" for i in range(k)] + [".sigma"]


def sdcor(fit) -> np.ndarray:
    """Variance parameters on lme4's sd/cor scale, in ``theta``'s order, then sigma."""
    out = []
    for k, t in enumerate(fit.terms):
        S = fit.psi(k)
        sd = np.sqrt(np.diag(S))
        rows, cols = np.triu_indices(t.q)[::-1]  # (row, col) with row >= col, column-major
        for r, c in zip(*_colmajor(t.q)):
            out.append(sd[r] if r == c else (S[r, c] / (sd[r] * sd[c]) if sd[r] * sd[c] > 0 else 0.0))
    out.append(fit.sigma)
    return np.array(out)


def _colmajor(q):
    cols, rows = np.triu_indices(q)
    return rows, cols


def _theta_sigma(fit, phi: np.ndarray):
    """Map sd/cor parameters (and sigma, last) to ``(theta, sigma)``; None if invalid."""
    sigma = phi[-1]
    if not sigma > 0:
        return None
    theta, pos = [], 0
    for t in fit.terms:
        rows, cols = _colmajor(t.q)
        vals = phi[pos:pos + t.ntheta]
        pos += t.ntheta
        sd = np.zeros(t.q)
        R = np.eye(t.q)
        for v, r, c in zip(vals, rows, cols):
            if r == c:
                sd[r] = v
            else:
                R[r, c] = R[c, r] = v
        if np.any(sd < 0):
            return None
        try:
            Lr = np.linalg.cholesky(R)
        except np.linalg.LinAlgError:
            return None
        T = (sd / sigma)[:, None] * Lr
        theta.extend(T[rows, cols])
    return np.array(theta), sigma


def _wald(fit, level):
    z = stats.norm.ppf(0.5 + level / 2)
    se = np.sqrt(np.diag(fit.vcov.to_numpy()))
    return np.column_stack([fit.beta - z * se, fit.beta + z * se])


def _profile_intervals(fit, level: float) -> np.ndarray:
    """Profile-likelihood intervals on the ML deviance (what lme4's ``confint`` does, REML fits included)."""
    mfit = fit.refit_ml() if fit.REML else fit
    pls = mfit.pls  # an ML fit: its predictor gives the ML deviance, computed in the conditioned units
    n = mfit.nobs
    zcrit = stats.norm.ppf(0.5 + level / 2)
    dev_min = mfit.objective

    def dev_full(phi):
        ts = _theta_sigma(mfit, phi)
        if ts is None:
            return np.inf
        theta, sigma = ts
        try:
            s = pls.solve(theta)
        except _NUMERICAL:  # theta where M(theta) is not positive definite: outside the model
            return np.inf
        return s.logdet_L + n * np.log(2 * np.pi * sigma ** 2) + s.pwrss / sigma ** 2

    phi_hat = sdcor(mfit)
    names = param_names(mfit)
    bounds = []
    for t in mfit.terms:
        for r, c in zip(*_colmajor(t.q)):
            bounds.append((0.0, None) if r == c else (-1.0 + 1e-9, 1.0 - 1e-9))
    bounds.append((1e-12 * max(phi_hat[-1], 1.0), None))

    def profile_var(j, v, start):
        free = [i for i in range(len(phi_hat)) if i != j]

        def f(z):
            phi = start.copy()
            phi[free] = z
            phi[j] = v
            return dev_full(phi)

        if not free:
            return f(np.array([])), start
        lo = np.array([bounds[i][0] if bounds[i][0] is not None else -np.inf for i in free])
        hi = np.array([bounds[i][1] if bounds[i][1] is not None else np.inf for i in free])
        res = minimize_theta(f, np.clip(start[free], lo, hi), lo, upper=hi, polish=False)
        new = start.copy()
        new[free] = res.theta
        new[j] = v
        return res.fun, new

    out, reasons = [], {}
    for j in range(len(phi_hat)):
        lo_b, hi_b = bounds[j]
        row = []
        for side in (-1, 1):
            cache = {"start": phi_hat.copy()}

            def zeta(v):
                d, cache["start"] = profile_var(j, v, cache["start"])
                return np.sign(v - phi_hat[j]) * np.sqrt(max(d - dev_min, 0.0))

            step = 0.25 * abs(phi_hat[j]) + 0.05 * (1.0 if j < len(phi_hat) - 1 else phi_hat[-1])
            a, v = phi_hat[j], phi_hat[j]
            found = None
            for _ in range(40):
                v = v + side * step
                if lo_b is not None and v <= lo_b:
                    v = lo_b
                if hi_b is not None and v >= hi_b:
                    v = hi_b
                zv = zeta(v)
                if side * zv >= zcrit:
                    found = _root(lambda x: zeta(x) - side * zcrit, a, v, reasons, (names[j], side))
                    break
                if (lo_b is not None and v == lo_b) or (hi_b is not None and v == hi_b):
                    found = v
                    break
                a = v
                step *= 1.6
            if found is None and (names[j], side) not in reasons:
                reasons[(names[j], side)] = "the profile did not reach the cut-off within 40 steps"
            row.append(np.nan if found is None else found)
        out.append(row)

    # fixed effects: fix beta_j, minimise the ML deviance over theta (sigma and beta_-j profiled)
    for j in range(mfit.mf.p):
        row = []
        for side in (-1, 1):
            def dev_beta(v, theta0=None):
                def f(theta):
                    try:
                        s = pls.solve(theta)
                        RXinv = np.linalg.solve(s.RX, np.eye(len(s.RX)))
                    except _NUMERICAL:
                        return np.inf
                    Vjj = (RXinv.T @ RXinv)[j, j]
                    r2 = s.pwrss + (v - s.beta[j]) ** 2 / Vjj
                    return s.logdet_L + n * (1 + np.log(2 * np.pi * r2 / n))
                res = minimize_theta(f, mfit.opt.theta if theta0 is None else theta0, pls.lower, polish=False)
                return res.fun

            def zeta(v):
                return np.sign(v - mfit.beta[j]) * np.sqrt(max(dev_beta(v) - dev_min, 0.0))

            se = np.sqrt(mfit.vcov.to_numpy()[j, j])
            a, v, step, found = mfit.beta[j], mfit.beta[j], se * 1.5, None
            for _ in range(40):
                v = v + side * step
                if side * zeta(v) >= zcrit:
                    found = _root(lambda x: zeta(x) - side * zcrit, a, v, reasons, (mfit.fixef.index[j], side))
                    break
                a = v
                step *= 1.5
            if found is None and (mfit.fixef.index[j], side) not in reasons:
                reasons[(mfit.fixef.index[j], side)] = "the profile did not reach the cut-off within 40 steps"
            row.append(np.nan if found is None else found)
        out.append(row)
    return np.array(out), reasons


_NUMERICAL = (np.linalg.LinAlgError, ValueError, FloatingPointError, ZeroDivisionError)


def _root(g, a, b, reasons, key):
    """``brentq`` on ``[a, b]``; None (and the reason) when the profile is not monotone there."""
    try:
        return optimize.brentq(g, min(a, b), max(a, b), xtol=1e-9)
    except ValueError as exc:  # f(a) and f(b) of the same sign: the profile is not monotone
        reasons[key] = f"no root of the profile between {min(a, b):.6g} and {max(a, b):.6g} ({exc})"
        return None


def confint(fit, method: str = "Wald", level: float = 0.95, nsim: int = 500, seed=None,
            progress: bool = False) -> pd.DataFrame:
    """Confidence intervals for a fit's parameters (lme4's ``confint.merMod``, ``oldNames = TRUE``).

    Rows: ``.sig01``, ``.sig02``, ... (the random-effects standard deviations
    and correlations in ``theta``'s order), ``.sigma``, then the fixed
    effects. Columns: the lower and upper limits (``"2.5 %"``, ``"97.5 %"``).

    Parameters
    ----------
    method : {"Wald", "profile", "boot"}
        ``Wald``: ``beta_j -/+ z se_j`` for the fixed effects, missing for the
        variance parameters (as lme4). ``profile``: where the signed square
        root of the profiled ML deviance crosses the normal quantiles (lme4
        profiles the ML deviance also for REML fits, so a REML fit is refitted
        by ML first). ``boot``: percentiles of a parametric bootstrap.

    Returns
    -------
    pandas.DataFrame
        For ``method="profile"``, ``attrs["not_found"]`` maps each limit
        that could not be found (NaN in the table) to the reason, and a
        ``UserWarning`` lists them.
    """
    if not 0 < level < 1:
        raise ValueError("level must be between 0 and 1")
    lo_name, hi_name = f"{100 * (1 - level) / 2:g} %", f"{100 * (1 + level) / 2:g} %"
    names = param_names(fit) + list(fit.fixef.index)
    nvar = len(param_names(fit))
    method = method.lower()
    if method == "wald":
        ci = np.vstack([np.full((nvar, 2), np.nan), _wald(fit, level)])
    elif method == "profile":
        ci, reasons = _profile_intervals(fit, level)
        not_found = {f"{name} {'lower' if side < 0 else 'upper'}": why for (name, side), why in reasons.items()}
        if not_found:
            text = "; ".join(f"{k}: {v}" for k, v in not_found.items())
            warnings.warn(f"profile: {len(not_found)} confidence limit(s) not found, reported as NaN ({text})",
                          UserWarning, stacklevel=2)
    elif method == "boot":
        draws = bootstrap(fit, lambda f: np.concatenate([sdcor(f), f.beta]), nsim=nsim, seed=seed,
                          progress=progress)
        ci = np.column_stack([np.quantile(draws, (1 - level) / 2, axis=0),
                              np.quantile(draws, (1 + level) / 2, axis=0)])
    else:
        raise ValueError(f"method must be 'Wald', 'profile' or 'boot', got {method!r}")
    out = pd.DataFrame(ci, index=names, columns=[lo_name, hi_name])
    if method == "profile":
        out.attrs["not_found"] = not_found  # limit -> why it is NaN
    return out

