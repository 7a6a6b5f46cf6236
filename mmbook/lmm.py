"""``lmer``: fit a linear mixed model by REML or maximum likelihood, as lme4 does.

The fit is a pipeline of stages, each callable on its own (lme4's
``lFormula`` -> ``mkLmerDevfun`` -> ``optimizeLmer`` -> ``mkMerMod``):

1. :func:`mmbook.design.model_frame` - formula and data to ``y``, ``X`` and
   the random-effects terms;
2. :class:`mmbook.pls.PLS` - the profiled criterion as a function of
   ``theta``;
3. :func:`mmbook.optimize.minimize_theta` - its minimum;
4. :class:`LmerFit` - the estimates and everything computed from them.

The model is

.. math::  y = X\\beta + Z\\gamma + e, \\quad \\gamma \\sim N(0, \\psi), \\quad
           e \\sim N(0, \\sigma^2 I), \\quad \\psi = \\sigma^2 \\Lambda_\\theta \\Lambda_\\theta' .
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from .design import ModelFrame, model_frame
from .formula import parse_formula
from .optimize import OptimizeResult, minimize_theta
from .pls import PLS, PLSSolution

__all__ = ["LmerControl", "LmerFit", "SingularFitWarning", "lmer", "blas_threads"]


@contextmanager
def blas_threads(n: int | None):
    """Limit the BLAS thread pools to ``n`` threads inside the block (no-op for None)."""
    if n is None:
        yield
        return
    global _CONTROLLER
    if _CONTROLLER is None:  # scanning the loaded libraries costs ~0.3 ms: do it once
        from threadpoolctl import ThreadpoolController

        _CONTROLLER = ThreadpoolController()
    with _CONTROLLER.limit(limits=n, user_api="blas"):
        yield


_CONTROLLER = None


class SingularFitWarning(UserWarning):
    """The estimated random-effects covariance is singular (a variance or a correlation at its bound)."""


def _make_name(name: str) -> str:
    """R's ``make.names``: characters not allowed in a name become ``.``; a bad start gets ``X``."""
    import re

    out = re.sub(r"[^A-Za-z0-9._]", ".", name)
    if not re.match(r"[A-Za-z]|\.(?![0-9])", out):
        out = "X" + out
    return out


@dataclass(frozen=True)
class LmerControl:
    """How ``lmer`` fits: optimizer settings and checks (lme4's ``lmerControl``).

    Attributes
    ----------
    ftol, gtol : float
        L-BFGS-B stopping tolerances on the criterion and the projected gradient.
    grad_step : float
        Relative step of the finite-difference gradient.
    central : bool
        Central instead of forward differences (twice the evaluations).
    polish : bool
        Newton steps after L-BFGS-B so that ``theta`` is accurate to many
        digits, not just the criterion.
    singular_tol : float
        A diagonal element of ``theta`` below this is "on the boundary"
        (lme4's ``isSingular(tol = 1e-4)``).
    check_singular : bool
        Warn about a singular fit, as lme4's message does.
    blas_threads : int or None
        BLAS threads during the fit (None: leave as is). The criterion works
        on small matrices, where OpenBLAS's threads cost more than they give
        (4x slower on a 2-core machine), so the default is 1.
    """

    ftol: float = 1e-12
    gtol: float = 1e-6
    grad_step: float = 1e-6
    central: bool = False
    polish: bool = True
    singular_tol: float = 1e-4
    check_singular: bool = True
    blas_threads: int | None = 1


def lmer(formula: str, data: pd.DataFrame, REML: bool = True, control: LmerControl | None = None,
         start: np.ndarray | None = None) -> "LmerFit":
    """Fit a linear mixed model, as lme4's ``lmer``.

    Parameters
    ----------
    formula : str
        An lme4 formula, e.g. ``"Reaction ~ Days + (Days | Subject)"``.
    data : pandas.DataFrame
    REML : bool, default True
        Estimate by restricted maximum likelihood (True) or maximum likelihood.
    control : LmerControl, optional
    start : array_like, optional
        Starting ``theta``. Default: a moment estimate for random-intercept
        terms (:meth:`mmbook.pls.PLS.moment_start`) and lme4's start (1 on the
        diagonal of ``T``, 0 below it) for the others.

    Returns
    -------
    LmerFit

    Examples
    --------
    >>> import mmbook
    >>> fit = mmbook.lmer("Reaction ~ Days + (Days | Subject)", mmbook.load_sleepstudy())
    >>> round(fit.objective, 4)
    1743.6283
    """
    control = control or LmerControl()
    with blas_threads(control.blas_threads):
        return _lmer(formula, data, REML, control, start)


