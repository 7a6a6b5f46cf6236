"""Confidence intervals for a fit's parameters, as lme4's ``confint.merMod``.

Three methods, as lme4: profile-likelihood intervals for every parameter
(the default; :mod:`mmbook.engine.profile`), Wald intervals for the fixed
effects, and percentiles of a parametric bootstrap.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .bootstrap import bootstrap
from .profile import Profiler, check_level, ci_columns, param_names, sdcor, select_parms

__all__ = ["confint", "param_names", "sdcor"]

_METHODS = {"profile": "profile", "wald": "Wald", "boot": "boot"}


def _wald(fit, level, which, nvar):
    z = stats.norm.ppf(0.5 + level / 2)
    se = np.sqrt(np.diag(fit.vcov.to_numpy()))
    out = np.full((len(which), 2), np.nan)
    for i, j in enumerate(which):
        if j >= nvar:
            b, s = fit.beta[j - nvar], se[j - nvar]
            out[i] = (b - z * s, b + z * s)
    return out


def _profile(fit, level, which, nvar):
    prof = Profiler(fit)
    zcrit = stats.norm.ppf(0.5 + level / 2)
    out = np.full((len(which), 2), np.nan)
    for i, j in enumerate(which):
        for k, side in enumerate((-1, 1)):
            out[i, k] = prof.limit(j, side, zcrit)
    return out


def _boot(fit, level, which, nsim, seed, progress):
    draws = bootstrap(fit, lambda f: np.concatenate([sdcor(f), f.beta]), nsim=nsim, seed=seed,
                      progress=progress)
    draws = np.atleast_2d(draws)[:, which]
    return np.column_stack([np.nanquantile(draws, (1 - level) / 2, axis=0),
                            np.nanquantile(draws, (1 + level) / 2, axis=0)])


def confint(fit, parm=None, level: float = 0.95, method: str = "profile", old_names: bool = True,
            nsim: int = 500, seed=None, progress: bool = False) -> pd.DataFrame:
    """Confidence intervals for a fit's parameters (lme4's ``confint.merMod``).

    Rows: the random-effects standard deviations and correlations in
    ``theta``'s order and ``sigma`` (lme4's names: ``.sig01``, ``.sig02``, ...,
    ``.sigma``, or with ``old_names=False`` ``sd_(Intercept)|Subject``,
    ``cor_Days.(Intercept)|Subject``, ..., ``sigma``), then the fixed effects.
    Columns: the lower and upper limits (``"2.5 %"``, ``"97.5 %"``).

    Parameters
    ----------
    fit : LmerFit
    parm : None, str, int or list
        The parameters (default all): names, ``"theta_"`` (the variance
        parameters), ``"beta_"`` (the fixed effects), or 0-based positions
        (R's ``parm`` counts from 1).
    level : float
        Confidence level.
    method : {"profile", "Wald", "boot"}
        ``profile`` (lme4's default): where the signed square root of the
        profiled ML deviance crosses ``-/+ z_{(1+level)/2}`` (a REML fit is
        refitted by ML first, as lme4 does; :func:`mmbook.engine.profile.profile`).
        ``Wald``: ``beta_j -/+ z se_j`` for the fixed effects, missing for the
        variance parameters (as lme4). ``boot``: percentiles of ``nsim``
        parametric-bootstrap refits (:func:`mmbook.engine.bootstrap.bootstrap`).
    old_names : bool
        lme4's ``oldNames``; True (lme4's default) gives ``.sig01``-style names.
    nsim, seed, progress
        For ``method="boot"``.

    Returns
    -------
    DataFrame

    Raises
    ------
    ValueError
        Unknown ``method``; ``level`` outside (0, 1).
    KeyError
        ``parm`` names a parameter the model does not have.
    """
    if getattr(fit, "family", None) is not None:  # a GlmerFit: no sigma, its own profile
        return fit.confint(method=method, level=level)
    check_level(level)
    if not isinstance(method, str) or method.lower() not in _METHODS:
        raise ValueError(f"method must be 'profile', 'Wald' or 'boot', got {method!r}")
    method = _METHODS[method.lower()]
    vnames = param_names(fit, old_names)
    names = vnames + list(fit.fixef.index)
    nvar = len(vnames)
    which = select_parms(parm, names, nvar)
    if method == "Wald":
        ci = _wald(fit, level, which, nvar)
    elif method == "profile":
        ci = _profile(fit, level, which, nvar)
    else:
        ci = _boot(fit, level, which, nsim, seed, progress)
    return pd.DataFrame(ci, index=[names[j] for j in which], columns=ci_columns(level))
