r"""Ordinary least squares, printed the way R's ``summary(lm(...))`` prints it.

The standard linear model is

.. math::

    y = X\beta + e, \qquad e \sim \mathcal{N}(0, \sigma^2 I_n),

with ``X`` the :math:`n \times p` model matrix. Write the thin QR decomposition
:math:`X = QR` (``Q`` with orthonormal columns, ``R`` upper triangular). Then

.. math::

    \hat\beta = R^{-1} Q^\top y, \qquad
    \hat\sigma^2 = \frac{\lVert y - X\hat\beta \rVert^2}{n - p}, \qquad
    \widehat{\operatorname{Var}}(\hat\beta) = \hat\sigma^2 (R^\top R)^{-1}.

Nothing here forms :math:`X^\top X`: the QR route squares no condition number.

When a column of ``X`` is (numerically) a linear combination of the columns
before it, R's ``lm`` leaves it out of the fit and reports its coefficient as
``NA``. :func:`lm` does the same, with R's rule: working left to right, a column
is *aliased* when the part of it not explained by the columns already kept has
norm below ``tol`` (1e-7) times the column's own norm.
"""

from __future__ import annotations

import inspect
import math
import re
from dataclasses import dataclass
from html import escape

import numpy as np
import pandas as pd
from scipy import linalg, stats

from ..rprint import (SIGNIF_LEGEND, coef_matrix_cells, format_c, format_pval, format_real, print_matrix,
                      print_named, zapsmall)

__all__ = ["lm", "LmFit"]

#: R's tolerance for declaring a column of X aliased (``lm(..., tol = 1e-7)``).
ALIAS_TOL = 1e-7


# --------------------------------------------------------------------------
# The fit
# --------------------------------------------------------------------------

@dataclass(frozen=True, repr=False)
class LmFit:
    r"""The result of :func:`lm`: R's ``summary.lm`` as attributes.

    Coefficient-level attributes are ``pandas.Series`` indexed by R's column
    names of ``X`` (``"(Intercept)"``, ``"Days"``, ``"SexMale"``, ``"a:b"``);
    aliased coefficients are ``NaN`` there, as R's ``NA``.

    Attributes
    ----------
    formula : str
        The model formula.
    coef : pandas.Series
        :math:`\hat\beta = R^{-1} Q^\top y`.
    se : pandas.Series
        Standard errors, :math:`\hat\sigma \sqrt{[(R^\top R)^{-1}]_{jj}}`.
    tvalues : pandas.Series
        :math:`\hat\beta_j / \operatorname{se}_j`.
    pvalues : pandas.Series
        Two-sided p-values of the t statistics on ``df_resid`` degrees of
        freedom.
    sigma : float
        Residual standard error :math:`\hat\sigma = \sqrt{\mathrm{RSS}/(n-p)}`.
    df_resid : int
        :math:`n - p`, with ``p`` the rank of ``X``.
    r_squared, adj_r_squared : float
        :math:`R^2 = \mathrm{MSS}/(\mathrm{MSS} + \mathrm{RSS})` and
        :math:`1 - (1 - R^2)(n - d)/(n - p)`, where ``MSS`` is the sum of
        squares of the fitted values about their mean (about zero when the
        model has no intercept) and ``d`` is 1 with an intercept, else 0. ``NaN``
        for an intercept-only model, where R does not print them.
    fvalue : float
        :math:`F = [\mathrm{MSS}/(p - d)] / \hat\sigma^2`, the test of all
        coefficients but the intercept.
    f_df : tuple of int
        ``(p - d, n - p)``.
    f_pvalue : float
        Upper tail probability of ``fvalue``.
    residuals, fitted : pandas.Series
        :math:`y - X\hat\beta` and :math:`X\hat\beta`, indexed like the rows
        used.
    resid_quantiles : pandas.Series
        Min, 1Q, Median, 3Q, Max of the residuals (R's ``quantile`` type 7).
    nobs : int
        Number of rows used.
    vcov : pandas.DataFrame
        :math:`\hat\sigma^2 (R^\top R)^{-1}`; rows and columns of aliased
        coefficients are ``NaN``.
    aliased : pandas.Series of bool
        Which coefficients were left out as linear combinations of others.
    rank : int
        Rank of ``X``: the number of coefficients estimated.
    has_intercept : bool
        Whether ``X`` has an ``(Intercept)`` column.
    n_dropped : int
        Rows dropped for missing values.
    data_name : str
        The name shown for the data in ``call``.

    ``print(fit)`` (or ``fit.summary()``) shows R's ``summary.lm`` layout;
    ``coef_table`` is its coefficients table as a DataFrame.
    """

    formula: str
    data_name: str
    coef: pd.Series
    se: pd.Series
    tvalues: pd.Series
    pvalues: pd.Series
    sigma: float
    df_resid: int
    r_squared: float
    adj_r_squared: float
    fvalue: float
    f_df: tuple
    f_pvalue: float
    residuals: pd.Series
    fitted: pd.Series
    resid_quantiles: pd.Series
    nobs: int
    vcov: pd.DataFrame
    aliased: pd.Series
    rank: int
    has_intercept: bool
    n_dropped: int = 0

    # ------------------------------------------------------------------
    @property
    def coef_table(self) -> pd.DataFrame:
        """The coefficients table: Estimate, Std. Error, t value, Pr(>|t|)."""
        return pd.DataFrame({"Estimate": self.coef, "Std. Error": self.se,
                             "t value": self.tvalues, "Pr(>|t|)": self.pvalues})

    @property
    def call(self) -> str:
        """The call as R would echo it."""
        return f"lm(formula = {self.formula}, data = {self.data_name})"

    def summary(self) -> str:
        """R's ``print(summary(lm(...)))`` as a string (digits = 4)."""
        return _summary_text(self)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        return _summary_html(self)


