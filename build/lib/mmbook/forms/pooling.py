r"""Complete, no and partial pooling: three ways to estimate per-cluster coefficients.

Observations :math:`i = 1, \dots, n_c` come in clusters :math:`c = 1, \dots, G`,
and within cluster :math:`c` the model is a regression
:math:`y_{ic} = x_{ic}^\top \beta_c + e_{ic}`. The three estimates of
:math:`\beta_c` differ in how much the clusters share:

complete pooling
    one ordinary least-squares fit to all rows, the same coefficients for every
    cluster: :math:`\hat\beta_c = \hat\beta = (X^\top X)^{-1} X^\top y`;
no pooling
    one least-squares fit per cluster, on that cluster's rows only:
    :math:`\hat\beta_c = (X_c^\top X_c)^{-1} X_c^\top y_c`;
partial pooling
    the linear mixed model :math:`y_c = X_c\beta + X_c\gamma_c + e_c`,
    :math:`\gamma_c \sim N(0, \psi)`, whose per-cluster coefficients are
    :math:`\hat\beta + \hat\gamma_c` (lme4's ``coef``), with
    :math:`\hat\gamma_c` the conditional modes.

For the random-intercept model the pull of partial pooling toward the
population has a closed form (:func:`shrinkage_weight`,
:func:`shrinkage_table`): the conditional mode of cluster :math:`c`'s
intercept deviation is a weight :math:`w_c = \tau^2 / (\tau^2 + \sigma^2/n_c)`
times the cluster's own mean residual.

Clusters whose rows cannot identify their own regression (fewer rows than
coefficients, or a column that is constant or collinear within the cluster)
get ``NaN`` no-pooling coefficients and a ``UserWarning`` that names them.
They are not an error: the complete- and partial-pooling estimates exist for
them, and showing that is part of the point.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..engine.design import factor_codes, model_frame
from ..engine.formula import parse_formula
from ..rcompat.lm import ALIAS_TOL, lm
from ..engine.fit import LmerFit
from ..engine.pipeline import lmer

__all__ = ["complete_pooling", "no_pooling", "partial_pooling", "pooling_table",
           "shrinkage_weight", "shrinkage_table"]


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def _fixed_formula(formula: str) -> str:
    """The formula itself, after checking that it has no random-effects terms."""
    if not isinstance(formula, str):
        raise TypeError(f"formula must be a string such as 'y ~ x', got {type(formula).__name__}")
    if "|" in formula:
        raise ValueError(f"{formula!r} has a random-effects term; the pooling functions take the "
                         "fixed formula of one regression (e.g. 'Reaction ~ Days') and a group column")
    return formula


def _check_group(data: pd.DataFrame, group: str) -> None:
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    if group not in data.columns:
        raise KeyError(f"group column {group!r} not found in data; its columns are: "
                       f"{', '.join(map(str, data.columns))}")
    n_missing = int(data[group].isna().sum())
    if n_missing:
        raise ValueError(f"group column {group!r} has {n_missing} missing value"
                         f"{'s' if n_missing > 1 else ''}; drop those rows or give them a cluster")


def _design(formula: str, data: pd.DataFrame, group: str):
    """``y``, ``X``, column names, cluster codes and labels (lme4's level order)."""
    _check_group(data, group)
    mf = model_frame(_fixed_formula(formula), data, random=False)
    codes, levels = factor_codes(data.loc[mf.frame.index, [group]], group)
    return mf.y, mf.X, list(mf.xnames), codes, levels


# --------------------------------------------------------------------------
# the three estimates
# --------------------------------------------------------------------------

def complete_pooling(formula: str, data: pd.DataFrame) -> pd.Series:
    r"""Complete pooling: one least-squares regression for all rows.

    .. math::  \hat\beta = \arg\min_\beta \lVert y - X\beta \rVert^2
               = (X^\top X)^{-1} X^\top y,

    computed by :func:`mmbook.lm` (QR, as R's ``lm``). Every cluster gets
    these coefficients.

    Parameters
    ----------
    formula : str
        A fixed-effects formula such as ``"Reaction ~ Days"``.
    data : pandas.DataFrame

    Returns
    -------
    pandas.Series
        :math:`\hat\beta`, indexed by R's coefficient names.
    """
    return lm(_fixed_formula(formula), data, data_name="data").coef.rename("complete")


def no_pooling(formula: str, data: pd.DataFrame, group: str) -> pd.DataFrame:
    r"""No pooling: a separate least-squares regression in every cluster.

    For each cluster :math:`c`, with :math:`X_c` and :math:`y_c` its rows,

    .. math::  \hat\beta_c = \arg\min_b \lVert y_c - X_c b \rVert^2, \qquad
               X_c = Q_c R_c, \quad R_c \hat\beta_c = Q_c^\top y_c .

    All clusters are solved at once: the rows are stacked into an array of
    shape ``(G, m, p)`` (``m`` the largest cluster size, shorter clusters
    padded with rows of zeros, which leave a least-squares problem
    unchanged), and one batched QR decomposition solves all ``G`` problems.

    Parameters
    ----------
    formula : str
        A fixed-effects formula such as ``"Reaction ~ Days"``; ``X`` is built
        once for all rows, so every cluster has the same columns.
    data : pandas.DataFrame
    group : str
        The column that says which cluster a row belongs to.

    Returns
    -------
    pandas.DataFrame
        One row per cluster (index: cluster labels in lme4's level order),
        one column per coefficient.

    Warns
    -----
    UserWarning
        When a cluster cannot identify its own coefficients: fewer rows than
        coefficients, or a column of :math:`X_c` that is (numerically) a
        linear combination of the columns before it, by R's rule for ``lm``
        (:math:`|R_{c,jj}|` below ``1e-7`` times the column's norm). That
        cluster's coefficients are ``NaN``; the warning names it.

    Raises
    ------
    KeyError
        ``group`` or a variable of the formula is not a column of ``data``.
    ValueError
        ``group`` has missing values, or the formula has a random-effects term.
    """
    y, X, names, codes, levels = _design(formula, data, group)
    n, p = X.shape
    G = len(levels)
    n_c = np.bincount(codes, minlength=G)

    # stack the clusters: row k of cluster c goes to [c, k]
    order = np.argsort(codes, kind="stable")
    start = np.concatenate([[0], np.cumsum(n_c)[:-1]])
    pos = np.arange(n) - np.repeat(start, n_c)
    m = max(int(n_c.max()), p)
    Xs = np.zeros((G, m, p))
    ys = np.zeros((G, m))
    Xs[codes[order], pos] = X[order]
    ys[codes[order], pos] = y[order]

    Q, R = np.linalg.qr(Xs)                                  # (G, m, p), (G, p, p)
    Rdiag = np.abs(np.diagonal(R, axis1=1, axis2=2))         # (G, p)
    colnorm = np.linalg.norm(Xs, axis=1)                     # (G, p)
    ok = (n_c >= p) & np.all(Rdiag > ALIAS_TOL * colnorm, axis=1) & np.all(colnorm > 0, axis=1)

    beta = np.full((G, p), np.nan)
    if ok.any():
        Qty = np.einsum("gmp,gm->gp", Q[ok], ys[ok])
        beta[ok] = np.linalg.solve(R[ok], Qty[..., None])[..., 0]
    if not ok.all():
        bad = [levels[i] for i in np.flatnonzero(~ok)]
        shown = ", ".join(bad[:10]) + (", ..." if len(bad) > 10 else "")
        warnings.warn(f"{len(bad)} cluster{'s' if len(bad) > 1 else ''} of {group!r} ({shown}) "
                      f"cannot identify the {p} coefficients of {formula!r} on {'their' if len(bad) > 1 else 'its'} "
                      "own rows (too few rows, or a column constant or collinear within the cluster); "
                      "their no-pooling coefficients are NaN", UserWarning, stacklevel=2)
    return pd.DataFrame(beta, index=pd.Index(levels, name=group), columns=names)


def partial_pooling(fit: LmerFit, group: str | None = None) -> pd.DataFrame:
    r"""Partial pooling: the mixed model's per-cluster coefficients.

    .. math::  \hat\beta_c = \hat\beta + \hat\gamma_c,

    the fixed effects plus the cluster's conditional modes (zero for a
    coefficient without a random effect), which is lme4's ``coef(fit)``.

    Parameters
    ----------
    fit : LmerFit
        A fit from :func:`mmbook.lmer`.
    group : str, optional
        The grouping factor; may be left out when the model has only one.

    Returns
    -------
    pandas.DataFrame
        One row per cluster, one column per fixed effect.
    """
    if not isinstance(fit, LmerFit):
        raise TypeError(f"fit must be an LmerFit from mmbook.lmer, got {type(fit).__name__}")
    coef = fit.coef
    if group is None:
        if len(coef) != 1:
            raise ValueError(f"the model has several grouping factors ({', '.join(coef)}); say which one")
        group = next(iter(coef))
    if group not in coef:
        raise KeyError(f"{group!r} is not a grouping factor of the model; it has: {', '.join(coef)}")
    return coef[group].copy()


def pooling_table(formula: str, data: pd.DataFrame, group: str, fit: LmerFit | None = None,
                  REML: bool = True) -> pd.DataFrame:
    r"""The three estimates side by side, one row per cluster and method.

    Complete pooling (:func:`complete_pooling`), no pooling
    (:func:`no_pooling`) and partial pooling (:func:`partial_pooling`) of
    the regression ``formula``. The mixed model for partial pooling lets
    every coefficient vary by cluster,

    .. math::  y_c = X_c\beta + X_c\gamma_c + e_c, \qquad
               \gamma_c \sim N(0, \psi),

    i.e. ``y ~ x + (x | group)`` for ``formula = "y ~ x"``, unless a
    different ``fit`` is given.

    Parameters
    ----------
    formula : str
        A fixed-effects formula such as ``"Reaction ~ Days"``.
    data : pandas.DataFrame
    group : str
        The cluster column.
    fit : LmerFit, optional
        A mixed model already fitted to ``data`` with the same fixed effects
        (to avoid a refit, or to use another random-effects structure).
    REML : bool, default True
        Used only when ``fit`` is not given.

    Returns
    -------
    pandas.DataFrame
        Columns ``group``, ``method`` (``"complete"``, ``"none"``,
        ``"partial"``), one column per coefficient, and ``n`` (the cluster's
        rows); sorted by cluster (lme4's level order), then method.
    """
    none = no_pooling(formula, data, group)
    complete = complete_pooling(formula, data)
    if fit is None:
        f = parse_formula(formula)
        rhs = f.fixed.strip()
        fit = lmer(f"{f.response} ~ {rhs} + ({rhs} | {group})", data, REML=REML)
    partial = partial_pooling(fit, group)
    if list(partial.columns) != list(none.columns):
        raise ValueError(f"the mixed model's fixed effects ({', '.join(partial.columns)}) are not the "
                         f"coefficients of {formula!r} ({', '.join(none.columns)})")
    if list(partial.index) != list(none.index):
        raise ValueError(f"the mixed model's clusters differ from the clusters of {group!r} in data")
    _, _, _, codes, _ = _design(formula, data, group)
    n_c = np.bincount(codes, minlength=len(none))
    blocks = {
        "complete": pd.DataFrame(np.tile(complete.to_numpy(), (len(none), 1)), index=none.index,
                                 columns=none.columns),
        "none": none,
        "partial": partial,
    }
    out = pd.concat(blocks, names=["method"]).reset_index()
    out["n"] = np.tile(n_c, 3)
    out["method"] = pd.Categorical(out["method"], categories=list(blocks))
    out[group] = pd.Categorical(out[group], categories=list(none.index))
    out = out.sort_values([group, "method"], kind="stable").reset_index(drop=True)
    return out[[group, "method", *none.columns, "n"]]


# --------------------------------------------------------------------------
# shrinkage in the random-intercept model
# --------------------------------------------------------------------------

def shrinkage_weight(tau2, sigma2, n_c):
    r"""The weight a random-intercept model gives a cluster's own data.

    .. math::  w_c = \frac{\tau^2}{\tau^2 + \sigma^2 / n_c}
                   = \frac{n_c}{n_c + \sigma^2/\tau^2},

    the share of the between-cluster variance :math:`\tau^2` in the variance
    of a cluster mean, :math:`\tau^2 + \sigma^2/n_c`. Equivalently, the
    precision of the cluster's own mean, :math:`n_c/\sigma^2`, as a share of
    that precision plus the prior precision :math:`1/\tau^2`.

    In the model :math:`y_{ic} = x_{ic}^\top\beta + \gamma_c + e_{ic}`,
    :math:`\gamma_c \sim N(0, \tau^2)`, :math:`e_{ic} \sim N(0, \sigma^2)`,
    the conditional mode (= mean) of :math:`\gamma_c` given the data and
    :math:`\beta` is

    .. math::  \hat\gamma_c = w_c \, \bar r_c, \qquad
               \bar r_c = \frac{1}{n_c}\sum_i (y_{ic} - x_{ic}^\top\beta),

    exactly, for balanced or unbalanced clusters (see :func:`shrinkage_table`).

    Parameters
    ----------
    tau2 : float or array_like
        Between-cluster variance :math:`\tau^2 \ge 0`.
    sigma2 : float or array_like
        Residual variance :math:`\sigma^2 > 0`.
    n_c : int or array_like
        Cluster sizes, :math:`n_c > 0`.

    Returns
    -------
    float or ndarray
        :math:`w_c` in :math:`[0, 1)`, broadcast over the inputs.
    """
    tau2, sigma2, n_c = (np.asarray(v, dtype=float) for v in (tau2, sigma2, n_c))
    if np.any(tau2 < 0) or not np.all(np.isfinite(tau2)):
        raise ValueError("tau2 must be finite and >= 0")
    if np.any(sigma2 <= 0) or not np.all(np.isfinite(sigma2)):
        raise ValueError("sigma2 must be finite and > 0")
    if np.any(n_c <= 0) or not np.all(np.isfinite(n_c)):
        raise ValueError("n_c must be finite and > 0")
    w = tau2 / (tau2 + sigma2 / n_c)
    return float(w) if w.ndim == 0 else w


def shrinkage_table(fit: LmerFit) -> pd.DataFrame:
    r"""Each cluster's own deviation, its weight, and the conditional mode.

    For a model whose only random-effects term is a random intercept
    ``(1 | g)``, with any fixed effects, compute per cluster

    .. math::  n_c, \qquad
               \bar r_c = \frac{1}{n_c}\sum_{i \in c} (y_i - x_i^\top\hat\beta), \qquad
               w_c = \frac{\hat\tau^2}{\hat\tau^2 + \hat\sigma^2/n_c}, \qquad
               w_c \bar r_c,

    next to the fit's conditional mode :math:`\hat\gamma_c`. The identity
    :math:`\hat\gamma_c = w_c \bar r_c` holds exactly: given the variance
    parameters, the penalized least-squares solution is the GLS
    :math:`\hat\beta` with the conditional means of the random effects at
    :math:`\hat\beta`, and for a random intercept those are the cluster's mean
    residual shrunk by :math:`w_c`. With an intercept as the only fixed
    effect, :math:`\bar r_c = \bar y_c - \hat\mu` is the cluster's
    no-pooling estimate minus the population mean, so
    :math:`\hat\mu + \hat\gamma_c = w_c \bar y_c + (1 - w_c)\hat\mu`.

    Parameters
    ----------
    fit : LmerFit
        A fit from :func:`mmbook.lmer` with the single random-effects term
        ``(1 | g)``.

    Returns
    -------
    pandas.DataFrame
        Index: the clusters; columns ``n``, ``own_deviation`` (:math:`\bar
        r_c`), ``weight`` (:math:`w_c`), ``shrunk`` (:math:`w_c \bar r_c`)
        and ``ranef`` (:math:`\hat\gamma_c`).
    """
    if not isinstance(fit, LmerFit):
        raise TypeError(f"fit must be an LmerFit from mmbook.lmer, got {type(fit).__name__}")
    if len(fit.terms) != 1 or list(fit.terms[0].cnames) != ["(Intercept)"]:
        raise ValueError("shrinkage_table needs a model whose only random-effects term is (1 | g); "
                         f"this one has {', '.join('(' + t.bar.text + ')' for t in fit.terms)}")
    term = fit.terms[0]
    G = term.nlevels
    n_c = np.bincount(term.refs, minlength=G)
    r = fit.mf.y - fit.mf.X @ fit.beta                      # marginal residuals y - X beta
    rbar = np.bincount(term.refs, weights=r, minlength=G) / n_c
    w = shrinkage_weight(fit.psi(0)[0, 0], fit.sigma ** 2, n_c)
    return pd.DataFrame({"n": n_c, "own_deviation": rbar, "weight": w, "shrunk": w * rbar,
                         "ranef": fit.gamma[0][:, 0]},
                        index=pd.Index(term.levels, name=term.group))
