"""Estimated marginal means of a linear mixed model and their pairwise comparisons, as emmeans computes them.

The *reference grid* crosses every level of every factor of the fixed part
with every numeric covariate at its mean over the data. The estimated
marginal mean of a level (or a combination of levels) of the factors in
``specs`` is the model's prediction :math:`x'\\hat\\beta` averaged with equal
weights over the grid's other factors, so it is a linear function
:math:`\\ell'\\hat\\beta` with

.. math::  \\mathrm{SE} = \\sqrt{\\ell' V \\ell}, \\qquad
           \\text{CI: } \\ell'\\hat\\beta \\pm t_{1-\\alpha/2,\\,\\nu}\\, \\mathrm{SE},

where ``V`` and the degrees of freedom ``nu`` are Kenward-Roger's (adjusted
``V``, pbkrtest's ``Lb_ddf``) or Satterthwaite's (``vcov(beta)``, lmerTest),
as emmeans chooses for ``lmer`` fits (its ``lmer.df`` option). Pairwise
differences are tested with the same machinery and their p-values adjusted
for the family of comparisons: Tukey's studentized range
(:func:`scipy.stats.studentized_range`), Holm or Bonferroni.

Source: Lenth, emmeans 1.8.4 (``ref_grid``, ``emm_basis.merMod``,
``pairs``, ``summary.emmGrid``); Searle, Speed & Milliken (1980).
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from scipy import stats

from ..engine.design import model_matrix
from .ftests import check_fit
from .kenward_roger import kr_setup, lb_ddf
from .satterthwaite import satterthwaite_1d, satterthwaite_setup

__all__ = ["emmeans", "EMMeans", "PBKRTEST_LIMIT"]

#: emmeans' ``pbkrtest.limit`` and ``lmerTest.limit``: above this many observations its default
#: degrees of freedom are asymptotic (infinite).
PBKRTEST_LIMIT = 3000

_ADJUST = ("tukey", "holm", "bonferroni", "none")


def _default_ddf(fit) -> str:
    """emmeans' default for ``lmer``: Kenward-Roger up to 3000 rows, else asymptotic.

    (For an ML fit emmeans would adjust with a REML refit's covariance; here
    Satterthwaite's method, which is defined for ML fits, is used instead.)
    """
    if fit.nobs > PBKRTEST_LIMIT:
        return "asymptotic"
    return "Kenward-Roger" if fit.REML else "Satterthwaite"


def _check_ddf(ddf) -> str:
    key = str(ddf).strip().lower().replace("_", "-")
    names = {"kenward-roger": "Kenward-Roger", "kr": "Kenward-Roger", "satterthwaite": "Satterthwaite",
             "asymptotic": "asymptotic"}
    if key not in names:
        raise ValueError(f"ddf must be 'Kenward-Roger', 'Satterthwaite' or 'asymptotic'; got {ddf!r}")
    return names[key]


def _variables(fit) -> tuple[dict, dict]:
    """The fixed part's variables: ``{factor: levels}`` and ``{covariate: mean}``."""
    import formulaic

    frame = fit.mf.frame
    spec = fit.mf.x_spec
    variables = sorted(formulaic.Formula(fit.mf.formula.fixed).required_variables, key=str)
    variables = [str(v) for v in variables if str(v) in frame.columns]
    as_factor = set()
    state = getattr(getattr(spec, "spec", spec), "encoder_state", {}) or {}
    for expr, (kind, _) in state.items():
        if str(getattr(kind, "value", "")) == "categorical":
            as_factor |= {str(v) for v in formulaic.Formula(expr).required_variables}
    factors, covariates = {}, {}
    for v in variables:
        col = frame[v]
        numeric = pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)
        if isinstance(col.dtype, pd.CategoricalDtype):
            used = set(col.dropna().unique())
            factors[v] = [c for c in col.cat.categories if c in used]
        elif numeric and v not in as_factor:
            covariates[v] = float(col.mean())
        else:
            factors[v] = sorted(col.dropna().unique().tolist())
    return factors, covariates


