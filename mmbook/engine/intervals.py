"""Confidence intervals for a fit's parameters, as lme4's ``confint.merMod``.

Wald intervals for the fixed effects; profile-likelihood intervals for all
parameters (lme4's ``profile`` + ``confint``); bootstrap percentiles.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import optimize, stats

from .bootstrap import bootstrap
from .optimize import minimize_theta
from .pls import PLS

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
        except Exception:
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

    out = []
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
                    found = optimize.brentq(lambda x: zeta(x) - side * zcrit, min(a, v), max(a, v), xtol=1e-9)
                    break
                if (lo_b is not None and v == lo_b) or (hi_b is not None and v == hi_b):
                    found = v
                    break
                a = v
                step *= 1.6
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
                    except Exception:
                        return np.inf
                    RXinv = np.linalg.solve(s.RX, np.eye(len(s.RX)))
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
                    found = optimize.brentq(lambda x: zeta(x) - side * zcrit, min(a, v), max(a, v), xtol=1e-9)
                    break
                a = v
                step *= 1.5
            row.append(np.nan if found is None else found)
        out.append(row)
    return np.array(out)


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
        ci = _profile_intervals(fit, level)
    elif method == "boot":
        draws = bootstrap(fit, lambda f: np.concatenate([sdcor(f), f.beta]), nsim=nsim, seed=seed,
                          progress=progress)
        ci = np.column_stack([np.quantile(draws, (1 - level) / 2, axis=0),
                              np.quantile(draws, (1 + level) / 2, axis=0)])
    else:
        raise ValueError(f"method must be 'Wald', 'profile' or 'boot', got {method!r}")
    return pd.DataFrame(ci, index=names, columns=[lo_name, hi_name])

