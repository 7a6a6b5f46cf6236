"""Tidy frames of a fit for reporting, as broom.mixed's ``tidy`` and ``glance`` for ``merMod``.

* :func:`tidy` - one row per estimate: fixed effects (with standard error,
  t statistic and, optionally, confidence limits), variance parameters
  (``sd__(Intercept)``, ``cor__(Intercept).Days``, ``sd__Observation``),
  conditional modes (``ran_vals``) and per-level coefficients (``ran_coefs``);
* :func:`glance` - one row of statistics of the whole fit.

Column names and row order follow broom.mixed 0.2.9 (``tidy.merMod``,
``glance.merMod``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .intervals import confint

__all__ = ["tidy", "glance"]

_EFFECTS = ("fixed", "ran_pars", "ran_vals", "ran_coefs")


def _fixed(fit, conf_int, conf_level, conf_method):
    est = fit.fixef.to_numpy()
    se = fit.stderror.to_numpy()
    df = pd.DataFrame({"effect": "fixed", "group": None, "term": list(fit.fixef.index), "estimate": est,
                       "std.error": se, "statistic": est / se})
    if conf_int:
        ci = confint(fit, method=conf_method, level=conf_level, parm="beta_")
        df["conf.low"], df["conf.high"] = ci.iloc[:, 0].to_numpy(), ci.iloc[:, 1].to_numpy()
    return df


def _ran_pars(fit, scale, conf_int, conf_level, conf_method):
    vc = fit.varcorr
    prefix = ("sd", "cor") if scale == "sdcor" else ("var", "cov")
    value = "sdcor" if scale == "sdcor" else "vcov"
    groups = list(dict.fromkeys(vc["grp"][vc["grp"] != "Residual"]))
    rows = []
    for t, grp in zip(fit.terms, groups):  # one group label per term, in the terms' order
        sub = vc[vc["grp"] == grp]
        if t.structure == "identity":  # a smooth: one variance for all its random effects
            rows.append((grp, f"{prefix[0]}__{sub['var1'].iloc[0]}", float(sub[value].iloc[0])))
            continue
        cols, rws = np.triu_indices(t.q)  # lower triangle, column-major (theta's order)
        for r, c in zip(rws, cols):
            if r == c:
                hit = sub[(sub["var1"] == t.cnames[r]) & sub["var2"].isna()]
                term = f"{prefix[0]}__{t.cnames[r]}"
            else:
                hit = sub[(sub["var1"] == t.cnames[c]) & (sub["var2"] == t.cnames[r])]
                term = f"{prefix[1]}__{t.cnames[c]}.{t.cnames[r]}"
            rows.append((grp, term, float(hit[value].iloc[0])))
    if fit.mf.residual is not None:  # the residual correlation parameter (phi or rho), before sigma
        rows.append(("Residual", fit.mf.residual.parameter, float(fit.correlation)))
    res = vc[vc["grp"] == "Residual"].iloc[0]
    rows.append(("Residual", f"{prefix[0]}__Observation", float(res[value])))
    df = pd.DataFrame(rows, columns=["group", "term", "estimate"])
    df.insert(0, "effect", "ran_pars")
    df["std.error"] = np.nan
    df["statistic"] = np.nan
    if conf_int:
        ci = confint(fit, method=conf_method, level=conf_level, parm="theta_").to_numpy()
        if scale != "sdcor":  # limits of variances are the squares of those of the sds; none for covariances
            sd_row = df["term"].str.startswith("var__").to_numpy()
            ci = np.where(sd_row[:, None], ci ** 2, np.nan)
        df["conf.low"], df["conf.high"] = ci[:, 0], ci[:, 1]
    return df


def _ran_long(fit, what, conf_int, conf_level):
    frames = fit.ranef if what == "ran_vals" else fit.coef
    out = []
    for group, re in frames.items():
        sd = None
        if what == "ran_vals":
            cv = fit.ranef_condvar[group]
            blocks = cv if isinstance(cv, list) else [cv]
            sd = np.concatenate([np.sqrt(np.diagonal(b, axis1=1, axis2=2)) for b in blocks], axis=1)
        for j, term in enumerate(re.columns):
            df = pd.DataFrame({"effect": what, "group": group, "level": [str(v) for v in re.index],
                               "term": term, "estimate": re[term].to_numpy()})
            if sd is not None:
                df["std.error"] = sd[:, j]
            out.append(df)
    df = pd.concat(out, ignore_index=True)
    if conf_int and what == "ran_vals":
        z = stats.norm.ppf((1 + conf_level) / 2)
        df["conf.low"] = df["estimate"] - z * df["std.error"]
        df["conf.high"] = df["estimate"] + z * df["std.error"]
    elif conf_int:
        df["conf.low"] = np.nan
        df["conf.high"] = np.nan
    return df


def tidy(fit, effects=("ran_pars", "fixed"), scales=None, conf_int: bool = False, conf_level: float = 0.95,
         conf_method: str = "Wald") -> pd.DataFrame:
    """A fit's estimates as a tidy frame (broom.mixed's ``tidy.merMod``).

    Parameters
    ----------
    fit : LmerFit
    effects : str or sequence of {"fixed", "ran_pars", "ran_vals", "ran_coefs"}
        ``fixed``: ``beta`` with ``std.error`` and ``statistic = estimate /
        std.error`` (lme4's ``coef(summary(fit))``); ``ran_pars``: the
        variance parameters, named ``sd__<column>``, ``cor__<column>.<column>``
        and, for the residual, ``sd__Observation``; ``ran_vals``: the
        conditional modes with their conditional standard deviations;
        ``ran_coefs``: ``beta + b`` per level. Rows come in the order
        fixed, ran_pars, ran_vals, ran_coefs.
    scales : sequence, optional
        One entry per effect; for ``ran_pars``, ``"sdcor"`` (default) or
        ``"vcov"`` (``var__``/``cov__`` rows); other entries are ignored
        (broom.mixed's ``scales``, e.g. ``["vcov", None]``).
    conf_int : bool
        Add ``conf.low`` and ``conf.high``.
    conf_level : float
    conf_method : {"Wald", "profile", "boot"}
        For fixed effects and variance parameters (see
        :func:`mmbook.engine.intervals.confint`; Wald limits of variance
        parameters are missing, as in lme4). Intervals of ``ran_vals`` are
        always Wald; ``ran_coefs`` have none.

    Returns
    -------
    DataFrame with columns ``effect``, ``group``, ``level`` (ran_vals,
    ran_coefs), ``term``, ``estimate``, ``std.error``, ``statistic``,
    ``conf.low``, ``conf.high`` as present.

    Raises
    ------
    ValueError
        An unknown effect or scale; ``scales`` of another length than
        ``effects``.
    """
    effects = [effects] if isinstance(effects, str) else list(effects)
    unknown = [e for e in effects if e not in _EFFECTS]
    if unknown:
        raise ValueError(f"unknown effect {unknown[0]!r}: use {', '.join(map(repr, _EFFECTS))}")
    if scales is not None and len(scales) != len(effects):
        raise ValueError("scales needs one entry (or None) per effect")
    scale = "sdcor"
    if scales is not None and "ran_pars" in effects:
        scale = scales[effects.index("ran_pars")] or "sdcor"
        if scale not in ("sdcor", "vcov"):
            raise ValueError(f"unrecognized ran_pars scale {scale!r}: use 'sdcor' or 'vcov'")
    parts = []
    if "fixed" in effects:
        parts.append(_fixed(fit, conf_int, conf_level, conf_method))
    if "ran_pars" in effects:
        parts.append(_ran_pars(fit, scale, conf_int, conf_level, conf_method))
    for what in ("ran_vals", "ran_coefs"):
        if what in effects:
            parts.append(_ran_long(fit, what, conf_int, conf_level))
    df = pd.concat(parts, ignore_index=True)
    if effects == ["fixed"]:  # as broom.mixed: no group column without random-effects rows
        df = df.drop(columns="group")
    order = ["effect", "group", "level", "term", "estimate", "std.error", "statistic", "conf.low", "conf.high"]
    return df[[c for c in order if c in df.columns]]


def glance(fit) -> pd.DataFrame:
    """One row of statistics of a fit (broom.mixed's ``glance.merMod``).

    Columns: ``nobs``, ``sigma``, ``logLik``, ``AIC``, ``BIC``, then
    ``REMLcrit`` (REML fits) or ``deviance`` (ML fits), and ``df.residual``
    (``nobs`` minus the number of parameters).
    """
    crit = ("REMLcrit", fit.REMLcrit) if fit.REML else ("deviance", fit.objective)
    return pd.DataFrame([{"nobs": fit.nobs, "sigma": fit.sigma, "logLik": fit.loglik, "AIC": fit.aic,
                          "BIC": fit.bic, crit[0]: crit[1], "df.residual": fit.df_residual}])
