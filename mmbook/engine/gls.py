"""Generalized least squares with correlated residuals (nlme's ``gls``).

The model has no random effects, only correlated residuals within clusters:

.. math:: y = X\\beta + e, \\qquad e \\sim N(0, \\sigma^2 R(\\phi)),

with ``R`` block diagonal (AR(1) or compound symmetry,
:mod:`mmbook.engine.residual`). With the whitening matrix ``W`` of ``R``
(``W'W = R^{-1}``) the model for ``W y`` is ordinary least squares; for a
given ``phi``, ``beta``, ``sigma`` and the criterion follow from the QR
decomposition of ``W X``:

.. math::

    -2\\ell_R(\\phi) = \\log|R| + \\log|R_X|^2 + (n - p)\\left(1 + \\log\\frac{2\\pi r^2}{n - p}\\right),
    \\qquad
    -2\\ell(\\phi) = \\log|R| + n\\left(1 + \\log\\frac{2\\pi r^2}{n}\\right),

``r^2 = ||W y - W X \\hat\\beta||^2``: nlme's REML and ML log-likelihoods of
``gls`` (the same constants as lme4's). ``phi`` (on nlme's unconstrained
scale) is found by a grid search and Brent's method.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar

from .design import ModelFrame, model_frame
from .formula import parse_formula
from .residual import ResidualCorrelation, parse_residual, residual_correlation

__all__ = ["gls", "GlsFit", "drop_incomplete", "rows_used"]

_LOG2PI = float(np.log(2.0 * np.pi))


def drop_incomplete(data: pd.DataFrame, variables, what: str, stacklevel: int = 3) -> pd.DataFrame:
    """``data`` without the rows that miss a value of ``variables`` (with a warning saying how many).

    Raises
    ------
    KeyError
        A variable is not a column of ``data``.
    """
    variables = [v for v in dict.fromkeys(variables)]
    missing = [v for v in variables if v not in data.columns]
    if missing:
        raise KeyError(f"variable {missing[0]!r} of {what} not found in data; its columns are: "
                       f"{', '.join(map(str, data.columns))}")
    if not variables:
        return data
    ok = data[variables].notna().all(axis=1).to_numpy()
    k = int((~ok).sum())
    if k == len(data):
        raise ValueError(f"no complete rows: every row misses a value of {what}")
    if k:
        warnings.warn(f"{k} row{'s' if k > 1 else ''} with missing values in {what} removed (of {len(data)})",
                      UserWarning, stacklevel=stacklevel)
        data = data.loc[ok]
    return data


def rows_used(data: pd.DataFrame, mf: ModelFrame) -> pd.DataFrame:
    """The rows of ``data`` that the model frame uses (all columns), in its order."""
    idx = mf.frame.index
    if data.index.is_unique:
        return data.loc[idx]
    if len(idx) == len(data):
        return data
    raise ValueError("data's index has repeated labels and rows were removed for missing values: "
                     "give data a unique index (data.reset_index(drop=True))")


@dataclass
class _Pieces:
    beta: np.ndarray
    RX: np.ndarray  # upper triangular, (W X) = Q RX
    pwrss: float
    logdet_R: float


class GlsProblem:
    """``y``, ``X`` and the correlation structure: the criterion as a function of ``eta``."""

    def __init__(self, mf: ModelFrame, corr: ResidualCorrelation, REML: bool = True):
        self.mf, self.corr, self.REML = mf, corr, bool(REML)
        self.n, self.p = mf.n, mf.p
        if self.REML and self.n <= self.p:
            raise ValueError(f"REML needs more observations (n={self.n}) than coefficients (p={self.p})")

    def pieces(self, eta: float) -> _Pieces:
        WX = self.corr.whiten_columns(eta, self.mf.X)
        Wy = self.corr.whiten_columns(eta, self.mf.y)
        if self.p:
            Q, RX = np.linalg.qr(WX)
            qty = Q.T @ Wy
            beta = np.linalg.solve(RX, qty) if self.p else np.zeros(0)
            r = Wy - WX @ beta
        else:
            RX, beta, r = np.zeros((0, 0)), np.zeros(0), Wy
        return _Pieces(beta=beta, RX=RX, pwrss=float(r @ r), logdet_R=self.corr.logdet(eta))

    def objective(self, eta: float) -> float:
        """REML criterion or ML deviance at ``eta`` (``inf`` where undefined)."""
        with np.errstate(all="ignore"):
            try:
                pc = self.pieces(float(eta))
            except (np.linalg.LinAlgError, FloatingPointError, ValueError):
                return np.inf
            d = self.n - self.p if self.REML else self.n
            if not (pc.pwrss > 0 and np.isfinite(pc.logdet_R)):
                return np.inf
            crit = pc.logdet_R + d * (1.0 + _LOG2PI + np.log(pc.pwrss / d))
            if self.REML:
                crit += 2.0 * np.log(np.abs(np.diag(pc.RX))).sum()
        return float(crit) if np.isfinite(crit) else np.inf

    def minimize(self) -> tuple[float, float, bool]:
        """``eta`` at the minimum, the criterion there, and whether Brent's method converged."""
        grid = np.linspace(-8.0, 8.0, 33)
        vals = np.array([self.objective(e) for e in grid])
        if not np.any(np.isfinite(vals)):
            raise ValueError("the criterion is not finite for any value of the correlation parameter")
        i = int(np.nanargmin(np.where(np.isfinite(vals), vals, np.nan)))
        if 0 < i < len(grid) - 1:
            res = minimize_scalar(self.objective, bracket=(grid[i - 1], grid[i], grid[i + 1]),
                                  method="brent", options=dict(xtol=1e-10, maxiter=500))
        else:  # the minimum is beyond the grid's edge: a bounded search up to |eta| = 30
            lo, hi = (grid[0] - 22.0, grid[1]) if i == 0 else (grid[-2], grid[-1] + 22.0)
            res = minimize_scalar(self.objective, bounds=(lo, hi), method="bounded",
                                  options=dict(xatol=1e-10, maxiter=500))
        eta, fun = float(res.x), float(res.fun)
        if vals[i] < fun:
            eta, fun = float(grid[i]), float(vals[i])
        return eta, fun, bool(res.success)


