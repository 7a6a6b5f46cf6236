"""The fit object: a fitted linear mixed model and everything computed from it.

:class:`LmerFit` holds the model frame, the criterion (:class:`ConditionedPLS`), the
optimizer's result and the settings it was made with; estimates follow
lme4's extractor functions under their names (``fixef``, ``vcov``,
``sigma``, ``theta``, ``ranef``, ``coef``, ``VarCorr`` as ``varcorr``) and
the model's matrices under the names of Bates et al. (2015): ``X``, ``y``,
``Z``, ``Lambda``, ``u``, ``b``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .control import LmerControl
from .design import ModelFrame
from .intervals import confint
from .optimize import OptimizeResult
from .conditioning import ConditionedPLS
from .pls import PLSSolution
from .predict import predict, simulate
from .report import summary_html, summary_text
from .stages import refit_ml

__all__ = ["LmerFit", "make_name"]


def make_name(name: str) -> str:
    """R's ``make.names``: characters not allowed in a name become ``.``; a bad start gets ``X``."""
    out = re.sub(r"[^A-Za-z0-9._]", ".", name)
    if not re.match(r"[A-Za-z]|\.(?![0-9])", out):
        out = "X" + out
    return out



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
    pls: ConditionedPLS
    opt: OptimizeResult
    control: LmerControl = field(default_factory=LmerControl)
    data: pd.DataFrame | None = None
    messages: list = field(default_factory=list)  # (warning class, text) from the convergence checks
    convergence: object = None  # mmbook.engine.convergence.Convergence: the checks' figures

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
        return self.pls.with_REML(False).objective(self.opt.theta)

    # ------------------------------------------------ the model's matrices
    @property
    def X(self) -> np.ndarray:
        """Fixed-effects model matrix, shape (n, p), with columns named by :attr:`fixef`'s index."""
        return self.mf.X

    @property
    def y(self) -> np.ndarray:
        """The response, shape (n,)."""
        return self.mf.y

    @cached_property
    def Z(self) -> sp.csr_matrix:
        """Random-effects model matrix, sparse, shape (n, q): the terms side by side, levels within a term.

        Within a term, the columns of a level are adjacent (level-major), as
        lme4's ``getME(fit, "Z")``; ``Z @ b == fit.Zgamma()``.
        """
        return sp.hstack([t.Z() for t in self.terms], format="csr")

    @cached_property
    def Lambda(self) -> sp.csr_matrix:
        """Relative covariance factor ``Lambda_theta``, sparse (q, q): ``b = Lambda u``, ``Var(b) = sigma^2 Lambda Lambda'``."""
        blocks = [sp.kron(sp.identity(t.nlevels, format="csr"), sp.csr_matrix(self.T(k)), format="csr")
                  for k, t in enumerate(self.terms)]
        return sp.block_diag(blocks, format="csr")

    @property
    def u(self) -> np.ndarray:
        """Spherical random effects, shape (q,), in the column order of :attr:`Z` (lme4's ``getME(fit, "u")``)."""
        return np.concatenate([uk.ravel() for uk in self.solution.u])

    @property
    def b(self) -> np.ndarray:
        """Random effects on the data scale, ``b = Lambda u``, shape (q,), in :attr:`Z`'s column order."""
        return np.concatenate([g.ravel() for g in self.solution.gamma])

    @cached_property
    def stderror(self) -> pd.Series:
        """Standard errors of the fixed effects, ``sqrt(diag(vcov))`` (conditional on the variance parameters)."""
        return pd.Series(np.sqrt(np.diag(self.vcov.to_numpy())), index=self.fixef.index, name="Std. Error")

    @property
    def ngroups(self) -> dict:
        """Number of levels of each grouping factor, lme4's ``ngrps``."""
        out = {}
        for t in self.terms:
            out.setdefault(t.group, t.nlevels)
        return out

    @property
    def is_singular(self) -> bool:
        """True when a random-effects covariance matrix is (nearly) singular: lme4's ``isSingular``.

        lme4 tests ``theta``'s diagonal against ``tol = 1e-4`` in the data's
        units, so rescaling a covariate can flip its answer. mmbook tests the
        diagonal of the conditioned factor (centred, unit-scale columns; see
        :mod:`mmbook.engine.conditioning`) against ``control.singular_tol``:
        the same exact zeros, and an answer that does not depend on units.
        """
        lower = self.pls.lower
        return bool(np.any(self.opt.par[lower == 0] < self.control.singular_tol))

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
            name = t.group if counts[t.group] == 1 else make_name(t.group)
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
        """Per-level coefficients ``beta + gamma_l`` (lme4's ``coef``): a dict of DataFrames.

        As lme4's ``coef.merMod``, a random effect without a fixed effect of
        the same name (for example one dropped for rank deficiency) gets a
        fixed part of 0, in a column before the fixed effects.
        """
        fixef = self.fixef
        missing = [c for re in self.ranef.values() for c in re.columns if c not in fixef.index]
        fixef = pd.concat([pd.Series(0.0, index=list(dict.fromkeys(missing))), fixef])
        out = {}
        for g, re in self.ranef.items():
            df = pd.DataFrame(np.tile(fixef.to_numpy(), (len(re), 1)), index=re.index, columns=fixef.index)
            for c in re.columns:
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
        """Predictions (lme4's ``predict``); see :func:`mmbook.engine.predict.predict`."""
        return predict(self, newdata, re_form=re_form, allow_new_levels=allow_new_levels)

    def simulate(self, nsim: int = 1, seed=None) -> pd.DataFrame:
        """Responses simulated from the fitted model; see :func:`mmbook.engine.predict.simulate`."""
        return simulate(self, nsim=nsim, seed=seed)

    def confint(self, method: str = "Wald", level: float = 0.95, **kwargs) -> pd.DataFrame:
        """Confidence intervals; see :func:`mmbook.engine.intervals.confint`."""
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
        """The same model fitted by maximum likelihood (lme4's ``refitML``); see :func:`mmbook.engine.stages.refit_ml`."""
        return refit_ml(self)

    def summary(self) -> str:
        return summary_text(self)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        crit = "REML criterion" if self.REML else "deviance"
        return f"<LmerFit {self.formula!r}: {crit} {self.objective:.4f}, n={self.nobs}>"

    def _repr_html_(self) -> str:
        return summary_html(self)