def _label(v) -> str:
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)


class EMMeans:
    """Estimated marginal means of a fit (emmeans' ``emmGrid``).

    Use :func:`emmeans` to make one. Attributes: ``table`` (the means),
    ``L`` (their linear functions, one row per mean), ``ddf`` (the method),
    ``specs``.
    """

    def __init__(self, fit, specs, L: np.ndarray, levels: pd.DataFrame, ddf: str, level: float):
        self.fit, self.specs, self.L, self.levels, self.ddf = fit, specs, L, levels, ddf
        self.V = kr_setup(fit).PhiA if ddf == "Kenward-Roger" else fit.vcov.to_numpy()
        self.table = self.summary(level)

    def _df(self, ell: np.ndarray) -> float:
        if self.ddf == "Kenward-Roger":
            return lb_ddf(kr_setup(self.fit), ell)
        if self.ddf == "Satterthwaite":
            return satterthwaite_1d(satterthwaite_setup(self.fit), ell)[2]
        return np.inf

    def _estimates(self, L: np.ndarray):
        est = L @ self.fit.beta
        se = np.sqrt(np.einsum("ka,ab,kb->k", L, self.V, L))
        df = np.array([self._df(ell) for ell in L])
        return est, se, df

    def summary(self, level: float = 0.95) -> pd.DataFrame:
        """The means with ``SE``, ``df`` and ``level`` confidence limits (``lower.CL``, ``upper.CL``)."""
        _check_level(level)
        est, se, df = self._estimates(self.L)
        half = stats.t.ppf(1 - (1 - level) / 2, df) * se
        out = self.levels.copy()
        out["emmean"], out["SE"], out["df"] = est, se, df
        out["lower.CL"], out["upper.CL"] = est - half, est + half
        return out

    def pairs(self, adjust: str = "tukey", level: float = 0.95, confint: bool = False) -> pd.DataFrame:
        """All pairwise differences of the means, as emmeans' ``pairs``.

        Parameters
        ----------
        adjust : {"tukey", "holm", "bonferroni", "none"}
            Multiplicity adjustment of the p-values (and of the intervals:
            Tukey's studentized range for "tukey", Bonferroni's for
            "bonferroni" and "holm" - emmeans has no Holm intervals - and
            none for "none").
        level : float
            Confidence level of the intervals.
        confint : bool
            Add the intervals, as ``summary(pairs(e), infer = TRUE)``. Off
            by default, as in emmeans' ``pairs``: a Tukey quantile is a
            numerical integral (about 0.3 s per distinct df).

        Returns
        -------
        DataFrame
            ``contrast`` ("a1 - a2", first level minus later level, in
            emmeans' order), ``estimate``, ``SE``, ``df``, [``lower.CL``,
            ``upper.CL``], ``t.ratio``, ``p.value``.
        """
        adjust = str(adjust).lower()
        if adjust not in _ADJUST:
            raise ValueError(f"adjust must be one of {', '.join(_ADJUST)}; got {adjust!r}")
        _check_level(level)
        k = len(self.L)
        if k < 2:
            raise ValueError("pairwise comparisons need at least two means")
        names = [" ".join(map(str, row)) for row in self.levels.itertuples(index=False)]
        pairs = list(itertools.combinations(range(k), 2))
        C = np.array([self.L[i] - self.L[j] for i, j in pairs])
        est, se, df = self._estimates(C)
        t = est / se
        m = len(pairs)
        p_raw = 2.0 * stats.t.sf(np.abs(t), df)
        if adjust == "tukey":
            p = stats.studentized_range.sf(np.sqrt(2.0) * np.abs(t), k, df)
        elif adjust == "bonferroni":
            p = np.minimum(1.0, m * p_raw)
        else:
            p = _holm(p_raw) if adjust == "holm" else p_raw
        out = pd.DataFrame({"contrast": [f"{names[i]} - {names[j]}" for i, j in pairs], "estimate": est,
                            "SE": se, "df": df})
        if confint:
            if adjust == "tukey":
                # one quantile per distinct df (to 1e-8: the quantile moves by less than 1e-12)
                uniq, inv = np.unique(np.round(df, 8), return_inverse=True)
                crit = (stats.studentized_range.ppf(level, k, uniq) / np.sqrt(2.0))[inv]
            elif adjust in ("bonferroni", "holm"):
                crit = stats.t.ppf(1 - (1 - level) / (2 * m), df)
            else:
                crit = stats.t.ppf(1 - (1 - level) / 2, df)
            out["lower.CL"], out["upper.CL"] = est - crit * se, est + crit * se
        out["t.ratio"], out["p.value"] = t, p
        return out

    def __repr__(self) -> str:
        return f"<EMMeans of {self.specs} ({self.ddf} df)>\n{self.table.to_string(index=False)}"


