"""Tests about a fit's terms, as lme4's ``anova.merMod`` and ``drop1.merMod``.

* :func:`anova` of several models: likelihood-ratio tests of nested models;
  of one model: the sequential F table of its fixed-effects terms;
* :func:`drop1`: each fixed-effects term dropped in turn, compared by AIC and
  a likelihood-ratio test.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from scipy import stats

from .design import r_column_name
from .update import fixed_terms, term_key, update

__all__ = ["anova", "drop1", "fixed_assign"]


def fixed_assign(fit) -> tuple[list[str], np.ndarray]:
    """The fixed-effects terms and the term of each column of ``X`` (R's ``attr(X, "assign")``).

    Returns
    -------
    labels : list of str
        R's term labels, ``"(Intercept)"`` first when there is one.
    assign : ndarray of int, shape (p,)
        For each column of ``X`` (rank-deficient columns dropped), the
        position of its term in ``labels``.
    """
    spec = fit.mf.x_spec
    smooth_cols = {nm: ms.spec.label for ms in getattr(spec, "smooths", []) for nm in ms.fixed_names}
    spec = getattr(spec, "inner", spec)  # with smooths: the parametric part's spec, then each smooth's columns
    formula = fit.call.args["formula"] if getattr(fit, "call", None) is not None else fit.formula
    by_key = {key: label for label, key, _ in fixed_terms(formula)}
    labels, col_term = [], {}
    inner = getattr(spec, "spec", spec)  # a MatrixSpec wraps formulaic's ModelSpec, with R's column names
    if hasattr(inner, "term_indices"):
        names = list(spec.column_names) if inner is not spec else [r_column_name(c) for c in spec.column_names]
        for term, cols in inner.term_indices.items():
            if term.degree == 0:
                label = "(Intercept)"
            else:
                label = by_key.get(term_key(term.factors), str(term).replace(" ** ", "^"))
            labels.append(label)
            for c in cols:
                col_term[names[c]] = len(labels) - 1
    else:  # an intercept and numeric columns, one term each
        for name in spec.column_names:
            labels.append(name)
            col_term[name] = len(labels) - 1
    for name, label in smooth_cols.items():  # a smooth's unpenalized (linear) column: a term of its own
        if label not in labels:
            labels.append(label)
        col_term[name] = labels.index(label)
    assign = np.array([col_term[c] for c in fit.mf.xnames], dtype=int)
    used = sorted(set(assign))
    remap = {old: new for new, old in enumerate(used)}
    return [labels[i] for i in used], np.array([remap[a] for a in assign], dtype=int)


def _anova_terms(fit) -> pd.DataFrame:
    """lme4's ``anova(fit)`` for one model: the sequential F table of the fixed-effects terms.

    With ``R_X`` the upper-triangular factor of ``X'V^{-1}X / sigma^2``
    (lme4's ``getME(fit, "RX")``), the components ``(R_X beta)_j^2`` are the
    sequential sums of squares of the columns; a term's ``Sum Sq`` is the sum
    over its columns, ``Mean Sq = Sum Sq / npar`` and ``F value = Mean Sq / sigma^2``.
    """
    labels, assign = fixed_assign(fit)
    ss_col = (fit.solution.RX.T @ fit.beta) ** 2
    p = len(labels)
    ss = np.bincount(assign, weights=ss_col, minlength=p)
    df = np.bincount(assign, minlength=p)
    ms = ss / np.maximum(df, 1)
    out = pd.DataFrame({"npar": df.astype(int), "Sum Sq": ss, "Mean Sq": ms, "F value": ms / fit.sigma ** 2},
                       index=labels)
    return out.drop(index="(Intercept)", errors="ignore")


def anova(*fits, names=None, refit_ml: bool = True) -> pd.DataFrame:
    """lme4's ``anova``: the F table of one model, or likelihood-ratio tests of several.

    One model: the sequential ("type I") F table of its fixed-effects terms,
    columns ``npar``, ``Sum Sq``, ``Mean Sq``, ``F value`` (no denominator
    degrees of freedom or p-values, as lme4).

    Several models: REML fits are refitted by maximum likelihood first (as
    lme4 does, with its message "refitting model(s) with ML (instead of
    REML)"), the models are ordered by their number of parameters, and each
    is compared with the previous one: ``Chisq = deviance_previous -
    deviance``, ``Df`` the difference in parameters, ``Pr(>Chisq)`` from the
    chi-square distribution.

    Returns
    -------
    DataFrame; for several models with columns npar, AIC, BIC, logLik,
    deviance, Chisq, Df, Pr(>Chisq), indexed by model name.

    Raises
    ------
    ValueError
        No model; models fitted to different data.
    """
    if not fits:
        raise ValueError("anova needs a fitted model (one for its F table, several to compare them)")
    if len(fits) == 1:
        return _anova_terms(fits[0])
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


def _drop_scope(terms) -> list[str]:
    """R's ``drop.scope``: the terms not contained in another term (marginality)."""
    return [label for label, key, _ in terms if not any(key < other for _, other, _ in terms)]


def drop1(fit, scope=None, test: str = "none", k: float = 2.0) -> pd.DataFrame:
    """Drop each fixed-effects term in turn (lme4's ``drop1.merMod``).

    Each model without one term is fitted, and every model is compared by
    its maximum-likelihood AIC, ``-2 log L + k npar`` (lme4's ``extractAIC``
    refits REML fits by ML; here the smaller models are fitted by ML
    directly, which reaches the same optimum).

    Parameters
    ----------
    fit : LmerFit
    scope : list of str, optional
        Term labels to drop (default: every term that is not part of a
        higher-order term, R's ``drop.scope``).
    test : {"none", "Chisq"}
        ``"Chisq"`` adds the likelihood-ratio statistic ``LRT`` (the rise in
        deviance) and its p-value ``Pr(Chi)`` on ``npar`` degrees of freedom.
    k : float
        The AIC's penalty per parameter.

    Returns
    -------
    DataFrame indexed by ``"<none>"`` and the dropped terms, columns ``npar``
    (parameters dropped), ``AIC`` and, with ``test="Chisq"``, ``LRT`` and
    ``Pr(Chi)``.

    Raises
    ------
    ValueError
        A term of ``scope`` that the model does not have; an unknown
        ``test``; a smaller model fitted to fewer rows (missing values).
    """
    if test not in ("none", "Chisq"):
        raise ValueError(f"test must be 'none' or 'Chisq', got {test!r}")
    formula = fit.call.args["formula"] if getattr(fit, "call", None) is not None else fit.formula
    terms = fixed_terms(formula)
    labels = [t[0] for t in terms]
    if scope is None:  # smooth terms s(x) are not fixed-effects terms: not dropped unless named
        scope = [s for s in _drop_scope(terms) if not re.match(r"s\s*\(", s)]
    else:
        scope = [scope] if isinstance(scope, str) else list(scope)
        bad = [s for s in scope if s not in labels]
        if bad:
            raise ValueError(f"scope term {bad[0]!r} is not a fixed-effects term of the model "
                             f"(its terms: {', '.join(labels)})")
    full = fit.refit_ml() if fit.REML else fit
    rows = [(full.npar, -2 * full.loglik)]
    for label in scope:
        m = update(fit, f". ~ . - {label}", REML=False)
        if m.nobs != full.nobs:
            raise ValueError(f"number of rows in use has changed without {label!r} ({m.nobs} instead of "
                             f"{full.nobs}): remove the rows with missing values first")
        rows.append((m.npar, -2 * m.loglik))
    npar = np.array([r[0] for r in rows], dtype=float)
    dev = np.array([r[1] for r in rows])
    out = pd.DataFrame({"npar": pd.array([pd.NA] + [int(npar[0] - v) for v in npar[1:]], dtype="Int64"),
                        "AIC": dev + k * npar}, index=["<none>", *scope])
    if test == "Chisq":
        lrt = dev - dev[0]
        df = npar[0] - npar
        out["LRT"] = np.concatenate([[np.nan], lrt[1:]])
        out["Pr(Chi)"] = np.concatenate([[np.nan], stats.chi2.sf(lrt[1:], df[1:])])
    return out
