"""Penalized iteratively reweighted least squares, and the deviance of a GLMM.

For a generalized linear mixed model the likelihood is an integral over the
spherical random effects ``u``,

.. math::  L(\\theta, \\beta) = \\int p(y \\mid u)\\,
           \\frac{e^{-\\|u\\|^2/2}}{(2\\pi)^{q/2}}\\, du ,
           \\qquad \\eta = X\\beta + Z\\Lambda_\\theta u + o ,

with no closed form. lme4 (Bates et al. 2015; the ``glmer`` vignette) and
mmbook approximate it at the conditional mode ``u~`` of ``u``, the minimiser
of the *penalized deviance* ``sum_i w_i d(y_i, mu_i) + ||u||^2``. The mode is
found by penalized iteratively reweighted least squares (PIRLS): each step
solves the penalized weighted least squares problem of
:class:`mmbook.engine.pls.PLS` for the working response
``z = eta - o + (y - mu) / (d mu / d eta)`` with the working weights ``W``
(:class:`mmbook.engine.glmm_response.GLMResponse`), reweighting the predictor
through its one seam, :meth:`PLS.reweight`; a step that does not decrease the
penalized deviance is halved, and PIRLS raises :class:`PIRLSError` when
halving does not help.

Two forms of the problem, as lme4's ``pwrssUpdate``:

* ``beta`` profiled (stage 1, lme4's nAGQ = 0): the PLS with ``X`` gives ``u``
  and ``beta`` jointly;
* ``beta`` given (stage 2): a PLS on ``Z`` alone (its ``X`` has no columns),
  with ``X beta`` moved into the offset.

At the mode,

* the Laplace deviance is ``-2 log p(y | mu~) + ||u~||^2 + log |L_theta|^2``;
* for one scalar random-effects term, adaptive Gauss-Hermite quadrature with
  ``K`` nodes ``z_k`` and weights ``w_k`` (for the standard normal) gives,
  per level ``j`` with ``s_j = 1 / L_jj``,

  .. math::  -2\\log L \\approx \\sum_j \\Big[ D_j(\\tilde u_j) + \\log L_{jj}^2
     - 2 \\log \\sum_k w_k\\, e^{z_k^2/2}\\,
       e^{-(D_j(\\tilde u_j + z_k s_j) - D_j(\\tilde u_j))/2} \\Big],

  with ``D_j(u) = u^2 + sum_{i in j} w_i d(y_i, mu_i)`` (lme4's ``glmerAGQ``,
  which leaves out the saturated constant; see
  :attr:`GLMResponse.saturated_constant`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
import scipy.linalg as sla

from .design import ModelFrame
from .glmm_control import GlmerControl, PIRLSError
from .glmm_gradient import laplace_gradient
from .glmm_response import GLMResponse
from .pls import PLS

__all__ = ["PIRLSState", "GLMMCriterion", "gh_rule"]


@lru_cache(maxsize=None)
def gh_rule(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Hermite nodes and weights for the standard normal density (lme4's ``GHrule``).

    ``sum_k w_k f(z_k)`` approximates ``E f(Z)``, ``Z ~ N(0, 1)``, exactly for
    polynomials of degree up to ``2k - 1``; the weights sum to 1.
    """
    z, w = np.polynomial.hermite_e.hermegauss(k)
    w = w / np.sqrt(2.0 * np.pi)
    z.flags.writeable = w.flags.writeable = False
    return z, w


@dataclass
class PIRLSState:
    """The conditional mode and everything the deviance needs at it.

    Attributes
    ----------
    theta, beta : ndarray
    u, gamma : list of ndarray
        Spherical and data-scale random effects per term, each (nlevels, q).
    eta, mu, sqrtw : ndarray, shape (n,)
        Linear predictor (offset included), means, square roots of the
        working weights at the mode.
    deviance : float
        Sum of the squared deviance residuals at the mode.
    pdev : float
        Penalized deviance ``deviance + ||u||^2``.
    logdet_L : float
        ``log |L_theta|^2`` with the working weights at the mode.
    iterations, halvings : int
    """

    theta: np.ndarray
    beta: np.ndarray
    u: list
    gamma: list
    eta: np.ndarray
    mu: np.ndarray
    sqrtw: np.ndarray
    deviance: float
    pdev: float
    logdet_L: float
    iterations: int
    halvings: int

    @property
    def sqrL(self) -> float:
        """``||u||^2``."""
        return float(sum(np.sum(uk * uk) for uk in self.u))