@dataclass(eq=False)
class GlsFit:
    """A fitted generalized least squares model (nlme's ``gls``).

    Attributes
    ----------
    mf : ModelFrame
    corr : ResidualCorrelation
    eta : float
        The correlation parameter on nlme's unconstrained scale.
    objective : float
        REML criterion (REML fits) or deviance (ML), ``-2 log L``.
    REML : bool
    converged : bool
    """

    mf: ModelFrame
    corr: ResidualCorrelation
    eta: float
    objective: float
    REML: bool
    converged: bool
    messages: list = field(default_factory=list)

    @cached_property
    def _pieces(self) -> _Pieces:
        return GlsProblem(self.mf, self.corr, self.REML).pieces(self.eta)

    @property
    def formula(self) -> str:
        return self.mf.formula.text

    @property
    def nobs(self) -> int:
        return self.mf.n

    @property
    def correlation(self) -> float:
        """The estimated correlation parameter (``phi`` of an AR(1), ``rho`` of compound symmetry)."""
        return self.corr.value(self.eta)

    @property
    def phi(self) -> float:
        """The AR(1) parameter ``phi``."""
        if self.corr.parameter != "phi":
            raise AttributeError(f"this model's residual correlation is {self.corr.name}: see fit.rho")
        return self.correlation

    @property
    def rho(self) -> float:
        """The compound-symmetry correlation ``rho``."""
        if self.corr.parameter != "rho":
            raise AttributeError(f"this model's residual correlation is {self.corr.name}: see fit.phi")
        return self.correlation

    @property
    def pwrss(self) -> float:
        """Residual sum of squares of the whitened model, ``r^2 = ||W (y - X beta)||^2``."""
        return self._pieces.pwrss

    @property
    def sigma(self) -> float:
        """Residual standard deviation: ``sqrt(r^2 / (n - p))`` (REML) or ``sqrt(r^2 / n)`` (ML)."""
        d = self.nobs - self.mf.p if self.REML else self.nobs
        return float(np.sqrt(self._pieces.pwrss / d))

    @cached_property
    def coef(self) -> pd.Series:
        """``beta`` with R's names."""
        return pd.Series(self._pieces.beta, index=list(self.mf.xnames), name="Value")

    @property
    def fixef(self) -> pd.Series:
        """The same as :attr:`coef` (lme4's name)."""
        return self.coef

    @cached_property
    def vcov(self) -> pd.DataFrame:
        """``s^2 (X' R^{-1} X)^{-1}`` with ``s^2 = r^2 / (n - p)``, as nlme's ``vcov.gls``.

        For an ML fit too nlme divides by ``n - p`` here (while ``sigma``
        divides by ``n``); mmbook follows nlme.
        """
        RX = self._pieces.RX
        Rinv = np.linalg.inv(RX) if len(RX) else RX
        V = self._pieces.pwrss / (self.nobs - self.mf.p) * (Rinv @ Rinv.T)
        return pd.DataFrame(V, index=self.coef.index, columns=self.coef.index)

    @property
    def stderror(self) -> pd.Series:
        return pd.Series(np.sqrt(np.diag(self.vcov.to_numpy())), index=self.coef.index, name="Std.Error")

    @property
    def npar(self) -> int:
        """``beta``, ``sigma`` and the correlation parameter (nlme's count)."""
        return self.mf.p + 2

    @property
    def loglik(self) -> float:
        return -0.5 * self.objective

    @property
    def aic(self) -> float:
        return self.objective + 2.0 * self.npar

    @property
    def bic(self) -> float:
        n = self.nobs - self.mf.p if self.REML else self.nobs  # nlme: n - p for REML fits
        return self.objective + np.log(n) * self.npar

    @cached_property
    def fitted(self) -> pd.Series:
        return pd.Series(self.mf.X @ self._pieces.beta, index=self.mf.frame.index, name="fitted")

    @cached_property
    def residuals(self) -> pd.Series:
        """Response residuals ``y - X beta`` (correlated; nlme's ``resid(fit)``)."""
        return pd.Series(self.mf.y - self.fitted.to_numpy(), index=self.mf.frame.index, name="residuals")

    def R(self, cluster=0) -> np.ndarray:
        """The estimated correlation matrix of one cluster's residuals (rows in the data's order)."""
        return self.corr.matrix(self.eta, cluster)

    def coef_table(self) -> pd.DataFrame:
        """nlme's ``summary(fit)$tTable``: Value, Std.Error, t-value, p-value (t on ``n - p`` df)."""
        from scipy import stats

        se = self.stderror.to_numpy()
        t = self.coef.to_numpy() / se
        df = self.nobs - self.mf.p
        return pd.DataFrame({"Value": self.coef.to_numpy(), "Std.Error": se, "t-value": t,
                             "p-value": 2.0 * stats.t.sf(np.abs(t), df)}, index=self.coef.index)

    def summary(self) -> str:
        from ..rprint import coef_matrix_cells, format_real, print_matrix

        method = "REML" if self.REML else "maximum likelihood"
        out = [f"Generalized least squares fit by {method}", f"  Model: {self.formula}", ""]
        vals = format_real([self.aic, self.bic, self.loglik], 7)
        w = max(len(v) for v in vals + ["logLik"])
        out.append("  " + " ".join(a.rjust(w) for a in ["AIC", "BIC", "logLik"]))
        out.append("  " + " ".join(v.rjust(w) for v in vals))
        out.append("")
        out.append(f"Correlation Structure: {self.corr.name}")
        spec = self.corr.spec
        out.append(f" Formula: ~{spec.time or 1}{' | ' + spec.group if spec.group else ''} ")
        out.append(" Parameter estimate(s):")
        out.append(f"{self.corr.parameter.capitalize():>10}")
        out.append(f"{format_real([self.correlation], 7)[0]:>10} ")
        out.append("")
        out.append("Coefficients:")
        tab = self.coef_table()
        rows, _ = coef_matrix_cells(tab.to_numpy(), 4, has_p=True, tst_col=2)
        out.extend(print_matrix(list(tab.index), list(tab.columns), rows))
        out.append("")
        out.append(f"Residual standard error: {format_real([self.sigma], 7)[0]} ")
        out.append(f"Degrees of freedom: {self.nobs} total; {self.nobs - self.mf.p} residual")
        return "\n".join(out) + "\n"

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        crit = "REML criterion" if self.REML else "deviance"
        return (f"<GlsFit {self.formula!r}, {self.corr.name} {self.corr.parameter} = {self.correlation:.4f}: "
                f"{crit} {self.objective:.4f}, n={self.nobs}>")


