r"""Fixed effects (within), random effects and the hybrid (Mundlak) model for clustered data.

Observations :math:`i = 1, \dots, n_c` come in clusters :math:`c = 1, \dots, G`
(:math:`n = \sum_c n_c` rows), with the model

.. math::  y_{ic} = \alpha_c + x_{ic}^\top \beta + e_{ic}, \qquad
           e_{ic} \sim N(0, \sigma^2),

where :math:`x_{ic}` holds :math:`k` covariates that vary within clusters.
Econometrics calls :math:`\alpha_c` *fixed effects* when they are free
parameters, and *random effects* when :math:`\alpha_c = \beta_0 + \gamma_c`
with :math:`\gamma_c \sim N(0, \tau^2)` drawn independently of :math:`x`.

Writing :math:`\bar x_c` and :math:`\bar y_c` for cluster means, every
covariate splits into a *between* part and a *within* part,

.. math::  x_{ic} = \bar x_c + (x_{ic} - \bar x_c) = \bar x_c + \tilde x_{ic},

(:func:`cluster_means`, :func:`within`, :func:`add_cluster_means`).

The **within estimator** (:func:`within_fit`) removes the :math:`\alpha_c`
by demeaning and regresses :math:`\tilde y` on :math:`\tilde x`; it equals
least squares with one dummy per cluster. The **hybrid** model
``y ~ x_within + x_mean + (1 | g)`` and **Mundlak's** model
``y ~ x + x_mean + (1 | g)`` (Mundlak, 1978) are random-intercept models
fitted with :func:`mmbook.lmer`; their coefficient of :math:`\tilde x` (of
:math:`x` for Mundlak's) equals the within estimate exactly, for any value of
the variance parameters, because :math:`\tilde x` is orthogonal to every
column that is constant within clusters.

No function here loops over clusters: means are sums by ``np.bincount``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import linalg, stats

from ..engine.design import factor_codes

__all__ = ["cluster_means", "within", "add_cluster_means", "within_fit", "WithinFit"]

ALIAS_TOL = 1e-7  # a demeaned column whose QR pivot is below this times its norm has no within variation


# --------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------

def _as_list(columns, what: str) -> list[str]:
    if isinstance(columns, str):
        return [columns]
    try:
        out = list(columns)
    except TypeError:
        raise TypeError(f"{what} must be a column name or a list of column names, "
                        f"got {type(columns).__name__}") from None
    if not out:
        raise ValueError(f"{what} is empty: give at least one column name")
    if not all(isinstance(c, str) for c in out):
        raise TypeError(f"{what} must contain column names (strings), got {out!r}")
    return out


def _check(data, columns: list[str], group: str) -> None:
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    if not isinstance(group, str):
        raise TypeError(f"group must be a column name (a string), got {type(group).__name__}")
    missing = [c for c in [*columns, group] if c not in data.columns]
    if missing:
        raise KeyError(f"column{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))} not in "
                       f"data; its columns are: {', '.join(map(str, data.columns))}")
    if group in columns:
        raise ValueError(f"the group column {group!r} cannot also be a covariate")
    if len(data) == 0:
        raise ValueError("data has no rows")
    n_na = int(data[group].isna().sum())
    if n_na:
        raise ValueError(f"group column {group!r} has {n_na} missing value{'s' if n_na > 1 else ''}; "
                         "drop those rows first")
    for c in columns:
        if not pd.api.types.is_numeric_dtype(data[c]) or pd.api.types.is_bool_dtype(data[c]):
            raise TypeError(f"column {c!r} must be numeric (it is {data[c].dtype}); "
                            "code a categorical covariate as 0/1 columns first")
        n_bad = int((~np.isfinite(data[c].to_numpy(dtype=float))).sum())
        if n_bad:
            raise ValueError(f"column {c!r} has {n_bad} missing or infinite value{'s' if n_bad > 1 else ''}; "
                             "drop those rows first")


def _codes(data: pd.DataFrame, group: str) -> tuple[np.ndarray, list[str]]:
    """Cluster index per row and cluster labels (R's factor order, as lme4)."""
    return factor_codes(data, group)


def _means(values: np.ndarray, codes: np.ndarray, G: int) -> np.ndarray:
    """Cluster means of each column of ``values`` (n, k): a (G, k) array."""
    n_c = np.bincount(codes, minlength=G).astype(float)
    sums = np.stack([np.bincount(codes, weights=v, minlength=G) for v in values.T], axis=1)
    return sums / n_c[:, None]


# --------------------------------------------------------------------------
# between and within parts
# --------------------------------------------------------------------------

def cluster_means(data: pd.DataFrame, columns, group: str, suffix: str = "_mean") -> pd.DataFrame:
    r"""Each row's cluster mean of the given columns.

    .. math::  \bar x_c = \frac{1}{n_c} \sum_{i=1}^{n_c} x_{ic},

    repeated on every row of cluster :math:`c`.

    Parameters
    ----------
    data : pandas.DataFrame
    columns : str or list of str
        Numeric columns.
    group : str
        The cluster column.
    suffix : str, default "_mean"
        Appended to each column name.

    Returns
    -------
    pandas.DataFrame
        Same index as ``data``, one column ``<column><suffix>`` per column.

    Raises
    ------
    KeyError
        A column is not in ``data``.
    TypeError
        A column is not numeric.
    ValueError
        Missing values in a column or in ``group``.
    """
    cols = _as_list(columns, "columns")
    _check(data, cols, group)
    codes, levels = _codes(data, group)
    m = _means(data[cols].to_numpy(dtype=float), codes, len(levels))[codes]
    return pd.DataFrame(m, index=data.index, columns=[c + suffix for c in cols])


def within(data: pd.DataFrame, columns, group: str, suffix: str = "_within") -> pd.DataFrame:
    r"""Each row's deviation from its cluster mean (the *within* transformation).

    .. math::  \tilde x_{ic} = x_{ic} - \bar x_c ,

    which sums to zero in every cluster, so it is orthogonal to any column
    that is constant within clusters.

    Parameters and errors as :func:`cluster_means`; columns are named
    ``<column><suffix>``.
    """
    cols = _as_list(columns, "columns")
    _check(data, cols, group)
    codes, levels = _codes(data, group)
    v = data[cols].to_numpy(dtype=float)
    w = v - _means(v, codes, len(levels))[codes]
    return pd.DataFrame(w, index=data.index, columns=[c + suffix for c in cols])


def add_cluster_means(data: pd.DataFrame, columns, group: str) -> pd.DataFrame:
    r"""A copy of ``data`` with ``<column>_mean`` and ``<column>_within`` added.

    The two parts add back to the column, :math:`x = \bar x_c + \tilde x`,
    ready for the hybrid model ``y ~ x_within + x_mean + (1 | g)`` or
    Mundlak's ``y ~ x + x_mean + (1 | g)``.

    Raises
    ------
    ValueError
        A new column name is already taken in ``data``.
    """
    cols = _as_list(columns, "columns")
    means = cluster_means(data, cols, group)
    dev = within(data, cols, group)
    taken = [c for c in [*means.columns, *dev.columns] if c in data.columns]
    if taken:
        raise ValueError(f"data already has column{'s' if len(taken) > 1 else ''} "
                         f"{', '.join(map(repr, taken))}; rename {'them' if len(taken) > 1 else 'it'} first")
    return pd.concat([data, means, dev], axis=1)


# --------------------------------------------------------------------------
# the within (fixed-effects) estimator
# --------------------------------------------------------------------------

@dataclass
class WithinFit:
    r"""The result of :func:`within_fit`.

    Attributes
    ----------
    y, x, group : str
        The response, covariates and cluster column.
    coef : pandas.Series
        :math:`\hat\beta = (\tilde X^\top \tilde X)^{-1} \tilde X^\top \tilde y`.
    se : pandas.Series
        :math:`\hat\sigma \sqrt{[(\tilde X^\top \tilde X)^{-1}]_{jj}}`.
    tvalues, pvalues : pandas.Series
        :math:`\hat\beta_j / \mathrm{se}_j` and its two-sided p-value on
        ``df_resid`` degrees of freedom.
    sigma : float
        :math:`\hat\sigma = \sqrt{\lVert \tilde y - \tilde X \hat\beta \rVert^2 / (n - G - k)}`.
    df_resid : int
        :math:`n - G - k`: the cluster means used up :math:`G` degrees of freedom.
    alpha : pandas.Series
        Cluster intercepts :math:`\hat\alpha_c = \bar y_c - \bar x_c^\top \hat\beta`,
        indexed by cluster label.
    fitted, residuals : pandas.Series
        :math:`\hat\alpha_c + x_{ic}^\top\hat\beta` and :math:`y - \text{fitted}`,
        indexed as ``data``.
    nobs, ngroups : int
    """

    y: str
    x: list
    group: str
    coef: pd.Series
    se: pd.Series
    tvalues: pd.Series
    pvalues: pd.Series
    sigma: float
    df_resid: int
    alpha: pd.Series
    fitted: pd.Series
    residuals: pd.Series
    nobs: int
    ngroups: int

    @property
    def table(self) -> pd.DataFrame:
        """Estimate, Std. Error, t value, Pr(>|t|), one row per covariate."""
        return pd.DataFrame({"Estimate": self.coef, "Std. Error": self.se,
                             "t value": self.tvalues, "Pr(>|t|)": self.pvalues})

    def __repr__(self) -> str:
        return (f"<WithinFit {self.y} ~ {' + '.join(self.x)} | {self.group}: "
                f"{self.nobs} rows, {self.ngroups} clusters, df {self.df_resid}>")


def within_fit(data: pd.DataFrame, y: str, x, group: str) -> WithinFit:
    r"""The within (fixed-effects) estimator of :math:`\beta`.

    Demean the response and the covariates within clusters and regress one
    on the other by least squares (QR):

    .. math::  \tilde y_{ic} = \tilde x_{ic}^\top \beta + \tilde e_{ic}, \qquad
               \hat\beta = (\tilde X^\top \tilde X)^{-1} \tilde X^\top \tilde y,

    .. math::  \hat\sigma^2 = \frac{\lVert \tilde y - \tilde X\hat\beta \rVert^2}{n - G - k}, \qquad
               \widehat{\mathrm{Var}}(\hat\beta) = \hat\sigma^2 (\tilde X^\top \tilde X)^{-1}.

    This is least squares with an intercept per cluster (one dummy column per
    cluster), and gives the same :math:`\hat\beta`, residuals and standard
    errors. Note the residual degrees of freedom, :math:`n - G - k`: an
    ordinary regression on the demeaned data would use :math:`n - k` and
    understate the standard errors by the factor
    :math:`\sqrt{(n - G - k)/(n - k)}`.

    Parameters
    ----------
    data : pandas.DataFrame
    y : str
        The response column.
    x : str or list of str
        Covariates; each must vary within at least one cluster.
    group : str
        The cluster column.

    Returns
    -------
    WithinFit

    Raises
    ------
    KeyError
        A column is not in ``data``.
    TypeError
        A column is not numeric.
    ValueError
        Missing values; ``y`` also among ``x``; a covariate (or a
        combination of covariates) constant within every cluster, such as a
        cluster-level covariate, which the cluster intercepts absorb; or no
        residual degrees of freedom left.
    """
    if not isinstance(y, str):
        raise TypeError(f"y must be a column name (a string), got {type(y).__name__}")
    xs = _as_list(x, "x")
    if y in xs:
        raise ValueError(f"the response {y!r} cannot also be a covariate")
    if len(set(xs)) < len(xs):
        raise ValueError(f"x names a column more than once: {xs!r}")
    _check(data, [y, *xs], group)
    codes, levels = _codes(data, group)
    G, n, k = len(levels), len(data), len(xs)

    V = data[[y, *xs]].to_numpy(dtype=float)
    means = _means(V, codes, G)                      # (G, 1 + k)
    W = V - means[codes]
    yt, Xt = W[:, 0], W[:, 1:]

    norms = np.linalg.norm(Xt, axis=0)
    scale = np.linalg.norm(V[:, 1:], axis=0)
    R = linalg.qr(Xt, mode="r", check_finite=False)[0][:k]
    flat = (norms <= ALIAS_TOL * np.maximum(scale, 1.0)) | (np.abs(np.diag(R)) <= ALIAS_TOL * np.maximum(norms, 1e-300))
    if flat.any():
        j = int(np.flatnonzero(flat)[0])
        if norms[j] <= ALIAS_TOL * max(scale[j], 1.0):
            raise ValueError(f"covariate {xs[j]!r} does not vary within any cluster of {group!r}: a "
                             "cluster-level covariate is absorbed by the cluster intercepts and has no "
                             "within estimate (use the hybrid model to estimate it)")
        raise ValueError(f"covariate {xs[j]!r} is, within clusters, a linear combination of the "
                         f"covariates before it ({', '.join(map(repr, xs[:j]))}); drop it")
    df = n - G - k
    if df <= 0:
        raise ValueError(f"no residual degrees of freedom: {n} rows, {G} clusters and {k} covariates "
                         f"(n - G - k = {df})")

    Q, R = linalg.qr(Xt, mode="economic", check_finite=False)
    beta = linalg.solve_triangular(R, Q.T @ yt, check_finite=False)
    resid = yt - Xt @ beta
    sigma = float(np.sqrt(resid @ resid / df))
    Rinv = linalg.solve_triangular(R, np.eye(k), check_finite=False)
    se = sigma * np.sqrt(np.sum(Rinv ** 2, axis=1))
    t = beta / se
    p = 2.0 * stats.t.sf(np.abs(t), df)
    alpha = means[:, 0] - means[:, 1:] @ beta
    fitted = alpha[codes] + V[:, 1:] @ beta

    def series(v, name):
        return pd.Series(v, index=list(xs), name=name)

    return WithinFit(
        y=y, x=list(xs), group=group,
        coef=series(beta, "Estimate"), se=series(se, "Std. Error"),
        tvalues=series(t, "t value"), pvalues=series(p, "Pr(>|t|)"),
        sigma=sigma, df_resid=int(df),
        alpha=pd.Series(alpha, index=pd.Index(levels, name=group), name="alpha"),
        fitted=pd.Series(fitted, index=data.index, name="fitted"),
        residuals=pd.Series(V[:, 0] - fitted, index=data.index, name="residuals"),
        nobs=n, ngroups=G,
    )
