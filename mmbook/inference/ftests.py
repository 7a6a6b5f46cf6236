"""t and F tests of the fixed effects with small-sample degrees of freedom, as lmerTest reports them.

* :func:`coef_table` - lmerTest's ``summary(m, ddf = ...)`` coefficient table;
* :func:`anova_table` - lmerTest's ``anova(m, type = ..., ddf = ...)``;
* :func:`contest` - lmerTest's ``contest(m, L, ...)`` for any contrast matrix.

A contrast :math:`L\\beta = r` with one row is tested by
:math:`t = (\\ell'\\hat\\beta - r) / \\mathrm{se}`, with several rows by
:math:`F = (L\\hat\\beta - r)'(L V L')^{-1}(L\\hat\\beta - r) / q`; the
denominator degrees of freedom come from Satterthwaite's approximation
(:mod:`mmbook.inference.satterthwaite`, Kuznetsova et al. 2017) or
Kenward & Roger's (:mod:`mmbook.inference.kenward_roger`, Halekoh &
Hojsgaard 2014), which also replaces :math:`V` by its adjusted version and
scales :math:`F`.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats

from ..engine.fit import LmerFit
from .contrasts import contrasts_type1, contrasts_type2, contrasts_type3, fixed_terms, ginv
from .kenward_roger import kr_adjust, kr_setup, lb_ddf
from .satterthwaite import satterthwaite_1d, satterthwaite_md, satterthwaite_setup

__all__ = ["coef_table", "anova_table", "contest", "check_ddf", "check_fit", "contrast_matrix"]

_DDF = {"satterthwaite": "Satterthwaite", "kenward-roger": "Kenward-Roger", "kenwardroger": "Kenward-Roger",
        "kr": "Kenward-Roger", "lme4": "lme4"}
_F_COLUMNS = ["Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)"]


def check_fit(fit) -> None:
    """Raise TypeError unless ``fit`` is a linear mixed model fitted by :func:`mmbook.lmer`."""
    if not isinstance(fit, LmerFit):
        raise TypeError(f"expected a linear mixed model fitted by mmbook.lmer (an LmerFit), got {type(fit).__name__}")


def check_ddf(ddf, allow_lme4: bool = True) -> str:
    """The canonical name of a ``ddf`` method (lmerTest's spelling; case and ``_``/``-`` are ignored).

    Raises
    ------
    ValueError
        Not one of "Satterthwaite", "Kenward-Roger" (or "lme4" where allowed).
    """
    key = str(ddf).strip().lower().replace("_", "-").replace(" ", "-")
    name = _DDF.get(key)
    allowed = ["Satterthwaite", "Kenward-Roger"] + (["lme4"] if allow_lme4 else [])
    if name is None or name not in allowed:
        raise ValueError(f"ddf must be one of {', '.join(map(repr, allowed))}; got {ddf!r}")
    return name


def contrast_matrix(fit, L) -> np.ndarray:
    """``L`` as a float matrix with one column per fixed effect.

    A pandas Series (index) or DataFrame (columns) is aligned to
    ``fit.fixef``'s names; missing names count as 0.

    Raises
    ------
    ValueError
        Wrong number of columns, unknown coefficient names, non-finite entries.
    """
    names = list(fit.fixef.index)
    p = len(names)
    if isinstance(L, pd.Series):
        L = L.to_frame().T
    if isinstance(L, pd.DataFrame):
        unknown = [c for c in L.columns if c not in names]
        if unknown:
            raise ValueError(f"contrast names {unknown} are not fixed effects; the fixed effects are {names}")
        L = L.reindex(columns=names, fill_value=0.0).to_numpy(dtype=float)
    try:
        L = np.array(L, dtype=float)
    except (TypeError, ValueError):
        raise TypeError("L must be a numeric vector or matrix (or a pandas Series/DataFrame named by "
                        "the fixed effects)") from None
    if L.ndim == 1:
        L = L[None, :]
    if L.ndim != 2 or L.shape[1] != p:
        raise ValueError(f"L must have {p} columns, one per fixed effect ({', '.join(names)}); got shape {L.shape}")
    if not np.all(np.isfinite(L)):
        raise ValueError("L has missing or infinite entries")
    return L


# ------------------------------------------------------------------ t tests
def _t_1d(fit, ell: np.ndarray, ddf: str):
    """Estimate, standard error and df of one contrast (lmerTest's ``contest1D``)."""
    if ddf == "Kenward-Roger":
        kr = kr_setup(fit)
        return float(ell @ fit.beta), float(np.sqrt(ell @ kr.PhiA @ ell)), lb_ddf(kr, ell)
    est, var, df = satterthwaite_1d(satterthwaite_setup(fit), ell)
    return est, float(np.sqrt(var)), df


def coef_table(fit, ddf: str = "Satterthwaite") -> pd.DataFrame:
    """Coefficient table with t tests, as lmerTest's ``summary(m, ddf = ...)$coefficients``.

    Parameters
    ----------
    fit : LmerFit
    ddf : {"Satterthwaite", "Kenward-Roger", "lme4"}
        Satterthwaite's df (ML or REML fits); Kenward-Roger's adjusted
        standard errors and df (REML fits only); or lme4's table, without df
        and p-values.

    Returns
    -------
    DataFrame
        Index: the fixed effects. Columns ``Estimate``, ``Std. Error``,
        ``df``, ``t value``, ``Pr(>|t|)`` (``Estimate``, ``Std. Error``,
        ``t value`` for "lme4"); ``Pr(>|t|) = 2 P(T_df > |t|)``.

    Raises
    ------
    ValueError
        Unknown ``ddf``; Kenward-Roger for an ML fit or a fit too large for it.
    """
    check_fit(fit)
    ddf = check_ddf(ddf)
    names = list(fit.fixef.index)
    se = fit.stderror.to_numpy()
    if ddf == "lme4":
        return pd.DataFrame({"Estimate": fit.beta, "Std. Error": se, "t value": fit.beta / se}, index=names)
    rows = [_t_1d(fit, e, ddf) for e in np.eye(len(names))]
    est, se, df = (np.array(v, dtype=float) for v in zip(*rows)) if rows else (np.zeros(0),) * 3
    t = est / se
    out = pd.DataFrame({"Estimate": est, "Std. Error": se, "df": df, "t value": t,
                        "Pr(>|t|)": 2.0 * stats.t.sf(np.abs(t), df)}, index=names)
    out.attrs["method"] = f"t-tests use {ddf}'s method"
    return out


# ------------------------------------------------------------------ F tests
def _f_row(fit, L: np.ndarray, ddf: str, rhs) -> dict:
    """One F test of ``L beta = rhs`` (lmerTest's ``contestMD``), as a row of an anova table."""
    nan = dict.fromkeys(_F_COLUMNS, np.nan)
    if L.shape[0] == 0:
        return nan
    rhs = np.broadcast_to(np.asarray(rhs, dtype=float), (L.shape[0],))
    sigma2 = fit.sigma ** 2
    if ddf == "Kenward-Roger":
        kr = kr_setup(fit)
        if np.linalg.matrix_rank(L) < L.shape[0] and np.any(rhs != 0):
            warnings.warn("Contrast is rank deficient and test may be affected", UserWarning, stacklevel=4)
        betaH = 0.0 if np.all(rhs == 0) else ginv(L) @ rhs
        res = kr_adjust(kr, L, fit.beta, betaH)
        F, q, df2 = res["Fstat"], res["ndf"], res["ddf"]
        ms = res["FstatU"] * sigma2
    else:
        setup = satterthwaite_setup(fit)
        F, q, df2 = satterthwaite_md(setup, L, rhs)
        if q == 0:
            return nan
        ms = F * sigma2
    return {"Sum Sq": ms * q, "Mean Sq": ms, "NumDF": q, "DenDF": df2, "F value": F,
            "Pr(>F)": float(stats.f.sf(F, q, df2))}


def _anova_lme4(fit) -> pd.DataFrame:
    """lme4's one-model ``anova``: sequential sums of squares from ``R_X' beta`` (no df, no p-values)."""
    ts = fixed_terms(fit)
    ss_col = (fit.solution.RX.T @ fit.beta) ** 2
    rows = {}
    for t in ts.terms:
        if len(t.columns):
            ss = float(ss_col[t.columns].sum())
            k = len(t.columns)
            rows[t.label] = {"npar": k, "Sum Sq": ss, "Mean Sq": ss / k, "F value": ss / k / fit.sigma ** 2}
    out = pd.DataFrame.from_dict(rows, orient="index", columns=["npar", "Sum Sq", "Mean Sq", "F value"])
    out.attrs["heading"] = "Analysis of Variance Table"
    return out


_TYPES = {"1": "1", "i": "1", "2": "2", "ii": "2", "3": "3", "iii": "3"}


def anova_table(fit, type=3, ddf: str = "Satterthwaite") -> pd.DataFrame:
    """F tests of the fixed-effect terms, as lmerTest's ``anova(m, type = ..., ddf = ...)``.

    Parameters
    ----------
    fit : LmerFit
    type : {3, 2, 1} or "III", "II", "I"
        Which hypotheses (see :mod:`mmbook.inference.contrasts`): 3 tests
        each term as SAS's type III does (lmerTest's default), 2 adjusts each
        term for all terms that do not contain it, 1 is sequential.
    ddf : {"Satterthwaite", "Kenward-Roger", "lme4"}
        "lme4" gives lme4's one-model table (sequential sums of squares,
        no df or p-values) whatever ``type``.

    Returns
    -------
    DataFrame
        One row per term (R's labels): ``Sum Sq``, ``Mean Sq``, ``NumDF``,
        ``DenDF``, ``F value``, ``Pr(>F)``, where ``Mean Sq = F sigma^2``
        (for Kenward-Roger, the unscaled F) and ``Sum Sq = NumDF Mean Sq``.
        ``attrs["heading"]`` names the type and method;
        ``attrs["hypotheses"]`` holds each term's contrast matrix.

    Raises
    ------
    ValueError
        Unknown ``type`` or ``ddf``; Kenward-Roger for an ML fit.
    """
    check_fit(fit)
    key = _TYPES.get(str(type).strip().lower())
    if key is None:
        raise ValueError(f"type must be 1, 2 or 3 (or 'I', 'II', 'III'); got {type!r}")
    ddf = check_ddf(ddf)
    if ddf == "lme4":
        return _anova_lme4(fit)
    ts = fixed_terms(fit)
    hyp = {"1": contrasts_type1, "2": contrasts_type2, "3": contrasts_type3}[key](ts)
    rows = {lab: _f_row(fit, L, ddf, 0.0) for lab, L in hyp.items()}
    # as lmerTest: terms without a testable hypothesis (all columns aliased) come last, as NaN rows
    rows = dict(sorted(rows.items(), key=lambda kv: bool(np.isnan(kv[1]["NumDF"]))))
    out = pd.DataFrame.from_dict(rows, orient="index", columns=_F_COLUMNS)
    if len(out):
        out["NumDF"] = out["NumDF"].astype("Int64")
    out.attrs["heading"] = f"Type {'I' * int(key)} Analysis of Variance Table with {ddf}'s method"
    out.attrs["hypotheses"] = hyp
    return out


def contest(fit, L, rhs=0.0, joint: bool = True, confint: bool = True, level: float = 0.95,
            ddf: str = "Satterthwaite") -> pd.DataFrame:
    """Test the contrasts ``L beta = rhs``, as lmerTest's ``contest``.

    Parameters
    ----------
    fit : LmerFit
    L : array_like, shape (p,) or (k, p), or a pandas Series / DataFrame
        Contrast(s), one column per fixed effect (a Series or DataFrame is
        aligned by the fixed effects' names).
    rhs : float or array_like, shape (k,)
        Right-hand side (default 0).
    joint : bool
        One F test of all rows together (lmerTest's ``contestMD``), or a t
        test per row (``contest1D``).
    confint, level : bool, float
        With ``joint=False``: add the ``level`` confidence interval of each
        row (columns ``lower``, ``upper``).
    ddf : {"Satterthwaite", "Kenward-Roger"}

    Returns
    -------
    DataFrame
        ``joint=True``: one row with ``Sum Sq``, ``Mean Sq``, ``NumDF``,
        ``DenDF``, ``F value``, ``Pr(>F)``. ``joint=False``: one row per
        contrast with ``Estimate``, ``Std. Error``, ``df``, ``t value``,
        [``lower``, ``upper``], ``Pr(>|t|)``; the estimate is ``l' beta``
        and ``t = (l' beta - rhs) / se``.

    Raises
    ------
    ValueError
        Malformed ``L`` or ``rhs``, a ``level`` outside (0, 1), unknown ``ddf``.
    """
    check_fit(fit)
    ddf = check_ddf(ddf, allow_lme4=False)
    index = list(L.index) if isinstance(L, pd.DataFrame) else None
    L = contrast_matrix(fit, L)
    rhs = np.asarray(rhs, dtype=float)
    if rhs.ndim > 1 or (rhs.ndim == 1 and rhs.size not in (1, L.shape[0])):
        raise ValueError(f"rhs must be a number or have one value per row of L ({L.shape[0]})")
    rhs = np.broadcast_to(rhs.reshape(-1) if rhs.ndim else rhs, (L.shape[0],))
    if joint:
        return pd.DataFrame([_f_row(fit, L, ddf, rhs)], columns=_F_COLUMNS)
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level}")
    rows = []
    for ell, r in zip(L, rhs):
        est, se, df = _t_1d(fit, ell, ddf)
        t = (est - r) / se
        row = {"Estimate": est, "Std. Error": se, "df": df, "t value": t}
        if confint:
            half = stats.t.ppf(1 - (1 - level) / 2, df) * se
            row.update(lower=est - half, upper=est + half)
        row["Pr(>|t|)"] = float(2.0 * stats.t.sf(abs(t), df))
        rows.append(row)
    return pd.DataFrame(rows, index=index)
