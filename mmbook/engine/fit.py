"""The fit object: a fitted linear mixed model and everything computed from it.

:class:`LmerFit` holds the model frame, the criterion (:class:`ConditionedPLS`), the
optimizer's result and the settings it was made with; estimates follow
lme4's extractor functions under their names (``fixef``, ``vcov``,
``sigma``, ``theta``, ``ranef``, ``coef``, ``VarCorr`` as ``varcorr``), the
model's matrices (``X``, ``Z``, ``Lambda``, ``L``, ``RX``, ``u``, ``b``, ...:
:class:`mmbook.engine.matrices.ModelMatrices`), and lme4's verbs as methods:
``predict``, ``simulate``, ``confint``, ``profile``, ``update``, ``anova``,
``drop1``, ``tidy``, ``glance``.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from .control import LmerControl
from .design import ModelFrame
from .extensions import extension
from .intervals import confint
from .lrt import anova, drop1
from .matrices import ModelMatrices
from .optimize import OptimizeResult
from .conditioning import ConditionedPLS
from .pls import PLS, PLSSolution
from .predict import predict, simulate
from .profile import profile
from .report import summary_html, summary_text
from .stages import refit_ml
from .tidy import glance, tidy
from .update import FitCall, update

__all__ = ["LmerFit", "VarCorrTerm", "make_name", "deviance"]


@dataclass(frozen=True)
class VarCorrTerm:
    """One random-effects term's variance components.

    Attributes
    ----------
    group : str
        lme4's group label (``Subject``, ``Subject.1``, ``h:g``).
    names : list of str
        The term's columns (``(Intercept)``, ``Days``).
    cov : ndarray, shape (q, q)
        ``psi = sigma^2 T T'`` (data units squared).
    sd : ndarray, shape (q,)
        Standard deviations ``sqrt(diag(psi))``.
    corr : ndarray, shape (q, q)
        Correlations (NaN where a standard deviation is zero).
    """

    group: str
    names: list
    cov: np.ndarray
    sd: np.ndarray
    corr: np.ndarray


def make_name(name: str) -> str:
    """R's ``make.names``: characters not allowed in a name become ``.``; a bad start gets ``X``."""
    out = re.sub(r"[^A-Za-z0-9._]", ".", name)
    if not re.match(r"[A-Za-z]|\.(?![0-9])", out):
        out = "X" + out
    return out



