"""Predictions and simulated responses from a fitted linear mixed model.

* :func:`predict` - ``offset + X beta`` or ``offset + X beta + Z gamma`` for the
  data or new data (lme4's ``predict.merMod``); new data are checked and
  encoded by :mod:`mmbook.engine.newdata`;
* :func:`simulate` - new responses from the fitted model,
  ``y* = offset + X beta + Z Lambda u* + e*`` with ``u* ~ N(0, sigma^2 I)`` and
  ``e*_i ~ N(0, sigma^2 / w_i)`` for prior weights ``w`` (lme4's ``simulate.merMod``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .newdata import newdata_fixed, newdata_random

__all__ = ["predict", "simulate", "simulate_matrix"]


def predict(fit, newdata: pd.DataFrame | None = None, re_form="all", allow_new_levels: bool = False) -> pd.Series:
    """Predictions from a fit (lme4's ``predict.merMod``).

    Parameters
    ----------
    fit : LmerFit
    newdata : DataFrame, optional
        Rows to predict for; default: the data the model was fitted to (then
        indexed like the fitted values: padded with NaN at rows removed for
        missing values when the fit used ``na_action="exclude"``).
    re_form : "all" or None
        ``"all"`` (lme4's ``re.form = NULL``): conditional predictions
        ``offset + X beta + Z gamma``; ``None`` (lme4's ``re.form = NA``):
        population predictions ``offset + X beta``.
    allow_new_levels : bool
        Levels of a grouping factor not seen in the fit (or missing) get
        random effects of zero (their population prediction) instead of an
        error.

    Returns
    -------
    Series
        NaN for a row of ``newdata`` with a missing value in a variable the
        prediction needs (R's ``na.pass``).

    Raises
    ------
    KeyError, TypeError, ValueError
        See :mod:`mmbook.engine.newdata`: a missing column, a column of
        another kind than at the fit, a factor level the fit never saw, an
        offset given as an array.

    Notes
    -----
    The offset of new data is evaluated on ``newdata``: the formula's
    ``offset()`` terms (as lme4) and an ``offset`` argument given as a column
    or expression (as R's ``predict.lm``; lme4 1.1-31 drops that one).
    """
    if re_form not in ("all", None, "NA", "~0"):
        raise ValueError("re_form must be 'all' (all random effects) or None (fixed effects only)")
    use_re = re_form == "all"
    if newdata is None:
        eta = fit.mu if use_re else fit.mf.X @ fit.beta + fit.offset
        return fit.mf.pad(eta, "predicted")
    if not isinstance(newdata, pd.DataFrame):
        raise TypeError(f"newdata must be a pandas DataFrame, got {type(newdata).__name__}")
    # factor levels, contrasts and transform state (scale, poly, bs) are the fit's
    X, offset = newdata_fixed(fit.mf, newdata)
    eta = X @ fit.beta + offset
    if use_re:
        for t, g in zip(fit.terms, fit.gamma):
            z, pos = newdata_random(fit.mf, t, newdata, allow_new_levels)
            new = pos < 0
            contrib = np.einsum("nq,nq->n", np.where(new[:, None], 0.0, z), g[np.where(new, 0, pos)])
            eta = eta + contrib
    return pd.Series(eta, index=newdata.index, name="predicted")


# -------------------------------------------------------------------------- simulate
def simulate_matrix(fit, nsim: int, rng: np.random.Generator) -> np.ndarray:
    n = fit.nobs
    eta = fit.mf.X @ fit.beta + fit.offset
    Y = np.repeat(eta[:, None], nsim, axis=1)
    for k, t in enumerate(fit.terms):
        u = rng.standard_normal((nsim, t.nlevels, t.q)) * fit.sigma
        gamma = u @ fit.T(k).T  # (nsim, nlevels, q)
        Y += np.einsum("nq,snq->ns", t.z, gamma[:, t.refs, :])
    # prior weights: observation i has residual sd sigma / sqrt(w_i); a row of weight 0 carries no
    # information and is simulated at its conditional mean
    w = fit.weights
    sd = fit.sigma * np.where(w > 0, 1.0 / np.sqrt(np.where(w > 0, w, 1.0)), 0.0)
    Y += sd[:, None] * rng.standard_normal((nsim, n)).T
    return Y


def simulate(fit, nsim: int = 1, seed=None) -> pd.DataFrame:
    """Responses simulated from the fitted model (lme4's ``simulate``).

    Each column is one draw of ``y* = X beta + sum_k Z_k T_k u_k* + e*`` with
    ``u_k* ~ N(0, sigma^2 I)`` and ``e* ~ N(0, sigma^2 I)``, at the estimates.

    Parameters
    ----------
    nsim : int
    seed : int or numpy Generator, optional

    Returns
    -------
    DataFrame with columns ``sim_1``, ..., ``sim_<nsim>``.
    """
    if int(nsim) != nsim or nsim < 1:
        raise ValueError(f"nsim must be a positive integer, got {nsim!r}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    Y = simulate_matrix(fit, int(nsim), rng)
    return pd.DataFrame({f"sim_{i + 1}": fit.mf.pad(Y[:, i], f"sim_{i + 1}") for i in range(int(nsim))})


