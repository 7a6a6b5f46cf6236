"""Predictions and simulated responses from a fitted linear mixed model.

* :func:`predict` - ``X beta`` or ``X beta + Z gamma`` for the data or new data
  (lme4's ``predict.merMod``);
* :func:`simulate` - new responses from the fitted model,
  ``y* = X beta + Z Lambda u* + e*`` with ``u* ~ N(0, sigma^2 I)``, ``e* ~ N(0, sigma^2 I)``
  (lme4's ``simulate.merMod``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .design import factor_codes, model_matrix

__all__ = ["predict", "simulate", "simulate_matrix"]


def predict(fit, newdata: pd.DataFrame | None = None, re_form="all", allow_new_levels: bool = False) -> pd.Series:
    """Predictions from a fit (lme4's ``predict.merMod``).

    Parameters
    ----------
    fit : LmerFit
    newdata : DataFrame, optional
        Rows to predict for; default: the data the model was fitted to.
    re_form : "all" or None
        ``"all"`` (lme4's ``re.form = NULL``): conditional predictions
        ``X beta + Z gamma``; ``None`` (lme4's ``re.form = NA``): population
        predictions ``X beta``.
    allow_new_levels : bool
        Levels of a grouping factor not seen in the fit get random effects
        of zero (their population prediction) instead of an error.
    """
    if re_form not in ("all", None, "NA", "~0"):
        raise ValueError("re_form must be 'all' (all random effects) or None (fixed effects only)")
    use_re = re_form == "all"
    if newdata is None:
        eta = fit.mf.X @ fit.beta
        if use_re:
            eta = eta + fit.Zgamma()
        return pd.Series(eta, index=fit.mf.frame.index, name="predicted")
    if not isinstance(newdata, pd.DataFrame):
        raise TypeError(f"newdata must be a pandas DataFrame, got {type(newdata).__name__}")
    # categorical columns must carry the fitted levels so that the contrasts line up
    X_all, names_all = model_matrix(fit.mf.x_spec, newdata, "fixed-effects model matrix for newdata")
    idx = [names_all.index(nm) for nm in fit.mf.xnames]
    eta = X_all[:, idx] @ fit.beta
    if use_re:
        for t, g in zip(fit.terms, fit.gamma):
            z, _ = model_matrix(t.spec, newdata, f"random-effects model matrix of ({t.bar.text}) for newdata")
            missing = [v for v in t.bar.group_vars if v not in newdata.columns]
            if missing:
                raise KeyError(f"newdata has no column {missing[0]!r} (grouping factor of ({t.bar.text}))")
            labels = _group_labels(newdata, t.group)
            pos = pd.Index(t.levels).get_indexer(labels)
            new = pos < 0
            if new.any() and not allow_new_levels:
                bad = sorted(set(np.asarray(labels)[new]))[:5]
                raise ValueError(f"new levels detected in newdata for {t.group!r}: {', '.join(map(str, bad))}"
                                 " (use allow_new_levels=True to predict them at the population level)")
            contrib = np.einsum("nq,nq->n", z, g[np.where(new, 0, pos)])
            eta = eta + np.where(new, 0.0, contrib)
    return pd.Series(eta, index=newdata.index, name="predicted")


def _group_labels(frame: pd.DataFrame, group: str) -> list[str]:
    codes, labels = factor_codes(frame, group)
    return [labels[c] for c in codes]


# -------------------------------------------------------------------------- simulate
def simulate_matrix(fit, nsim: int, rng: np.random.Generator) -> np.ndarray:
    n = fit.nobs
    eta = fit.mf.X @ fit.beta
    Y = np.repeat(eta[:, None], nsim, axis=1)
    for k, t in enumerate(fit.terms):
        u = rng.standard_normal((nsim, t.nlevels, t.q)) * fit.sigma
        gamma = u @ fit.T(k).T  # (nsim, nlevels, q)
        Y += np.einsum("nq,snq->ns", t.z, gamma[:, t.refs, :])
    Y += fit.sigma * rng.standard_normal((nsim, n)).T
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
    return pd.DataFrame(Y, index=fit.mf.frame.index, columns=[f"sim_{i + 1}" for i in range(int(nsim))])