# --------------------------------------------------------------------------
# Fitting
# --------------------------------------------------------------------------

def _aliased_columns(R: np.ndarray, col_norms: np.ndarray, tol: float) -> np.ndarray:
    """R's left-to-right aliasing rule, applied to the triangular factor.

    Since ``X = QR`` with orthonormal ``Q``, the residual of column ``j`` of
    ``X`` on a set of other columns has the same norm as the residual of
    column ``j`` of ``R`` on the same columns of ``R``: the work is p x p.
    """
    p = R.shape[1]
    aliased = np.zeros(p, dtype=bool)
    kept: list[int] = []
    for j in range(p):  # a loop over columns of X, never over observations
        if col_norms[j] == 0.0:
            aliased[j] = True
            continue
        if kept:
            Qk, _ = np.linalg.qr(R[:, kept])
            r = R[:, j] - Qk @ (Qk.T @ R[:, j])
            r = r - Qk @ (Qk.T @ r)  # re-orthogonalise once
            resid_norm = np.linalg.norm(r)
        else:
            resid_norm = col_norms[j]
        if resid_norm < tol * col_norms[j]:
            aliased[j] = True
        else:
            kept.append(j)
    return aliased


def _ols_qr(y: np.ndarray, X: np.ndarray, tol: float = ALIAS_TOL):
    """Least squares by QR: returns beta (NaN where aliased), the inverse of
    R'R for the kept columns, and the aliasing mask."""
    n, p = X.shape
    col_norms = np.linalg.norm(X, axis=0)
    if p == 0:
        return np.empty(0), np.empty((0, 0)), np.zeros(0, dtype=bool)
    R_full = linalg.qr(X, mode="r", check_finite=False)[0]
    aliased = _aliased_columns(R_full[: min(n, p)], col_norms, tol)
    keep = ~aliased
    beta = np.full(p, np.nan)
    if not keep.any():
        return beta, np.empty((0, 0)), aliased
    Q, R = linalg.qr(X[:, keep], mode="economic", check_finite=False)
    beta[keep] = linalg.solve_triangular(R, Q.T @ y, check_finite=False)
    Rinv = linalg.solve_triangular(R, np.eye(R.shape[0]), check_finite=False)
    return beta, Rinv @ Rinv.T, aliased


def _caller_name(obj) -> str:
    """The name the calling code uses for ``obj`` (R echoes it in 'Call:');
    ``"data"`` when it has none."""
    frame = inspect.currentframe()
    try:
        while frame is not None and frame.f_code.co_filename == __file__:
            frame = frame.f_back  # step out of this module
        if frame is None:
            return "data"
        for scope in (frame.f_locals, frame.f_globals):
            for name, value in scope.items():
                if value is obj and name.isidentifier() and not name.startswith("_"):
                    return name
    finally:
        del frame
    return "data"


def _normalise_formula(formula: str) -> str:
    lhs, sep, rhs = formula.partition("~")
    rhs = " + ".join(t.strip() for t in rhs.split("+"))
    rhs = " - ".join(t.strip() for t in rhs.split("-"))
    rhs = re.sub(r"\s*(?<!\*)\*(?!\*)\s*", " * ", rhs)
    return f"{lhs.strip()} ~ {rhs.strip()}" if sep else formula.strip()


