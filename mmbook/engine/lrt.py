"""Likelihood-ratio tests of nested models, as lme4's ``anova.merMod``."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["anova"]


def anova(*fits, names=None, refit_ml: bool = True) -> pd.DataFrame:
    """Likelihood-ratio tests of nested models (lme4's ``anova.merMod``).

    REML fits are refitted by maximum likelihood first (as lme4 does, with
    its message "refitting model(s) with ML (instead of REML)"), the models
    are ordered by their number of parameters, and each is compared with
    the previous one: ``Chisq = deviance_previous - deviance``, ``Df`` the
    difference in parameters, ``Pr(>Chisq)`` from the chi-square
    distribution.

    Returns
    -------
    DataFrame with columns npar, AIC, BIC, logLik, deviance, Chisq, Df,
    Pr(>Chisq), indexed by model name.
    """
    if len(fits) < 2:
        raise ValueError("anova needs at least two fitted models to compare")
    names = list(names) if names is not None else [f"model{i + 1}" for i in range(len(fits))]
    if len(names) != len(fits):
        raise ValueError("names must have one entry per model")
    nobs = {f.nobs for f in fits}
    if len(nobs) > 1:
        raise ValueError(f"models were not all fitted to the same number of observations ({sorted(nobs)})")
    kinds = {getattr(f, "response_kind", "gaussian") for f in fits}  # GlmerFit: family and approximation
    if len(kinds) > 1:
        raise ValueError(f"models with different likelihoods cannot be compared: {', '.join(sorted(kinds))}")
    ys = [f.mf.y for f in fits]
    if any(not np.array_equal(ys[0], y) for y in ys[1:]):
        raise ValueError("models were not all fitted to the same response")
    ml = [f.refit_ml() if (refit_ml and f.REML) else f for f in fits]
    order = sorted(range(len(ml)), key=lambda i: ml[i].npar)
    rows = []
    prev = None
    for i in order:
        m = ml[i]
        dev = -2.0 * m.loglik
        row = {"npar": m.npar, "AIC": m.aic, "BIC": m.bic, "logLik": m.loglik, "deviance": dev,
               "Chisq": np.nan, "Df": np.nan, "Pr(>Chisq)": np.nan}
        if prev is not None:
            chisq = max(prev[1] - dev, 0.0)
            df = m.npar - prev[0]
            row.update({"Chisq": chisq, "Df": df,
                        "Pr(>Chisq)": stats.chi2.sf(chisq, df) if df > 0 else np.nan})
        rows.append(row)
        prev = (m.npar, dev)
    out = pd.DataFrame(rows, index=[names[i] for i in order])
    out["npar"] = out["npar"].astype(int)
    out["Df"] = out["Df"].astype("Int64")
    return out


