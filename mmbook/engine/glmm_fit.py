"""The fit object of a generalized linear mixed model.

:class:`GlmerFit` extends :class:`~mmbook.engine.fit.LmerFit`: the random-effects
structure and everything computed from ``theta``, ``beta`` and the conditional
modes ``u`` - ``ranef`` (and its conditional variances), ``coef``, ``Z``,
``Lambda``, ``u``, ``b``, ``varcorr``, ``ngroups``, ``is_singular``, ``fixef`` -
are the same computations, with ``sigma = 1``. What depends on the response
is replaced, under lme4's names and meanings for a ``glmerMod``:

* ``objective``: the Laplace (or quadrature) deviance at the optimum;
  ``loglik = -objective / 2``; ``aic``, ``bic``; ``npar`` counts ``beta`` and
  ``theta`` (no ``sigma``);
* ``deviance``: the sum of the squared deviance residuals (lme4's
  ``deviance()`` for a GLMM), not ``-2 loglik``;
* ``vcov``: from the finite-difference Hessian of the deviance in
  ``(theta, beta)`` (lme4's default for GLMMs), or from ``R_X``;
* ``fitted`` (the means ``mu``), ``residuals`` (deviance residuals) and
  :meth:`GlmerFit.resid` for the other types; ``predict`` on the link or
  the response scale; ``simulate`` from the family.

For ``nAGQ > 1`` lme4's deviance leaves out the saturated model's
``-2 log p(y | mu = y)`` (:attr:`GlmerFit.saturated_constant`);
``loglik`` is lme4's printed value and :attr:`GlmerFit.loglik_full` the
full log-likelihood (they differ only for ``nAGQ > 1`` and data other than 0/1).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from .fit import LmerFit
from .glm_family import Family
from .glmm_frame import GLMData, eval_expression
from .glmm_intervals import glmm_confint
from .glmm_report import glmm_summary_html, glmm_summary_text
from .glmm_response import GLMResponse
from .optimize import OptimizeResult
from .pirls import GLMMCriterion, PIRLSState
from .pls import PLSSolution
from .predict import predict as predict_eta

__all__ = ["GlmerFit", "deriv12"]


def deriv12(f, x: np.ndarray, delta: float = 1e-4, fx: float | None = None, hessian: bool = True):
    """Gradient and Hessian of ``f`` at ``x`` by central differences with step ``delta`` (lme4's ``deriv12``).

    Returns ``(g, H)`` (``H`` None without ``hessian``). Costs ``2k`` (gradient)
    plus ``1 + 2k(k - 1)`` (Hessian) evaluations for ``k`` parameters.
    """
    x = np.asarray(x, dtype=float)
    k = len(x)
    g = np.empty(k)
    fp, fm = np.empty(k), np.empty(k)
    for i in range(k):
        e = np.zeros(k)
        e[i] = delta
        fp[i], fm[i] = f(x + e), f(x - e)
        g[i] = (fp[i] - fm[i]) / (2.0 * delta)
    if not hessian:
        return g, None
    fx = f(x) if fx is None else fx
    H = np.empty((k, k))
    for i in range(k):
        H[i, i] = ((fp[i] - fx) + (fm[i] - fx)) / delta ** 2
        for j in range(i):
            ei, ej = np.zeros(k), np.zeros(k)
            ei[i] = ej[j] = delta
            H[i, j] = H[j, i] = ((f(x + ei + ej) - f(x + ei - ej)) - (f(x - ei + ej) - f(x - ei - ej))) \
                / (4.0 * delta ** 2)
    return g, H


@dataclass(eq=False)
class GlmerFit(LmerFit):
    """A fitted generalized linear mixed model (lme4's ``glmerMod``).

    Attributes beyond :class:`LmerFit`'s
    -------------------------------------
    family : Family
    nAGQ : int
    response : GLMResponse
        ``y``, prior weights, trials, offset.
    state : PIRLSState
        The conditional mode at the estimates (``u``, ``eta``, ``mu``,
        working weights).
    criterion : GLMMCriterion
        The deviance as a function of ``(theta, beta)`` (for the Hessian and
        profiles).
    params : ndarray
        ``(theta, beta)`` at the optimum.
    stage1 : OptimizeResult or None
        The ``theta``-only optimisation of stage 1.
    """

    response: GLMResponse | None = None
    family: Family | None = None
    nAGQ: int = 1
    criterion: GLMMCriterion | None = None
    state: PIRLSState | None = None
    glm_data: GLMData | None = None
    stage1: OptimizeResult | None = None
    params: np.ndarray | None = None

    # ------------------------------------------------------------ the criterion
    @property
    def REML(self) -> bool:
        return False

    @property
    def sigma(self) -> float:
        """1: the binomial and Poisson families have no scale parameter."""
        return 1.0

    @property
    def npar(self) -> int:
        """Number of parameters: fixed effects and ``theta``."""
        return self.mf.p + len(self.opt.theta)

    @property
    def df_resid(self) -> int:
        """Residual degrees of freedom ``nobs - npar`` (lme4's ``df.residual``)."""
        return self.nobs - self.npar

    @property
    def saturated_constant(self) -> float:
        """``-2 log p(y | mu = y)``: what lme4's quadrature deviance (nAGQ > 1) leaves out."""
        return self.response.saturated_constant

    @property
    def loglik_full(self) -> float:
        """The log-likelihood with every constant: ``loglik`` for nAGQ <= 1, ``loglik - saturated_constant / 2`` for nAGQ > 1."""
        return self.loglik - (0.5 * self.saturated_constant if self.nAGQ > 1 else 0.0)

    @cached_property
    def deviance(self) -> float:
        """Sum of the squared deviance residuals at the conditional modes (lme4's ``deviance`` of a GLMM)."""
        return self.response.deviance(self.state.mu)

    @property
    def response_kind(self) -> str:
        """What ``anova`` compares: the family, and whether the deviance omits the saturated constant."""
        return f"{self.family} ({'Laplace' if self.nAGQ <= 1 else 'adaptive Gauss-Hermite'})"

    # ------------------------------------------------------------ solution
    @cached_property
    def solution(self) -> PLSSolution:
        s = self.state
        RX = self.RX
        return PLSSolution(theta=s.theta, beta=s.beta, u=s.u, gamma=s.gamma, pwrss=s.pdev, logdet_L=s.logdet_L,
                           logdet_RX=float(2.0 * np.log(np.abs(np.diag(RX))).sum()) if len(RX) else 0.0, RX=RX)

    @cached_property
    def RX(self) -> np.ndarray:
        """``R_X`` with the working weights at the mode (lower triangular, p x p)."""
        return self.criterion.RX(self.state)

    # ------------------------------------------------------------ derivatives and vcov
    def _deviance_at(self, params) -> float:
        return self.criterion.objective(params)

    def _exact_gradient(self, params):
        return self.criterion.objective_and_gradient(params)[1]

    @cached_property
    def _derivs(self):
        h, x = self.control.hessian_step, self.params
        g = self._exact_gradient(x)
        if g is not None:  # central differences of the exact gradient: 2k PIRLS solutions
            cols = []
            for j in range(len(x)):
                e = np.zeros(len(x))
                e[j] = h
                cols.append((self._exact_gradient(x + e) - self._exact_gradient(x - e)) / (2 * h))
            H = np.column_stack(cols)
            H = 0.5 * (H + H.T)
        else:  # lme4's deriv12 on the deviance
            g, H = deriv12(self._deviance_at, x, h, fx=self.objective)
        self.criterion.pirls(self.state.theta, self.state.beta)  # leave the criterion at the mode
        return g, H

    def gradient(self) -> np.ndarray:
        """Gradient of the deviance in ``(theta, beta)`` at the estimates.

        In closed form where :func:`mmbook.engine.glmm_gradient.laplace_gradient` applies (canonical
        links, Laplace), else by central differences (lme4's ``deriv12``, step ``control.hessian_step``).
        """
        if "_derivs" in self.__dict__:
            return self._derivs[0]
        g = self._exact_gradient(self.params)
        if g is None:
            g, _ = deriv12(self._deviance_at, self.params, self.control.hessian_step, hessian=False)
        self.criterion.pirls(self.state.theta, self.state.beta)
        return g

    def hessian(self) -> np.ndarray:
        """Hessian of the deviance in ``(theta, beta)`` at the estimates (lme4's ``optinfo$derivs$Hessian``):
        central differences of the exact gradient where there is one, else lme4's ``deriv12``."""
        return self._derivs[1]

    @cached_property
    def vcov_rx(self) -> pd.DataFrame:
        """``(R_X R_X')^{-1}``: the covariance of ``beta`` given ``theta`` (lme4's ``vcov(use.hessian = FALSE)``)."""
        RX = self.RX
        RXinv = np.linalg.solve(RX, np.eye(len(RX))) if len(RX) else RX
        names = list(self.mf.xnames)
        return pd.DataFrame(RXinv.T @ RXinv, index=names, columns=names)

    @cached_property
    def vcov(self) -> pd.DataFrame:
        """Covariance of the fixed-effects estimates, lme4's ``vcov`` of a GLMM.

        ``2 [H^{-1}]_{beta beta}`` with ``H`` the finite-difference Hessian of
        the deviance in ``(theta, beta)`` (``control.use_hessian``, lme4's
        default), so that the uncertainty of ``theta`` is accounted for;
        else, and when ``H`` is not positive definite (with a warning), or
        for ``nAGQ = 0``, :attr:`vcov_rx`.
        """
        if not self.control.use_hessian or self.nAGQ == 0 or self.mf.p == 0:
            return self.vcov_rx
        k = len(self.opt.theta)
        V = None
        try:
            Hinv = np.linalg.inv(self.hessian())
            V = Hinv[k:, k:] + Hinv[k:, k:].T
            if not np.all(np.isfinite(V)) or np.min(np.linalg.eigvalsh(V)) <= 0:
                V = None
        except np.linalg.LinAlgError:
            V = None
        if V is None:
            warnings.warn("the variance-covariance matrix from the finite-difference Hessian is not positive "
                          "definite or contains NA values: falling back to the one from R_X", RuntimeWarning,
                          stacklevel=3)
            return self.vcov_rx
        names = list(self.mf.xnames)
        return pd.DataFrame(V, index=names, columns=names)

    # ------------------------------------------------------------ random part
    @cached_property
    def varcorr(self) -> pd.DataFrame:
        """Variance components as R's ``as.data.frame(VarCorr(fit))`` (no residual row)."""
        return LmerFit.varcorr.func(self).iloc[:-1].reset_index(drop=True)

    # ------------------------------------------------------------ fitted values and residuals
    @cached_property
    def fitted(self) -> pd.Series:
        """Fitted means ``mu = g^{-1}(eta)`` at the conditional modes (lme4's ``fitted``)."""
        return pd.Series(self.state.mu, index=self.mf.frame.index, name="fitted")

    @cached_property
    def eta(self) -> np.ndarray:
        """Linear predictor ``X beta + Z b + offset`` at the conditional modes."""
        return self.state.eta

    def resid(self, type: str = "deviance") -> pd.Series:
        """Residuals of one type (R's ``resid``/``residuals`` of a glmerMod).

        ``"deviance"``: ``sign(y - mu) sqrt(w d(y, mu))``; ``"pearson"``:
        ``(y - mu) sqrt(w / V(mu))``; ``"response"``: ``y - mu``;
        ``"working"``: ``(y - mu) / (d mu / d eta)``.
        """
        y, mu, eta = self.response.y, self.state.mu, self.state.eta
        if type == "deviance":
            d = np.sqrt(np.maximum(self.response.dev_resid(mu), 0.0))
            r = np.where(y > mu, d, -d)
        elif type == "pearson":
            r = (y - mu) * np.sqrt(self.response.weights / self.family.variance(mu))
        elif type == "response":
            r = y - mu
        elif type == "working":
            r = (y - mu) / self.family.link.mu_eta(eta)
        else:
            raise ValueError(f"type must be 'deviance', 'pearson', 'response' or 'working', got {type!r}")
        return pd.Series(r, index=self.mf.frame.index, name=f"{type} residuals")

    @cached_property
    def residuals(self) -> pd.Series:
        """Deviance residuals (lme4's default type for a GLMM); see :meth:`resid` for the others."""
        return self.resid("deviance")

    @property
    def scaled_residuals(self) -> pd.Series:
        """Pearson residuals (what lme4's summary shows as "Scaled residuals" for a GLMM)."""
        return self.resid("pearson")

    # ------------------------------------------------------------ methods
    def predict(self, newdata: pd.DataFrame | None = None, re_form="all", allow_new_levels: bool = False,
                type: str = "link", offset=None) -> pd.Series:
        """Predictions on the link or the response scale (lme4's ``predict.merMod``).

        Parameters
        ----------
        newdata : DataFrame, optional
            Default: the data of the fit.
        re_form : "all" or None
            With (``"all"``) or without (None) the random effects.
        allow_new_levels : bool
            Levels not seen in the fit get random effects of zero.
        type : {"link", "response"}
            ``eta`` or ``mu = g^{-1}(eta)``.
        offset : str or array_like, optional
            For ``newdata``: an offset to add. The formula's ``offset()``
            terms are evaluated on ``newdata``; as in lme4, the ``offset=``
            argument of the fit is not (it belongs to the fitted rows).
        """
        if type not in ("link", "response"):
            raise ValueError(f"type must be 'link' or 'response', got {type!r}")
        if newdata is None:
            if re_form not in ("all", None, "NA", "~0"):
                raise ValueError("re_form must be 'all' (all random effects) or None (fixed effects only)")
            eta = self.state.eta if re_form == "all" else self.mf.X @ self.beta + self.response.offset
            index = self.mf.frame.index
            if offset is not None:
                raise ValueError("offset applies to newdata; the fit's own rows use the fit's offset")
        else:
            eta = predict_eta(self, newdata, re_form=re_form, allow_new_levels=allow_new_levels).to_numpy()
            for expr in self.glm_data.offset_terms:
                eta = eta + eval_expression(expr, newdata, "offset")
            if offset is not None:
                eta = eta + (eval_expression(offset, newdata, "offset") if isinstance(offset, str)
                             else np.asarray(offset, dtype=float).reshape(-1))
            index = newdata.index
        values = eta if type == "link" else self.family.link.linkinv(eta)
        return pd.Series(values, index=index, name="predicted")

    def simulate(self, nsim: int = 1, seed=None) -> pd.DataFrame:
        """Responses simulated from the fitted model (lme4's ``simulate.merMod``).

        Each column draws new random effects ``b* = Lambda u*``,
        ``u* ~ N(0, I)``, and responses from the family at
        ``mu* = g^{-1}(X beta + Z b* + offset)``: proportions of the trials
        for binomial data (0/1 for one trial; R's ``y`` scale), counts for
        Poisson data.

        Raises
        ------
        ValueError
            Binomial prior weights that are not whole numbers.
        """
        if int(nsim) != nsim or nsim < 1:
            raise ValueError(f"nsim must be a positive integer, got {nsim!r}")
        nsim = int(nsim)
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        eta = self.mf.X @ self.beta + self.response.offset
        Eta = np.repeat(eta[None, :], nsim, axis=0)
        for k, t in enumerate(self.terms):
            u = rng.standard_normal((nsim, t.nlevels, t.q))
            b = u @ self.T(k).T
            Eta += np.einsum("nq,snq->sn", t.z, b[:, t.refs, :])
        mu = self.family.link.linkinv(Eta)
        w = self.response.weights
        if self.family.name == "binomial" and np.any(np.abs(w - np.rint(w)) > 1e-8):
            raise ValueError("cannot simulate binomial responses with prior weights that are not whole numbers")
        Y = self.family.simulate(mu, w, w, rng)
        return pd.DataFrame(Y.T, index=self.mf.frame.index, columns=[f"sim_{i + 1}" for i in range(nsim)])

    def confint(self, method: str = "Wald", level: float = 0.95, **kwargs) -> pd.DataFrame:
        """Confidence intervals; see :func:`mmbook.engine.glmm_intervals.glmm_confint`."""
        return glmm_confint(self, method=method, level=level, **kwargs)

    def icc(self) -> float:
        raise ValueError("icc() is defined for linear mixed models; for a GLMM the intraclass correlation "
                         "depends on the scale (e.g. tau^2 / (tau^2 + pi^2/3) on the logit scale)")

    def refit_ml(self) -> "GlmerFit":
        """A GLMM is fitted by maximum likelihood already: the fit itself."""
        return self

    def summary(self) -> str:
        return glmm_summary_text(self)

    def __repr__(self) -> str:
        method = "Laplace" if self.nAGQ == 1 else f"nAGQ = {self.nAGQ}"
        return (f"<GlmerFit {self.formula!r}: {self.family}, {method}, logLik {self.loglik:.4f}, "
                f"n={self.nobs}>")

    def _repr_html_(self) -> str:
        return glmm_summary_html(self)
