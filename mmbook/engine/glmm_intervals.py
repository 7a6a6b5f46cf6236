"""Confidence intervals for a GLMM's parameters, as lme4's ``confint.merMod`` gives them for a ``glmerMod``.

* ``Wald``: ``beta_j -/+ z_{(1+level)/2} se_j`` with the standard errors of
  ``vcov``; missing for the variance parameters (as lme4).
* ``profile``: for each parameter, the values where the signed square root
  of the profiled deviance,

  .. math::  \\zeta(v) = \\operatorname{sign}(v - \\hat\\psi_j)
             \\sqrt{\\min_{\\psi_{-j}} D(\\psi_{-j}, \\psi_j = v) - D(\\hat\\psi)},

  crosses ``-/+ z``; ``D`` is the fit's deviance (Laplace or quadrature),
  and ``psi`` the standard deviations and correlations of the random effects
  (lme4's ``.sig01``, ...; no ``.sigma`` for a GLMM) and ``beta``. A
  standard deviation whose profile stays below ``z`` down to zero has the
  lower limit 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import optimize, stats

from .optimize import minimize_theta
from .profile import lower_entries, sd_and_corr, sdcor_of_cov

__all__ = ["glmm_confint", "sdcor_names", "sdcor_to_theta", "theta_to_sdcor"]


def sdcor_names(fit) -> list[str]:
    """lme4's names of a GLMM's variance parameters (``oldNames = TRUE``): ``.sig01``, ``.sig02``, ..."""
    k = sum(t.ntheta for t in fit.terms)
    return [f".sig{i + 1:02d}" for i in range(k)]


def theta_to_sdcor(fit, theta: np.ndarray) -> np.ndarray:
    """Standard deviations and correlations (``theta``'s order, sigma = 1) from ``theta``."""
    out, pos = [], 0
    for t in fit.terms:
        rows, cols = lower_entries(t.q)
        T = np.zeros((t.q, t.q))
        T[rows, cols] = theta[pos:pos + t.ntheta]
        pos += t.ntheta
        out += sdcor_of_cov(T @ T.T, rows, cols)
    return np.array(out)


def sdcor_to_theta(fit, phi: np.ndarray) -> np.ndarray | None:
    """``theta`` from standard deviations and correlations; None when they are not a covariance."""
    theta, pos = [], 0
    for t in fit.terms:
        rows, cols = lower_entries(t.q)
        sd, R = sd_and_corr(phi[pos:pos + t.ntheta], rows, cols, t.q)
        pos += t.ntheta
        if np.any(sd < 0):
            return None
        try:
            Lr = np.linalg.cholesky(R)
        except np.linalg.LinAlgError:
            return None
        T = sd[:, None] * Lr
        theta.extend(T[rows, cols])
    return np.array(theta)


def _profile(fit, level: float) -> np.ndarray:
    crit = fit.criterion
    ntheta, p = len(fit.opt.theta), fit.mf.p
    phi_hat = np.concatenate([theta_to_sdcor(fit, fit.opt.theta), fit.beta])
    dev_min = fit.objective
    zcrit = stats.norm.ppf(0.5 + level / 2)
    # lower and upper bounds, and a scale per parameter (so that the inner optimizer sees unit scales)
    lo, hi = [], []
    for t in fit.terms:
        for r, c in zip(*lower_entries(t.q)):
            lo.append(0.0 if r == c else -1.0 + 1e-9)
            hi.append(np.inf if r == c else 1.0 - 1e-9)
    lo, hi = np.array(lo + [-np.inf] * p), np.array(hi + [np.inf] * p)
    scale = np.concatenate([np.ones(ntheta), np.sqrt(np.diag(fit.vcov.to_numpy()))])

    def dev(phi):
        theta = sdcor_to_theta(fit, phi[:ntheta])
        if theta is None:
            return np.inf
        return crit.objective(np.concatenate([theta, phi[ntheta:]]))

    def profiled(j, v, start):
        free = np.array([i for i in range(len(phi_hat)) if i != j])

        def f(s):
            phi = start.copy()
            phi[free] = phi_hat[free] + scale[free] * s
            phi[j] = v
            return dev(phi)

        s0 = (start[free] - phi_hat[free]) / scale[free]
        slo = (lo[free] - phi_hat[free]) / scale[free]
        shi = (hi[free] - phi_hat[free]) / scale[free]
        res = minimize_theta(f, np.clip(s0, slo, shi), slo, upper=shi, polish=False)
        new = start.copy()
        new[free] = phi_hat[free] + scale[free] * res.theta
        new[j] = v
        return res.fun, new

    out = []
    for j in range(len(phi_hat)):
        row = []
        for side in (-1, 1):
            cache = {"start": phi_hat.copy()}

            def zeta(v):
                d, cache["start"] = profiled(j, v, cache["start"])
                return np.sign(v - phi_hat[j]) * np.sqrt(max(d - dev_min, 0.0))

            step = 0.5 * scale[j] if j >= ntheta else 0.25 * abs(phi_hat[j]) + 0.05
            a, v, found = phi_hat[j], phi_hat[j], None
            for _ in range(40):
                v = min(max(v + side * step, lo[j]), hi[j])
                if side * zeta(v) >= zcrit:
                    found = optimize.brentq(lambda x: zeta(x) - side * zcrit, min(a, v), max(a, v), xtol=1e-8)
                    break
                if v in (lo[j], hi[j]):
                    found = v
                    break
                a, step = v, step * 1.6
            row.append(np.nan if found is None else found)
        out.append(row)
    crit.pirls(fit.state.theta, fit.state.beta)  # leave the criterion at the mode
    return np.array(out)


def glmm_confint(fit, method: str = "Wald", level: float = 0.95) -> pd.DataFrame:
    """Confidence intervals for a GLMM (lme4's ``confint.merMod``, ``oldNames = TRUE``).

    Rows ``.sig01``, ... (standard deviations and correlations of the random
    effects, in ``theta``'s order), then the fixed effects; columns the
    lower and upper limits (``"2.5 %"``, ``"97.5 %"``).

    Parameters
    ----------
    method : {"Wald", "profile"}
    level : float

    Raises
    ------
    ValueError
        An unknown method or a level outside (0, 1).
    """
    if not 0 < level < 1:
        raise ValueError("level must be between 0 and 1")
    names = sdcor_names(fit) + list(fit.fixef.index)
    nvar = len(sdcor_names(fit))
    m = method.lower()
    if m == "wald":
        z = stats.norm.ppf(0.5 + level / 2)
        se = np.sqrt(np.diag(fit.vcov.to_numpy()))
        ci = np.vstack([np.full((nvar, 2), np.nan), np.column_stack([fit.beta - z * se, fit.beta + z * se])])
    elif m == "profile":
        ci = _profile(fit, level)
    else:
        raise ValueError(f"method must be 'Wald' or 'profile' for a GLMM, got {method!r}")
    cols = [f"{100 * (1 - level) / 2:g} %", f"{100 * (1 + level) / 2:g} %"]
    return pd.DataFrame(ci, index=names, columns=cols)