def lm(formula: str, data: pd.DataFrame, *, data_name: str | None = None,
       tol: float = ALIAS_TOL) -> LmFit:
    r"""Fit a linear model by ordinary least squares, as R's ``lm`` does.

    Fits :math:`y = X\beta + e`, :math:`e \sim \mathcal{N}(0, \sigma^2 I)`,
    with :math:`\hat\beta = R^{-1} Q^\top y` from the QR decomposition
    :math:`X = QR`, and reports everything ``summary.lm`` reports.

    Parameters
    ----------
    formula : str
        A model formula such as ``"Reaction ~ Days"`` or ``"y ~ x * g"``;
        factors get R's treatment contrasts and R's column names.
    data : pandas.DataFrame
        The data. Rows with a missing value in a variable of the model are
        dropped, with a ``UserWarning`` saying how many.
    data_name : str, optional
        The name shown in the ``Call:`` line. By default the name the caller
        gave ``data``, as R shows it.
    tol : float, default 1e-7
        A column of ``X`` whose part not explained by the columns to its left
        has norm below ``tol`` times its own norm is aliased: its coefficient
        is ``NaN`` (R's ``NA``) and the fit uses the other columns.

    Returns
    -------
    LmFit
        ``print(fit)`` gives R's summary layout.

    Raises
    ------
    KeyError
        A variable of the formula is not a column of ``data``.
    TypeError
        The response is not numeric.
    ValueError
        No rows are left, or the formula cannot be read.

    Examples
    --------
    >>> import mmbook
    >>> sleep = mmbook.load_sleepstudy()
    >>> fit = mmbook.lm("Reaction ~ Days", sleep)
    >>> round(fit.coef["Days"], 3)
    10.467
    """
    from ..engine.design import model_frame

    if not isinstance(formula, str):
        raise TypeError(f"formula must be a string such as 'y ~ x', not {type(formula).__name__}")
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame, not {type(data).__name__}")
    if data_name is None:
        data_name = _caller_name(data)

    mf = model_frame(formula, data, random=False)
    if mf.formula.random:
        raise ValueError(f"lm() fits fixed effects only; {formula!r} has random-effects terms "
                         "(use mmbook.lmer for those)")
    y = np.asarray(mf.y, dtype=float)
    X = np.asarray(mf.X, dtype=float)
    names = list(mf.xnames)
    n, p = X.shape
    if n == 0:
        raise ValueError("no rows left to fit: every row has a missing value in the model's variables")
    index = mf.frame.index if getattr(mf, "frame", None) is not None else pd.RangeIndex(n)

    beta, XtX_inv, aliased = _ols_qr(y, X, tol)
    keep = ~aliased
    rank = int(keep.sum())
    fitted = X[:, keep] @ beta[keep]
    resid = y - fitted
    df_resid = n - rank
    rss = float(resid @ resid)
    sigma2 = rss / df_resid if df_resid > 0 else np.nan
    sigma = math.sqrt(sigma2) if df_resid > 0 else np.nan

    se = np.full(p, np.nan)
    se[keep] = np.sqrt(np.diag(XtX_inv) * sigma2)
    with np.errstate(divide="ignore", invalid="ignore"):
        tval = beta / se
    pval = 2.0 * stats.t.sf(np.abs(tval), df_resid) if df_resid > 0 else np.full(p, np.nan)

    V = np.full((p, p), np.nan)
    V[np.ix_(keep, keep)] = XtX_inv * sigma2

    has_intercept = "(Intercept)" in names
    if rank != int(has_intercept) and df_resid > 0:
        d = int(has_intercept)
        mss = float(((fitted - fitted.mean()) ** 2).sum()) if has_intercept else float(fitted @ fitted)
        r2 = mss / (mss + rss)
        adj = 1.0 - (1.0 - r2) * ((n - d) / df_resid)
        fval = (mss / (rank - d)) / sigma2
        f_df = (rank - d, df_resid)
        f_p = float(stats.f.sf(fval, *f_df))
    else:  # R prints no R-squared or F for an intercept-only model
        r2 = adj = fval = f_p = np.nan
        f_df = (0, df_resid)

    q = np.quantile(resid, [0.0, 0.25, 0.5, 0.75, 1.0])  # R's type 7
    S = lambda v: pd.Series(v, index=names, dtype=float)  # noqa: E731
    return LmFit(
        formula=_normalise_formula(formula), data_name=data_name,
        coef=S(beta), se=S(se), tvalues=S(tval), pvalues=S(pval),
        sigma=sigma, df_resid=int(df_resid), r_squared=float(r2),
        adj_r_squared=float(adj), fvalue=float(fval), f_df=tuple(int(v) for v in f_df),
        f_pvalue=f_p,
        residuals=pd.Series(resid, index=index, name="residuals"),
        fitted=pd.Series(fitted, index=index, name="fitted"),
        resid_quantiles=pd.Series(q, index=["Min", "1Q", "Median", "3Q", "Max"]),
        nobs=int(n), vcov=pd.DataFrame(V, index=names, columns=names),
        aliased=pd.Series(aliased, index=names), rank=rank,
        has_intercept=has_intercept, n_dropped=int(getattr(mf, "n_dropped", 0)),
    )