def _lmer(formula, data, REML, control, start):
    f = parse_formula(formula)
    if not f.random:
        raise ValueError(f"no random-effects terms in {formula!r}: add one such as (1 | group), "
                         "or use mmbook.lm for a model without random effects")
    mf = model_frame(f, data, drop_rank=True, stacklevel=4)  # user -> lmer -> _lmer -> model_frame
    pls = PLS(mf, REML=REML)
    theta0 = pls.moment_start() if start is None else np.asarray(start, dtype=float)
    if theta0.shape != pls.theta0.shape:
        raise ValueError(f"start must have {len(pls.theta0)} values (theta), got {theta0.size}")
    opt = minimize_theta(pls.objective, theta0, pls.lower, grad_step=control.grad_step,
                         ftol=control.ftol, gtol=control.gtol, polish=control.polish, central=control.central)
    if not np.isfinite(opt.fun):
        raise RuntimeError("the optimizer found no finite value of the criterion")
    fit = LmerFit(mf=mf, pls=pls, opt=opt, control=control, data=data)
    for m in opt.messages:
        warnings.warn(m, RuntimeWarning, stacklevel=3)
    if control.check_singular and fit.is_singular:
        warnings.warn("boundary (singular) fit: see help('isSingular')", SingularFitWarning, stacklevel=3)
    return fit