def gls(formula: str, data: pd.DataFrame, correlation, REML: bool = True) -> GlsFit:
    """Fit a linear model with correlated residuals by (restricted) maximum likelihood, as nlme's ``gls``.

    Parameters
    ----------
    formula : str
        A formula without random-effects terms, e.g. ``"Reaction ~ Days"``.
    data : pandas.DataFrame
    correlation : str
        ``"ar1(t | g)"`` (nlme's ``corAR1(form = ~ t | g)``; gaps in the
        whole-number times count; ``corCAR1`` for other times) or
        ``"cs(1 | g)"`` (``corCompSymm(form = ~ 1 | g)``).
    REML : bool, default True

    Returns
    -------
    GlsFit

    Raises
    ------
    ValueError
        The formula has random-effects terms; a malformed correlation;
        repeated times within a cluster.
    KeyError
        A variable is not in ``data``.

    Examples
    --------
    >>> import mmbook
    >>> fit = mmbook.gls("Reaction ~ Days", mmbook.load_sleepstudy(), correlation="ar1(Days | Subject)")
    >>> round(fit.phi, 4)
    0.8
    """
    f = parse_formula(formula)
    if f.random:
        raise ValueError(f"gls fits models without random effects; {formula!r} has "
                         f"{len(f.random)} random-effects term(s): use mmbook.lmer(..., residual=...)")
    spec = parse_residual(correlation)
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    data = drop_incomplete(data, spec.variables, f"correlation={spec.text!r}")
    mf = model_frame(f, data, drop_rank=True, random=False, stacklevel=2)
    corr = residual_correlation(spec, rows_used(data, mf))
    prob = GlsProblem(mf, corr, REML)
    eta, fun, ok = prob.minimize()
    msgs = [] if ok else ["the search for the correlation parameter did not converge"]
    for m in msgs:
        warnings.warn(m, RuntimeWarning, stacklevel=2)
    return GlsFit(mf=mf, corr=corr, eta=eta, objective=fun, REML=bool(REML), converged=ok, messages=msgs)