def _summary_text(fit: LmFit, digits: int = 4) -> str:
    out = ["Call:", fit.call, ""]
    out.append("Residuals:")
    if fit.df_resid > 5:
        q = zapsmall(fit.resid_quantiles.to_numpy(), digits + 1)
        out += print_named(dict(zip(fit.resid_quantiles.index, q)), digits)
    elif fit.df_resid > 0:
        out += print_named({str(k): v for k, v in fit.residuals.items()}, digits)
    else:
        out.append(f"ALL {fit.nobs} residuals are 0: no residual degrees of freedom!")
    out.append("")
    n_sing = int(fit.aliased.sum())
    if n_sing:
        out.append(f"Coefficients: ({n_sing} not defined because of singularities)")
    else:
        out.append("Coefficients:")
    rows, stars = coef_matrix_cells(fit.coef_table, digits)
    cols = ["Estimate", "Std. Error", "t value", "Pr(>|t|)"] + ([""] if stars else [])
    out += print_matrix(list(fit.coef.index), cols, rows)
    if stars:
        out += ["---", SIGNIF_LEGEND]
    out.append("")
    sigma = format_real([float(f"{fit.sigma:.{digits}g}")], 7)[0] if np.isfinite(fit.sigma) else "NaN"
    out.append(f"Residual standard error: {sigma} on {fit.df_resid} degrees of freedom")
    if fit.n_dropped:
        out.append(f"  ({fit.n_dropped} observation{'s' if fit.n_dropped > 1 else ''} "
                   "deleted due to missingness)")
    if np.isfinite(fit.fvalue):
        out.append(f"Multiple R-squared:  {format_c(fit.r_squared, digits)},\t"
                   f"Adjusted R-squared:  {format_c(fit.adj_r_squared, digits)} ")
        out.append(f"F-statistic: {format_c(fit.fvalue, digits)} on {fit.f_df[0]} and "
                   f"{fit.f_df[1]} DF,  p-value: {format_pval([fit.f_pvalue], digits)[0].strip()}")
    return "\n".join(out) + "\n"


def _summary_html(fit: LmFit, digits: int = 4) -> str:
    rows, stars = coef_matrix_cells(fit.coef_table, digits)
    head = "".join(f"<th>{escape(c)}</th>" for c in
                   ["", "Estimate", "Std. Error", "t value", "Pr(>|t|)"] + ([""] if stars else []))
    body = "".join(
        "<tr><th style='text-align:left'>" + escape(name) + "</th>"
        + "".join(f"<td style='text-align:right'>{escape(c)}</td>" for c in r) + "</tr>"
        for name, r in zip(fit.coef.index, rows))
    q = print_named(dict(fit.resid_quantiles), digits)
    tail = [f"Residual standard error: {format_c(fit.sigma, digits)} on {fit.df_resid} degrees of freedom"]
    if np.isfinite(fit.fvalue):
        tail.append(f"Multiple R-squared: {format_c(fit.r_squared, digits)}, "
                    f"adjusted R-squared: {format_c(fit.adj_r_squared, digits)}")
        tail.append(f"F-statistic: {format_c(fit.fvalue, digits)} on {fit.f_df[0]} and {fit.f_df[1]} DF, "
                    f"p-value: {format_pval([fit.f_pvalue], digits)[0].strip()}")
    n_sing = int(fit.aliased.sum())
    note = f" ({n_sing} not defined because of singularities)" if n_sing else ""
    return (
        "<div class='mmbook-lm'>"
        f"<p><code>{escape(fit.call)}</code></p>"
        f"<p>Residuals:</p><pre>{escape(chr(10).join(q))}</pre>"
        f"<p>Coefficients{escape(note)}:</p>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        + (f"<p><small>{escape(SIGNIF_LEGEND)}</small></p>" if stars else "")
        + "".join(f"<p>{escape(t)}</p>" for t in tail)
        + "</div>"
    )