def _check_level(level):
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level}")


def _holm(p: np.ndarray) -> np.ndarray:
    """R's ``p.adjust(p, "holm")``."""
    m = len(p)
    order = np.argsort(p, kind="stable")
    adj = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adj
    return out


def emmeans(fit, specs, ddf: str | None = None, level: float = 0.95) -> EMMeans:
    """Estimated marginal means of one or more factors (emmeans' ``emmeans(fit, ~ specs)``).

    Parameters
    ----------
    fit : LmerFit
    specs : str or list of str
        Factor(s) of the fixed part whose means are wanted; with several,
        one mean per combination of their levels.
    ddf : {"Kenward-Roger", "Satterthwaite", "asymptotic"}, optional
        Default as emmeans' for ``lmer`` fits: Kenward-Roger for a REML fit
        with at most :data:`PBKRTEST_LIMIT` rows, asymptotic (``df = inf``)
        above; Satterthwaite for an ML fit (where emmeans would borrow a
        REML refit's adjusted covariance).
    level : float
        Confidence level of the intervals.

    Returns
    -------
    EMMeans
        ``.table``: the factor levels, ``emmean``, ``SE``, ``df``,
        ``lower.CL``, ``upper.CL``; ``.pairs(adjust=...)`` the pairwise
        differences.

    Raises
    ------
    KeyError
        A name in ``specs`` is not a factor of the fixed part.
    ValueError
        The fixed-effects matrix was rank deficient (columns were dropped:
        some means would not be estimable); bad ``ddf`` or ``level``.
    """
    check_fit(fit)
    if getattr(fit.mf, "smooths", None):
        raise NotImplementedError("marginal means are not available for models with smooth terms s(x)")
    specs = [specs] if isinstance(specs, str) else list(specs)
    ddf = _default_ddf(fit) if ddf is None else _check_ddf(ddf)
    _check_level(level)
    if fit.mf.dropped_columns:
        raise ValueError("marginal means of a rank-deficient model (dropped columns: "
                         f"{', '.join(fit.mf.dropped_columns)}) are not all estimable; refit without the "
                         "aliased terms")
    factors, covariates = _variables(fit)
    bad = [s for s in specs if s not in factors]
    if bad:
        raise KeyError(f"{bad[0]!r} is not a factor of the fixed part; its factors are: "
                       f"{', '.join(factors) or 'none'}")
    names = list(factors)
    grid = pd.DataFrame(list(itertools.product(*factors.values())), columns=names)
    for v, mean in covariates.items():
        grid[v] = mean
    X_all, cols = model_matrix(fit.mf.x_spec, grid, "fixed-effects model matrix of the reference grid")
    X = X_all[:, [cols.index(c) for c in fit.mf.xnames]]
    key = grid[specs].apply(lambda r: tuple(r), axis=1)
    # emmeans' order (R's expand.grid): the first factor varies fastest
    combos = [c[::-1] for c in itertools.product(*(factors[s] for s in reversed(specs)))]
    L = np.array([X[(key == c).to_numpy()].mean(axis=0) for c in combos])
    levels = pd.DataFrame([[_label(v) for v in c] for c in combos], columns=specs)
    return EMMeans(fit, specs, L, levels, ddf, level)