@dataclass(eq=False)
class LmerFit:
    """A fitted linear mixed model.

    Attributes follow lme4's extractor functions: ``fixef``, ``vcov``,
    ``sigma``, ``theta``, ``objective`` (REML criterion or ML deviance),
    ``loglik``, ``aic``, ``bic``, ``nobs``, ``ngroups``, ``varcorr``,
    ``ranef``, ``ranef_condvar``, ``coef``, ``fitted``, ``residuals``,
    ``is_singular``.
    """

    mf: ModelFrame
    pls: PLS
    opt: OptimizeResult
    control: LmerControl = field(default_factory=LmerControl)
    data: pd.DataFrame | None = None

    # ----------------------------------------------------------- basic facts
    @property
    def formula(self) -> str:
        return self.mf.formula.text

    @property
    def REML(self) -> bool:
        return self.pls.REML

    @property
    def terms(self):
        return self.mf.terms

    @property
    def nobs(self) -> int:
        return self.mf.n

    @property
    def theta(self) -> np.ndarray:
        """Relative covariance parameters in lme4's order (``getME(fit, "theta")``)."""
        return self.opt.theta.copy()

    @property
    def objective(self) -> float:
        """REML criterion (REML fits) or deviance, ``-2 log L`` (ML fits), at the optimum."""
        return self.opt.fun

    @cached_property
    def solution(self) -> PLSSolution:
        return self.pls.solve(self.opt.theta)

    @property
    def df_resid_sigma(self) -> int:
        return self.nobs - self.mf.p if self.REML else self.nobs

    @cached_property
    def sigma(self) -> float:
        """Residual standard deviation: ``sqrt(pwrss / (n - p))`` (REML) or ``sqrt(pwrss / n)`` (ML)."""
        return float(np.sqrt(self.solution.pwrss / self.df_resid_sigma))

    @property
    def npar(self) -> int:
        """Number of parameters: fixed effects, ``theta`` and ``sigma``."""
        return self.mf.p + len(self.opt.theta) + 1

    @property
    def loglik(self) -> float:
        """Log-likelihood (REML log-likelihood for REML fits, as lme4's ``logLik``)."""
        return -0.5 * self.objective

    @property
    def aic(self) -> float:
        return -2.0 * self.loglik + 2.0 * self.npar

    @property
    def bic(self) -> float:
        return -2.0 * self.loglik + np.log(self.nobs) * self.npar

    @cached_property
    def deviance(self) -> float:
        """ML deviance ``-2 log L`` at the estimates (for a REML fit: at the REML estimates)."""
        if not self.REML:
            return self.objective
        ml = PLS(self.mf, REML=False)
        return ml.objective(self.opt.theta)

    @property
    def ngroups(self) -> dict:
        """Number of levels of each grouping factor, lme4's ``ngrps``."""
        out = {}
        for t in self.terms:
            out.setdefault(t.group, t.nlevels)
        return out

    @property
    def is_singular(self) -> bool:
        """True when a diagonal element of some ``T`` is (near) zero: lme4's ``isSingular``."""
        lower = self.pls.lower
        return bool(np.any(self.opt.theta[lower == 0] < self.control.singular_tol))

    # ----------------------------------------------------------- fixed part
    @property
    def beta(self) -> np.ndarray:
        return self.solution.beta

    @cached_property
    def fixef(self) -> pd.Series:
        """Fixed-effects estimates ``beta`` with lme4's names."""
        return pd.Series(self.solution.beta, index=list(self.mf.xnames), name="Estimate")

    @cached_property
    def vcov(self) -> pd.DataFrame:
        """``sigma^2 (R_X R_X')^{-1}``: covariance of the fixed-effects estimates."""
        RX = self.solution.RX
        RXinv = np.linalg.solve(RX, np.eye(len(RX))) if len(RX) else RX
        V = self.sigma ** 2 * (RXinv.T @ RXinv)
        names = list(self.mf.xnames)
        return pd.DataFrame(V, index=names, columns=names)

    # ---------------------------------------------------------- random part
    @property
    def gamma(self) -> list[np.ndarray]:
        """Random effects per term (lme4's ``b``), each (nlevels, q)."""
        return self.solution.gamma

    def T(self, k: int) -> np.ndarray:
        return self.pls.T(k, self.opt.theta)

    def psi(self, k: int = 0) -> np.ndarray:
        """Covariance matrix of term ``k``'s random effects: ``sigma^2 T T'``."""
        T = self.T(k)
        return self.sigma ** 2 * (T @ T.T)

    def _group_names(self) -> list[str]:
        """VarCorr group labels, as lme4 makes them.

        A factor used by one term keeps its name (``"h:g"``). The names of a
        factor used by several terms go through R's ``make.names`` and
        ``make.unique``: ``Subject``, ``Subject.1``; ``b:a`` -> ``b.a``, ``b.a.1``.
        """
        counts: dict[str, int] = {}
        for t in self.terms:
            counts[t.group] = counts.get(t.group, 0) + 1
        seen: dict[str, int] = {}
        out = []
        for t in self.terms:
            name = t.group if counts[t.group] == 1 else _make_name(t.group)
            k = seen.get(name, 0)
            out.append(name if k == 0 else f"{name}.{k}")
            seen[name] = k + 1
        return out

    @cached_property
    def varcorr(self) -> pd.DataFrame:
        """Variance components as R's ``as.data.frame(VarCorr(fit))``.

        Columns ``grp``, ``var1``, ``var2``, ``vcov`` and ``sdcor``: for each
        term its variances (``var2`` missing), then its covariances (``sdcor``
        the correlation), then the residual.
        """
        rows = []
        for k, (t, grp) in enumerate(zip(self.terms, self._group_names())):
            S = self.psi(k)
            sd = np.sqrt(np.diag(S))
            for i, nm in enumerate(t.cnames):
                rows.append((grp, nm, None, S[i, i], sd[i]))
            for j in range(t.q):
                for i in range(j + 1, t.q):
                    denom = sd[i] * sd[j]
                    corr = S[i, j] / denom if denom > 0 else np.nan
                    rows.append((grp, t.cnames[j], t.cnames[i], S[i, j], corr))
        rows.append(("Residual", None, None, self.sigma ** 2, self.sigma))
        df = pd.DataFrame(rows, columns=["grp", "var1", "var2", "vcov", "sdcor"])
        return df

    @cached_property
    def ranef(self) -> dict:
        """Conditional modes of the random effects, lme4's ``ranef``.

        A dict from grouping factor to a DataFrame (index: level labels,
        columns: term names); terms that share a factor are combined.
        """
        out: dict[str, pd.DataFrame] = {}
        for t, g in zip(self.terms, self.gamma):
            df = pd.DataFrame(g, index=pd.Index(t.levels, name=t.group), columns=list(t.cnames))
            if t.group in out:
                prev = out[t.group]
                df = df.reindex(prev.index)
                out[t.group] = pd.concat([prev, df], axis=1)
            else:
                out[t.group] = df
        return out

    @cached_property
    def ranef_condvar(self) -> dict:
        """Conditional covariance of each level's random effects given the data.

        ``sigma^2`` times the blocks of ``Lambda (L L')^{-1} Lambda'``, as
        lme4's ``ranef(fit, condVar = TRUE)``: a dict from grouping factor to
        an array (nlevels, q, q); a factor with several terms maps to a list
        of such arrays, one per term.
        """
        V = self.pls.condvar(self.opt.theta)
        out: dict = {}
        for t, v in zip(self.terms, V):
            v = self.sigma ** 2 * v
            if t.group in out:
                prev = out[t.group]
                out[t.group] = (prev if isinstance(prev, list) else [prev]) + [v]
            else:
                out[t.group] = v
        return out

    @cached_property
    def coef(self) -> dict:
        """Per-level coefficients ``beta + gamma_l`` (lme4's ``coef``): a dict of DataFrames."""
        out = {}
        for g, re in self.ranef.items():
            df = pd.DataFrame(np.tile(self.fixef.to_numpy(), (len(re), 1)), index=re.index,
                              columns=self.fixef.index)
            for c in re.columns:
                if c not in df.columns:
                    raise ValueError(f"unable to align random effect {c!r} of {g!r} with a fixed effect")
                df[c] = df[c] + re[c].to_numpy()
            out[g] = df
        return out

    # ------------------------------------------------------- fitted values
    def Zgamma(self) -> np.ndarray:
        """``Z gamma``: the random part of the linear predictor, per observation."""
        out = np.zeros(self.nobs)
        for t, g in zip(self.terms, self.gamma):
            out += np.einsum("nq,nq->n", t.z, g[t.refs])
        return out

    @cached_property
    def fitted(self) -> pd.Series:
        """Conditional fitted values ``X beta + Z gamma``."""
        return pd.Series(self.mf.X @ self.beta + self.Zgamma(), index=self.mf.frame.index, name="fitted")

    @cached_property
    def residuals(self) -> pd.Series:
        """Response residuals ``y - X beta - Z gamma``."""
        return pd.Series(self.mf.y - self.fitted.to_numpy(), index=self.mf.frame.index, name="residuals")

    @property
    def scaled_residuals(self) -> pd.Series:
        """Residuals divided by ``sigma`` (as in lme4's summary)."""
        return self.residuals / self.sigma

    # ------------------------------------------------------------ methods
    def predict(self, newdata: pd.DataFrame | None = None, re_form="all", allow_new_levels: bool = False):
        """Predictions (lme4's ``predict``); see :func:`mmbook.inference.predict`."""
        from .inference import predict

        return predict(self, newdata, re_form=re_form, allow_new_levels=allow_new_levels)

    def simulate(self, nsim: int = 1, seed=None) -> pd.DataFrame:
        """Responses simulated from the fitted model; see :func:`mmbook.inference.simulate`."""
        from .inference import simulate

        return simulate(self, nsim=nsim, seed=seed)

    def confint(self, method: str = "Wald", level: float = 0.95, **kwargs) -> pd.DataFrame:
        """Confidence intervals; see :func:`mmbook.inference.confint`."""
        from .inference import confint

        return confint(self, method=method, level=level, **kwargs)

    def icc(self) -> float:
        """Intraclass correlation ``tau^2 / (tau^2 + sigma^2)`` of a random-intercept model.

        Defined for a model whose only random-effects term is ``(1 | g)``:
        the correlation of two observations in the same cluster.
        """
        if len(self.terms) != 1 or self.terms[0].cnames != ["(Intercept)"]:
            raise ValueError("icc() is defined for a single random-intercept term (1 | g); "
                             f"this model has {', '.join('(' + t.bar.text + ')' for t in self.terms)}")
        tau2 = self.psi(0)[0, 0]
        return float(tau2 / (tau2 + self.sigma ** 2))

    def refit_ml(self) -> "LmerFit":
        """The same model fitted by maximum likelihood (as lme4's ``refitML``)."""
        if not self.REML:
            return self
        pls = PLS(self.mf, REML=False)
        c = self.control
        opt = minimize_theta(pls.objective, self.opt.theta, pls.lower, grad_step=c.grad_step, ftol=c.ftol,
                             gtol=c.gtol, polish=c.polish, central=c.central)
        return LmerFit(mf=self.mf, pls=pls, opt=opt, control=self.control, data=self.data)

    def summary(self) -> str:
        from .report import summary_text

        return summary_text(self)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        crit = "REML criterion" if self.REML else "deviance"
        return f"<LmerFit {self.formula!r}: {crit} {self.objective:.4f}, n={self.nobs}>"

    def _repr_html_(self) -> str:
        from .report import summary_html

        return summary_html(self)