@dataclass(eq=False)
class LmerFit(ModelMatrices):
    """A fitted linear mixed model.

    Attributes follow lme4's extractor functions: ``fixef``, ``vcov``,
    ``sigma``, ``theta``, ``objective`` (REML criterion or ML deviance),
    ``loglik``, ``aic``, ``bic``, ``nobs``, ``ngroups``, ``varcorr``,
    ``ranef``, ``ranef_condvar``, ``coef``, ``fitted``, ``residuals``
    (and :meth:`resid` for lme4's other types), ``weights`` (prior
    weights), ``offset``, ``is_singular``.
    """

    mf: ModelFrame
    pls: ConditionedPLS
    opt: OptimizeResult
    control: LmerControl = field(default_factory=LmerControl)
    data: pd.DataFrame | None = None
    messages: list = field(default_factory=list)  # (warning class, text) from the convergence checks
    call: FitCall | None = None  # how the fit was made (lme4's getCall), for update()
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
        """Relative covariance parameters in lme4's order (``getME(fit, "theta")``).

        The optimizer's vector ``fit.opt.theta`` also holds a residual
        correlation's parameter, after these (see :attr:`correlation`).
        """
        return self.opt.theta[:sum(t.ntheta for t in self.terms)].copy()

    # ------------------------------------------------- correlated residuals
    @property
    def residual_structure(self):
        """The residual correlation structure (:mod:`mmbook.engine.residual`), or None."""
        return self.mf.residual

    @property
    def correlation(self) -> float:
        """The residual correlation parameter: ``phi`` of an AR(1), ``rho`` of compound symmetry.

        Raises
        ------
        AttributeError
            The model has independent residuals.
        """
        corr = self.mf.residual
        if corr is None:
            raise AttributeError("this model has independent residuals (fit with residual='ar1(t | g)' or "
                                 "'cs(1 | g)' for correlated ones)")
        return corr.value(float(self.opt.theta[sum(t.ntheta for t in self.terms)]))

    @property
    def phi(self) -> float:
        """The AR(1) residual correlation ``phi`` (``corr(e_i, e_j) = phi^|t_i - t_j|`` within a cluster)."""
        corr = self.mf.residual
        if corr is not None and corr.parameter != "phi":
            raise AttributeError(f"this model's residual correlation is {corr.name}: see fit.rho")
        return self.correlation

    @property
    def rho(self) -> float:
        """The compound-symmetry residual correlation ``rho`` (equal within a cluster)."""
        corr = self.mf.residual
        if corr is not None and corr.parameter != "rho":
            raise AttributeError(f"this model's residual correlation is {corr.name}: see fit.phi")
        return self.correlation

    def R(self, cluster=0) -> np.ndarray:
        """The estimated correlation matrix of one residual cluster's rows (in the data's order)."""
        if self.mf.residual is None:
            raise AttributeError("this model has independent residuals: R is the identity")
        eta = float(self.opt.theta[sum(t.ntheta for t in self.terms)])
        return self.mf.residual.matrix(eta, cluster)

    # -------------------------------------------------------- smooth terms
    @cached_property
    def smooths(self) -> pd.DataFrame:
        """The smooth terms: ``k``, basis, ``lambda = sigma^2 / tau^2``, ``tau^2``, and EDF.

        ``lambda`` is mgcv's smoothing parameter ``sp`` (the penalty is scaled
        as mgcv scales it); ``edf`` is the smooth's effective degrees of
        freedom (mgcv's ``sum(edf)`` over its coefficients, the linear part
        included). An empty frame for a model without smooths.
        """
        from .smooth import is_smooth, smooth_edf

        rows = []
        idx = [k for k, t in enumerate(self.terms) if is_smooth(t)]
        edf = smooth_edf(self.pls, self.opt.theta) if idx else []
        for k, e in zip(idx, edf):
            t = self.terms[k]
            th = float(self.T(k)[0, 0]) if t.q else 0.0
            tau2 = self.sigma ** 2 * th ** 2
            rows.append((t.smooth.spec.label, t.smooth.spec.k, t.smooth.spec.bs, e,
                         1.0 / th ** 2 if th > 0 else np.inf, tau2, np.sqrt(tau2)))
        return pd.DataFrame(rows, columns=["term", "k", "bs", "edf", "lambda", "variance", "sd"]).set_index("term")

    def smooth_values(self, newdata: pd.DataFrame | None = None) -> pd.DataFrame:
        """Each smooth's contribution ``f(x) = X_s beta_s + Z_s b_s`` (mgcv's ``predict(type = "terms")``).

        One column per smooth, for the data (default) or ``newdata``; each
        smooth sums to zero over the fitted data (mgcv's constraint).
        """
        from .smooth import is_smooth

        frame = self.mf.frame if newdata is None else newdata
        out = {}
        beta = self.fixef
        for t, g in zip(self.terms, self.gamma):
            if not is_smooth(t):
                continue
            ms = t.smooth
            Xf, Zs = ms.fixed_matrix(frame), (t.z if newdata is None else ms.random_matrix(frame))
            bf = np.array([beta.get(nm, 0.0) for nm in ms.fixed_names])
            out[ms.spec.label] = Xf @ bf + Zs @ g[0]
        return pd.DataFrame(out, index=frame.index)

    @property
    def objective(self) -> float:
        """REML criterion (REML fits) or deviance, ``-2 log L`` (ML fits), at the optimum."""
        return self.opt.fun

    @cached_property
    def solution(self) -> PLSSolution:
        return self.pls.solve(self.opt.theta)

    @property
    def df_resid_sigma(self) -> int:
        """Degrees of freedom of ``sigma^2``: ``n - p`` (REML) or ``n`` (ML), ``n`` counting positive weights."""
        return self.pls.response.dof

    @cached_property
    def sigma(self) -> float:
        """Residual standard deviation: ``sqrt(pwrss / (n - p))`` (REML) or ``sqrt(pwrss / n)`` (ML).

        With prior weights ``w_i`` it is the scale of a unit-weight
        observation: observation ``i`` has residual variance ``sigma^2 / w_i``
        (lme4's ``sigma``).
        """
        return float(np.sqrt(self.solution.pwrss / self.df_resid_sigma))

    @property
    def weights(self) -> np.ndarray:
        """Prior weights, one per observation used (lme4's ``weights(fit)``; all 1 without weights)."""
        return np.ones(self.nobs) if self.mf.weights is None else self.mf.weights.copy()

    @property
    def offset(self) -> np.ndarray:
        """The offset of each observation used (the formula's ``offset()`` terms plus the argument; 0 without)."""
        return np.zeros(self.nobs) if self.mf.offset is None else self.mf.offset.copy()

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
        """``-2 log L + log(n) npar``; ``n`` counts the observations with positive weight."""
        return -2.0 * self.loglik + np.log(self.mf.n_eff) * self.npar

    @property
    def deviance(self) -> float:
        """lme4's ``deviance(fit)``: ``-2 log L`` of an ML fit; the REML criterion of a REML fit, with a warning.

        lme4 1.1-31 answers ``deviance()`` of a REML fit with the REML
        criterion and the warning "deviance() is deprecated for REML fits";
        mmbook does the same. For the ML deviance at the REML estimates use
        ``mmbook.deviance(fit, REML=False)``; for the REML criterion,
        :attr:`REMLcrit`.
        """
        return deviance(self)

    @property
    def REMLcrit(self) -> float:
        """The REML criterion at the estimates (lme4's ``REMLcrit``); for an ML fit, at the ML estimates."""
        return self.objective if self.REML else PLS(self.mf, REML=True).objective(self.opt.theta)

    @property
    def df_residual(self) -> int:
        """Residual degrees of freedom, ``nobs - npar`` (lme4's ``df.residual``)."""
        return self.nobs - self.npar

    def coef_table(self, ddf: str = "lme4") -> pd.DataFrame:
        """The fixed effects' coefficient table.

        ``ddf="lme4"`` (the default): lme4's ``coef(summary(fit))``, with
        ``Estimate``, ``Std. Error`` and ``t value``. ``ddf="Satterthwaite"``
        or ``"Kenward-Roger"``: lmerTest's ``summary(fit, ddf = ...)`` table,
        with ``df`` and ``Pr(>|t|)`` (:func:`mmbook.inference.coef_table`).
        """
        if ddf != "lme4":
            return extension("coef_table")(self, ddf=ddf)
        est, se = self.fixef.to_numpy(), self.stderror.to_numpy()
        return pd.DataFrame({"Estimate": est, "Std. Error": se, "t value": est / se}, index=self.fixef.index)

    def contest(self, L, rhs=0.0, joint: bool = True, ddf: str = "Satterthwaite", **kwargs) -> pd.DataFrame:
        """Test ``L beta = rhs`` (lmerTest's ``contest``); see :func:`mmbook.inference.contest`."""
        return extension("contest")(self, L, rhs=rhs, joint=joint, ddf=ddf, **kwargs)

    def emmeans(self, specs, ddf: str | None = None, level: float = 0.95):
        """Estimated marginal means (emmeans' ``emmeans``); see :func:`mmbook.inference.emmeans`."""
        return extension("emmeans")(self, specs, ddf=ddf, level=level)

    def r2(self) -> dict:
        """Nakagawa & Schielzeth's marginal and conditional R²; see :func:`mmbook.inference.r2`."""
        return extension("r2")(self)

    # ------------------------------------------------------- group labels
    @property
    def cnms(self) -> dict:
        """Column names of each term's random effects (lme4's ``getME(fit, "cnms")``).

        Keyed by the terms' group labels as in :attr:`varcorr` (a factor
        with several terms: ``g``, ``g.1``, ...; lme4 repeats the name ``g``).
        """
        return {g: list(t.cnames) for g, t in zip(self.group_names, self.terms)}

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

        A smooth term is not counted: its variance at zero means the data
        support its unpenalized (linear) part only (``lambda`` infinite,
        EDF 1), not a degenerate covariance matrix.
        """
        lower = self.pls.lower == 0
        o = self.pls.theta_offsets
        for k, t in enumerate(self.terms):
            if t.structure == "identity":
                lower[o[k]:o[k + 1]] = False
        return bool(np.any(self.opt.par[lower] < self.control.singular_tol))

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

    @cached_property
    def group_names(self) -> list[str]:
        """VarCorr group label of each term, as lme4 makes them.

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
    def vc_terms(self) -> list[VarCorrTerm]:
        """Each term's covariance ``psi_k``, standard deviations and correlations (lme4's ``VarCorr``).

        The one place where the variance components are assembled; the
        printed summary, :attr:`varcorr` and the confidence intervals all read it.
        """
        out = []
        for k, (t, grp) in enumerate(zip(self.terms, self.group_names)):
            S = self.psi(k)
            if t.structure == "identity":  # q independent effects with one variance: shown once
                vc = VarCorrTerm(group=grp, names=[t.bar.text.split(" |")[0]], cov=S[:1, :1],
                                 sd=np.sqrt(S[:1, 0]), corr=np.ones((1, 1)))
                out.append(vc)
                continue
            sd = np.sqrt(np.diag(S))
            with np.errstate(invalid="ignore", divide="ignore"):
                corr = S / np.outer(sd, sd)
            out.append(VarCorrTerm(group=grp, names=list(t.cnames), cov=S, sd=sd, corr=corr))
        return out

    @cached_property
    def varcorr(self) -> pd.DataFrame:
        """Variance components as R's ``as.data.frame(VarCorr(fit))``.

        Columns ``grp``, ``var1``, ``var2``, ``vcov`` and ``sdcor``: for each
        term its variances (``var2`` missing), then its covariances (``sdcor``
        the correlation), then the residual.
        """
        rows = []
        for vc in self.vc_terms:
            for i, nm in enumerate(vc.names):
                rows.append((vc.group, nm, None, vc.cov[i, i], vc.sd[i]))
            q = len(vc.names)
            for j in range(q):
                for i in range(j + 1, q):
                    rows.append((vc.group, vc.names[j], vc.names[i], vc.cov[i, j], vc.corr[i, j]))
        rows.append(("Residual", None, None, self.sigma ** 2, self.sigma))
        return pd.DataFrame(rows, columns=["grp", "var1", "var2", "vcov", "sdcor"])

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
        smooth_groups = {t.group for t in self.terms if t.structure == "identity"}
        for g, re in self.ranef.items():
            if g in smooth_groups:  # a smooth's penalized coefficients belong to no fixed effect
                continue
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
    def mu(self) -> np.ndarray:
        """Conditional means ``offset + X beta + Z gamma`` of the observations used, shape (n,)."""
        mu = self.mf.X @ self.beta + self.Zgamma()
        return mu if self.mf.offset is None else mu + self.mf.offset

    @cached_property
    def fitted(self) -> pd.Series:
        """Conditional fitted values ``offset + X beta + Z gamma`` (lme4's ``fitted``).

        Indexed like the rows used; with ``na_action="exclude"`` like the
        data, NaN at the rows removed for missing values.
        """
        return self.mf.pad(self.mu, "fitted")

    @cached_property
    def residuals(self) -> pd.Series:
        """Response residuals ``y - fitted`` (lme4's ``residuals(fit)``); see :meth:`resid` for other types."""
        return self.resid("response")

    def resid(self, type: str = "response", scaled: bool = False) -> pd.Series:
        """Residuals of a type, as lme4's ``residuals(fit, type, scaled)`` (R's ``resid``).

        Parameters
        ----------
        type : {"response", "pearson", "working", "deviance"}
            ``response`` and ``working``: ``y - mu``; ``pearson`` and
            ``deviance``: ``sqrt(w) (y - mu)`` with ``w`` the prior weights
            (the same as ``response`` without weights).
        scaled : bool
            Divide by ``sigma``.

        Returns
        -------
        Series
            Indexed like :attr:`fitted` (padded with NaN for ``na_action="exclude"``).

        Raises
        ------
        ValueError
            An unknown type (lme4's ``partial`` is not implemented there either).
        """
        r = self.mf.y - self.mu
        if type in ("pearson", "deviance"):
            if self.mf.weights is not None:
                r = r * np.sqrt(self.mf.weights)
        elif type not in ("response", "working"):
            raise ValueError(f"type must be 'response', 'pearson', 'working' or 'deviance', got {type!r}")
        if scaled:
            r = r / self.sigma
        return self.mf.pad(r, "residuals")

    @property
    def scaled_residuals(self) -> pd.Series:
        """Pearson residuals divided by ``sigma`` for the rows used (lme4's summary shows their quantiles)."""
        r = (self.mf.y - self.mu) / self.sigma
        if self.mf.weights is not None:
            r = r * np.sqrt(self.mf.weights)
        return pd.Series(r, index=self.mf.frame.index, name="residuals")

    # ------------------------------------------------------------ methods
    def predict(self, newdata: pd.DataFrame | None = None, re_form="all", allow_new_levels: bool = False):
        """Predictions (lme4's ``predict``); see :func:`mmbook.engine.predict.predict`."""
        return predict(self, newdata, re_form=re_form, allow_new_levels=allow_new_levels)

    def simulate(self, nsim: int = 1, seed=None, use_u: bool | None = None, re_form=None,
                 newdata: pd.DataFrame | None = None, allow_new_levels: bool = False) -> pd.DataFrame:
        """Responses simulated from the fitted model (lme4's ``simulate``); see :func:`mmbook.engine.predict.simulate`."""
        return simulate(self, nsim=nsim, seed=seed, use_u=use_u, re_form=re_form, newdata=newdata,
                        allow_new_levels=allow_new_levels)

    def confint(self, method: str = "profile", level: float = 0.95, parm=None, **kwargs) -> pd.DataFrame:
        """Confidence intervals, profile by default as lme4's ``confint``; see :func:`mmbook.engine.intervals.confint`."""
        return confint(self, method=method, level=level, parm=parm, **kwargs)

    def profile(self, which=None, **kwargs):
        """The profile of the ML deviance (lme4's ``profile``); see :func:`mmbook.engine.profile.profile`."""
        return profile(self, which=which, **kwargs)

    def update(self, formula: str | None = None, data: pd.DataFrame | None = None, REML: bool | None = None,
               **kwargs) -> "LmerFit":
        """The model fitted again with changes (lme4's ``update``); see :func:`mmbook.engine.update.update`."""
        return update(self, formula, data=data, REML=REML, **kwargs)

    def anova(self, type=None, ddf: str | None = None) -> pd.DataFrame:
        """F tests of the fixed-effects terms.

        With no arguments, lme4's ``anova(fit)``: the sequential F table
        without denominator df (:func:`mmbook.engine.lrt.anova`). With
        ``type`` (1, 2, 3) or ``ddf`` ("Satterthwaite", "Kenward-Roger"):
        lmerTest's ``anova(fit, type, ddf)`` with DenDF and Pr(>F)
        (:func:`mmbook.inference.anova_table`; defaults type 3, Satterthwaite).
        """
        if type is None and ddf in (None, "lme4"):
            return anova(self)
        return extension("anova_table")(self, type=3 if type is None else type,
                                        ddf="Satterthwaite" if ddf is None else ddf)

    def drop1(self, scope=None, test: str = "none", k: float = 2.0) -> pd.DataFrame:
        """Each fixed-effects term dropped in turn (lme4's ``drop1``); see :func:`mmbook.engine.lrt.drop1`."""
        return drop1(self, scope=scope, test=test, k=k)

    def tidy(self, effects=("ran_pars", "fixed"), scales=None, conf_int: bool = False, conf_level: float = 0.95,
             conf_method: str = "Wald") -> pd.DataFrame:
        """Estimates as a tidy frame (broom.mixed's ``tidy``); see :func:`mmbook.engine.tidy.tidy`."""
        return tidy(self, effects=effects, scales=scales, conf_int=conf_int, conf_level=conf_level,
                    conf_method=conf_method)

    def glance(self) -> pd.DataFrame:
        """One row of fit statistics (broom.mixed's ``glance``); see :func:`mmbook.engine.tidy.glance`."""
        return glance(self)

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

    def refit_ml(self, warn: bool = True) -> "LmerFit":
        """The same model fitted by maximum likelihood (lme4's ``refitML``); see :func:`mmbook.engine.stages.refit_ml`."""
        out = refit_ml(self, warn=warn)
        if out is not self and self.call is not None:
            out.call = self.call.with_args(REML=False)
        return out

    def summary(self) -> str:
        return summary_text(self)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        crit = "REML criterion" if self.REML else "deviance"
        return f"<LmerFit {self.formula!r}: {crit} {self.objective:.4f}, n={self.nobs}>"

    def _repr_html_(self) -> str:
        return summary_html(self)


def deviance(fit, REML: bool | None = None) -> float:
    """lme4's ``deviance(fit, REML)`` for a linear mixed model.

    ``REML=None``: ``-2 log L`` of an ML fit; for a REML fit the REML
    criterion, with lme4's warning that ``deviance()`` is deprecated for REML
    fits. ``REML=False``: the ML deviance evaluated at the fit's estimates
    (``log|L|^2 + n (1 + log(2 pi pwrss / n))``, for a REML fit at the REML
    ``theta``). ``REML=True``: the REML criterion at the fit's estimates.
    """
    if REML is None:
        if fit.REML:
            warnings.warn("deviance() is deprecated for REML fits; use REMLcrit for the REML criterion or "
                          "deviance(., REML=False) for deviance calculated at the REML fit", UserWarning,
                          stacklevel=3)
        return fit.objective
    if REML:
        return fit.REMLcrit
    return fit.objective if not fit.REML else PLS(fit.mf, REML=False).objective(fit.opt.theta)