def _sqr(u) -> float:
    return float(sum(np.sum(uk * uk) for uk in u))


class GLMMCriterion:
    """The deviance of a GLMM as a function of ``theta`` (stage 1) or of ``(theta, beta)`` (stage 2).

    Parameters
    ----------
    mf : ModelFrame
        ``X`` and the random-effects terms (``mf.y`` is not used: the
        response is ``response.y``).
    response : GLMResponse
    control : GlmerControl
    nAGQ : int
        1: Laplace; > 1: adaptive Gauss-Hermite quadrature with that many
        nodes (one scalar random-effects term only).

    Notes
    -----
    Every evaluation starts PIRLS from the conditional mode of the previous
    one (``u`` and, in stage 1, ``beta``), which a nearby ``theta`` or
    ``beta`` changes little: one or two steps then reach the new mode. The
    result does not depend on the start beyond rounding, since PIRLS is run
    to ``control.tol_pirls``.
    """

    def __init__(self, mf: ModelFrame, response: GLMResponse, control: GlmerControl, nAGQ: int = 1):
        self.mf, self.response, self.control, self.nAGQ = mf, response, control, int(nAGQ)
        self.X, self.terms = mf.X, mf.terms
        self.n, self.p = mf.n, mf.p
        self.joint = PLS(mf, REML=False)
        self.uonly = PLS(replace(mf, X=np.zeros((mf.n, 0)), xnames=[]), REML=False)
        self.lower = self.joint.lower
        self.theta0 = self.joint.theta0
        self.ntheta = len(self.theta0)
        if self.nAGQ > 1 and (len(self.terms) != 1 or self.terms[0].q != 1):
            raise ValueError("nAGQ > 1 is only available for models with a single, scalar random-effects term, "
                             "such as (1 | g); use nAGQ = 1 (Laplace)")
        fam = response.family
        # the closed-form gradient (glmm_gradient): canonical links and the Laplace deviance
        self.has_gradient = self.nAGQ <= 1 and (fam.name, fam.link.name) in (("binomial", "logit"),
                                                                            ("poisson", "log"))
        self.warm: PIRLSState | None = None
        self.last_error: str | None = None  # the last PIRLSError an objective turned into inf
        self.evaluations = 0
        self.pirls_iterations = 0

    # ------------------------------------------------------------ pieces
    def gamma(self, theta: np.ndarray, u: list) -> list:
        """``b = Lambda_theta u`` per term."""
        return [uk @ self.joint.T(k, theta).T for k, uk in enumerate(u)]

    def Zgamma(self, gamma: list) -> np.ndarray:
        """``Z b``: the random part of the linear predictor, shape (n,)."""
        out = np.zeros(self.n)
        for t, g in zip(self.terms, gamma):
            for a in range(t.q):  # one gather per column: several times faster than g[refs] on (n, q)
                out += t.z[:, a] * np.take(g[:, a], t.refs)
        return out

    # ------------------------------------------------------------ PIRLS
    def pirls(self, theta, beta=None, start: PIRLSState | None = None) -> PIRLSState:
        """The conditional mode at ``theta`` (and ``beta``, else ``beta`` at the joint mode).

        Parameters
        ----------
        theta : array_like
        beta : array_like, optional
            Given fixed effects (stage 2); None: profiled with ``u`` (stage 1).
        start : PIRLSState, optional
            Where to start (default: the last mode found; the first call
            starts from the family's starting means, R's ``mustart``).

        Raises
        ------
        PIRLSError
            A step that no halving makes decrease the penalized deviance, a
            non-finite penalized deviance, a singular system, or no
            convergence in ``control.maxit_pirls`` iterations.
        """
        theta = np.asarray(theta, dtype=float)
        resp, ctl = self.response, self.control
        profiled = beta is None
        pls = self.joint if profiled else self.uonly
        base = resp.offset if profiled else resp.offset + self.X @ np.asarray(beta, dtype=float)
        start = self.warm if start is None else start
        u = b = None
        if start is not None:
            u = [uk.copy() for uk in start.u]
            b = start.beta.copy() if profiled else np.asarray(beta, dtype=float)
            gamma = self.gamma(theta, u)
            eta = base + (self.X @ b if profiled else 0.0) + self.Zgamma(gamma)
            mu = resp.mu(eta)
            dev = resp.deviance(mu)
            pdev = dev + _sqr(u)
            if not np.isfinite(pdev):
                u = None
        if u is None:
            mu = resp.mustart()
            eta = resp.family.link.linkfun(mu)
            dev = pdev = np.inf
        halvings, stalls, prev_step = 0, 0, np.inf
        for it in range(1, ctl.maxit_pirls + 1):
            sqrtw, r = resp.working(eta, mu)
            pls.reweight(sqrtw, eta - base + r)
            try:
                sol = pls.solve(theta)
            except (np.linalg.LinAlgError, sla.LinAlgError, ValueError) as exc:
                raise PIRLSError(f"PIRLS: the penalized least squares system is singular at theta = {theta} "
                                 f"({exc})") from None
            b_new = sol.beta if profiled else np.asarray(beta, dtype=float)
            eta_new = base + (self.X @ b_new if profiled else 0.0) + self.Zgamma(sol.gamma)
            # the change of the linear predictor, and of u (which a zero theta hides from eta)
            step = float(np.max(np.abs(eta_new - eta)))
            if u is not None:
                step = max(step, max(float(np.max(np.abs(a - c))) for a, c in zip(u, sol.u)))
            converged = u is not None and step <= ctl.tol_pirls * (1.0 + float(np.max(np.abs(eta))))
            if converged or stalls >= 3:
                logdet_L = sol.logdet_L
                if converged:
                    # take the last (tiny) Newton step: the mode to about step^2; then log|L|^2
                    # at its weights, so the deviance carries no error of the order of the step
                    u, gamma, b, eta = sol.u, sol.gamma, b_new, eta_new
                    mu = resp.mu(eta)
                    dev = resp.deviance(mu)
                    pdev = dev + _sqr(u)
                    sqrtw, r = resp.working(eta, mu)
                    pls.reweight(sqrtw, eta - base + r)
                    logdet_L = pls.factor(theta, full=False).logdet_L
                self.pirls_iterations += it
                state = PIRLSState(theta=theta.copy(), beta=np.array(b, dtype=float), u=u, gamma=gamma, eta=eta,
                                   mu=mu, sqrtw=sqrtw, deviance=dev, pdev=pdev, logdet_L=logdet_L,
                                   iterations=it, halvings=halvings)
                self.warm = state
                return state
            u_new, gamma_new = sol.u, sol.gamma
            mu_new = resp.mu(eta_new)
            dev_new = resp.deviance(mu_new)
            pdev_new = dev_new + _sqr(u_new)
            # near the mode the penalized deviance changes by less than its rounding error, and
            # comparing values cannot place u more closely than ~sqrt(rounding): there the full
            # Newton step is taken; a step is halved only when it raises the deviance beyond that
            noise = 1e-11 * (1.0 + abs(pdev)) if np.isfinite(pdev) else np.inf
            if u is not None and not pdev_new <= pdev + noise:
                for _ in range(ctl.max_step_halvings):
                    halvings += 1
                    u_new = [0.5 * (a + c) for a, c in zip(u, u_new)]
                    gamma_new = [0.5 * (a + c) for a, c in zip(gamma, gamma_new)]
                    b_new = 0.5 * (b + b_new)
                    eta_new = 0.5 * (eta + eta_new)
                    mu_new = resp.mu(eta_new)
                    dev_new = resp.deviance(mu_new)
                    pdev_new = dev_new + _sqr(u_new)
                    if pdev_new <= pdev + noise:
                        break
                else:
                    raise PIRLSError(
                        f"PIRLS: {ctl.max_step_halvings} step-halvings failed to reduce the penalized deviance "
                        f"(from {pdev:.10g}) at theta = {np.round(theta, 6)}"
                        + ("" if profiled else f", beta = {np.round(np.asarray(beta), 6)}"))
            elif not np.isfinite(pdev_new):
                raise PIRLSError(f"PIRLS: the penalized deviance is not finite at theta = {np.round(theta, 6)}")
            # complete separation: the deviance creeps towards its infimum while eta grows without
            # bound, and the steps do not shrink as Newton's do near a mode; after three such
            # steps the current point is taken (the fit then warns about fitted probabilities 0 or 1)
            creeping = u is not None and pdev - pdev_new <= 1e-12 * abs(pdev_new) and step >= 0.5 * prev_step
            stalls = stalls + 1 if creeping else 0
            prev_step = step
            u, gamma, b, eta, mu, dev, pdev = u_new, gamma_new, b_new, eta_new, mu_new, dev_new, pdev_new
        raise PIRLSError(f"PIRLS did not converge in {ctl.maxit_pirls} iterations at theta = {np.round(theta, 6)}"
                         " (complete separation of the responses?)")

    def RX(self, state: PIRLSState) -> np.ndarray:
        """``R_X`` at the working weights of a mode: ``(R_X R_X')^{-1}`` is lme4's ``vcov(use.hessian = FALSE)``."""
        self.joint.reweight(state.sqrtw, self.working_response(state))
        return self.joint.factor(state.theta, full=False).RX.copy()

    def working_response(self, state: PIRLSState, beta_given: bool = False) -> np.ndarray:
        """PIRLS's working response at a mode, ``eta - o + (y - mu) / (d mu / d eta)``
        (with ``X beta`` in the offset when ``beta_given``)."""
        resp = self.response
        base = resp.offset + (self.X @ state.beta if beta_given else 0.0)
        return state.eta - base + (resp.y - state.mu) / resp.family.link.mu_eta(state.eta)

    # ------------------------------------------------------------ deviances
    def laplace(self, state: PIRLSState) -> float:
        """Laplace deviance at a mode: ``-2 log p(y | mu~) + ||u~||^2 + log|L|^2``."""
        return self.response.laplace(state.logdet_L, state.sqrL, state.mu, state.deviance)

    def agq(self, state: PIRLSState, nAGQ: int | None = None) -> float:
        """Adaptive Gauss-Hermite deviance (lme4's ``glmerAGQ``) at a mode, one scalar term."""
        k = self.nAGQ if nAGQ is None else int(nAGQ)
        t = self.terms[0]
        m, refs, z = t.nlevels, t.refs, t.z[:, 0]
        th = float(state.theta[0])
        Ljj = np.sqrt(th * th * np.bincount(refs, (state.sqrtw * z) ** 2, minlength=m) + 1.0)
        sd = 1.0 / Ljj
        u0 = state.u[0][:, 0]
        resp = self.response
        devc0 = u0 * u0 + np.bincount(refs, resp.dev_resid(state.mu), minlength=m)
        mult = np.zeros(m)
        nodes, weights = gh_rule(k)
        for zk, wk in zip(nodes, weights):
            if zk == 0.0:
                mult += wk
                continue
            shift = zk * sd
            eta = state.eta + th * z * shift[refs]
            devc = (u0 + shift) ** 2 + np.bincount(refs, resp.dev_resid(resp.mu(eta)), minlength=m)
            mult += wk * np.exp(0.5 * zk * zk - 0.5 * (devc - devc0))
        return float(devc0.sum() + 2.0 * np.log(Ljj).sum() - 2.0 * np.log(mult).sum())

    def value(self, state: PIRLSState, stage: int = 2) -> float:
        """The deviance at a mode: Laplace, or AGQ in stage 2 when ``nAGQ > 1``."""
        if stage == 2 and self.nAGQ > 1:
            return self.agq(state)
        return self.laplace(state)

    # ------------------------------------------------------------ objectives
    def split(self, params):
        params = np.asarray(params, dtype=float)
        return params[:self.ntheta], params[self.ntheta:]

    def objective_theta(self, theta) -> float:
        """Stage 1 (lme4's nAGQ = 0 criterion): the Laplace deviance with ``beta`` at the joint mode.

        ``inf`` where PIRLS fails (outside the criterion's domain, for the optimizer).
        """
        self.evaluations += 1
        try:
            return self.laplace(self.pirls(theta))
        except PIRLSError as exc:
            self.last_error = str(exc)
            return np.inf

    def objective_theta_and_gradient(self, theta):
        """Stage 1 with the gradient in ``theta`` (None where the closed form does not apply)."""
        self.evaluations += 1
        try:
            state = self.pirls(theta)
        except PIRLSError as exc:
            self.last_error = str(exc)
            return np.inf, None
        return self.laplace(state), laplace_gradient(self, state, profiled=True)

    def objective_and_gradient(self, params):
        """Stage 2 with the gradient: ``(deviance, gradient)``, the gradient None where the closed
        form of :func:`mmbook.engine.glmm_gradient.laplace_gradient` does not apply."""
        self.evaluations += 1
        theta, beta = self.split(params)
        try:
            state = self.pirls(theta, beta)
        except PIRLSError as exc:
            self.last_error = str(exc)
            return np.inf, None
        return self.value(state), laplace_gradient(self, state)

    def objective(self, params) -> float:
        """Stage 2: the Laplace (or AGQ) deviance of ``params = (theta, beta)``; ``inf`` where PIRLS fails."""
        self.evaluations += 1
        theta, beta = self.split(params)
        try:
            return self.value(self.pirls(theta, beta))
        except PIRLSError as exc:
            self.last_error = str(exc)
            return np.inf
