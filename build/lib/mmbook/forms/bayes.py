"""A Gibbs sampler for the Bayesian linear mixed model, with ArviZ output.

The model (one grouping factor with ``m`` levels, ``q`` random effects per
level) is

.. math::

    y \\mid \\beta, \\gamma, \\sigma &\\sim N(X\\beta + Z\\gamma,\\ \\sigma^2 I_n), \\\\
    \\gamma_c \\mid \\psi &\\sim N(0, \\psi), \\qquad c = 1, \\dots, m, \\\\
    \\beta &\\sim N(0, v I_p), \\\\
    \\sigma &\\sim \\text{Half-Cauchy}(0, r), \\\\
    \\psi &\\sim \\text{Huang-Wand}(\\nu, A_1, \\dots, A_q).

The last line is the prior of Huang and Wand (2013): given auxiliary
variables ``a_k``,

.. math::

    \\psi \\mid a \\sim \\text{Inverse-Wishart}\\big(\\nu + q - 1,\\ 2\\nu\\,
    \\mathrm{diag}(1/a_1, \\dots, 1/a_q)\\big), \\qquad
    a_k \\sim \\text{Inverse-Gamma}(1/2,\\ 1/A_k^2),

which gives each standard deviation ``tau_k = sqrt(psi_kk)`` a half-t prior
with ``nu`` degrees of freedom and scale ``A_k`` and, for ``nu = 2``, every
correlation a uniform prior on (-1, 1). For ``q = 1`` it is a prior on
``tau`` alone; ``nu = 1`` makes it half-Cauchy. The half-Cauchy prior on
``sigma`` is the same construction with ``q = 1, nu = 1``:
``sigma^2 | b ~ Inverse-Gamma(1/2, 1/b)``, ``b ~ Inverse-Gamma(1/2, 1/r^2)``.
Both are conditionally conjugate, so every Gibbs step draws from a standard
distribution. Inverse-Gamma(alpha, beta) has density proportional to
``x^(-alpha-1) exp(-beta/x)``; Inverse-Wishart(df, S) has density
proportional to ``|psi|^(-(df+q+1)/2) exp(-tr(S psi^{-1})/2)``.

One sweep of the sampler draws, in turn,

1. ``(beta, gamma)`` jointly from their normal full conditional (see
   :meth:`BayesLMM.conditional_mean`);
2. ``sigma^2 ~ IG((n + 1)/2, 1/b + ||y - X beta - Z gamma||^2 / 2)``, then
   ``b ~ IG(1, 1/sigma^2 + 1/r^2)``;
3. ``psi ~ IW(nu + q - 1 + m, 2 nu diag(1/a) + sum_c gamma_c gamma_c')``, then
   ``a_k ~ IG((nu + q)/2, nu (psi^{-1})_kk + 1/A_k^2)``.

Everything that depends on ``n`` is formed once (the cross-products
``X'X``, ``X'y``, and per level ``Z_c'Z_c``, ``Z_c'X_c``, ``Z_c'y_c``);
a sweep costs a few vector operations over the levels, except the residual
sum of squares, one pass over the rows.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..engine.design import ModelFrame, model_frame
from ..engine.formula import parse_formula
from ..engine.linalg import chol_blocks, solve_lower_blocks, solve_upper_blocks
from ..extras import require

with warnings.catch_warnings():  # ArviZ announces its refactor once a day with a FutureWarning
    warnings.simplefilter("ignore", FutureWarning)
    az = require("arviz", "bayes")

__all__ = ["Prior", "BayesLMM", "gibbs_lmm"]

_RESERVED_DIMS = {"chain", "draw", "coef", "re_coef", "re_coef2", "re_pair"}


@dataclass(frozen=True)
class Prior:
    """Prior of the Bayesian linear mixed model (see the module docstring).

    Attributes
    ----------
    beta_var : float
        ``v``, the prior variance of each fixed effect, ``beta ~ N(0, v I)``.
        ``numpy.inf`` gives the flat prior.
    sigma_scale : float or None
        ``r``, the scale of the half-Cauchy prior on ``sigma``. None: the
        standard deviation of ``y``.
    psi_scale : sequence of float or None
        ``A_1, ..., A_q``, the scales of the half-t priors on the random-effect
        standard deviations. None: ``sd(y) / sd(z_k)`` for a random-effect
        column ``z_k`` that varies, ``sd(y)`` for a constant (intercept)
        column: the size of effect that would move the response by one
        standard deviation.
    psi_df : float
        ``nu``, the degrees of freedom of the half-t priors (1: half-Cauchy;
        2: uniform priors on the correlations).
    """

    beta_var: float = 1e6
    sigma_scale: float | None = None
    psi_scale: tuple | None = None
    psi_df: float = 2.0

    def __post_init__(self):
        v = _number(self.beta_var, "beta_var")
        if not v > 0:
            raise ValueError(f"beta_var must be positive (numpy.inf for a flat prior), got {v}")
        if self.sigma_scale is not None:
            r = _number(self.sigma_scale, "sigma_scale")
            if not (r > 0 and np.isfinite(r)):
                raise ValueError(f"sigma_scale must be a positive finite number, got {r}")
        if self.psi_scale is not None:
            try:
                A = np.atleast_1d(np.asarray(self.psi_scale, dtype=float))
            except (TypeError, ValueError):
                raise TypeError(f"psi_scale must be numbers, one per random effect, got {self.psi_scale!r}") from None
            if A.ndim != 1 or not np.all((A > 0) & np.isfinite(A)):
                raise ValueError(f"psi_scale must be positive finite numbers, one per random effect, "
                                 f"got {self.psi_scale!r}")
            object.__setattr__(self, "psi_scale", tuple(float(a) for a in A))
        nu = _number(self.psi_df, "psi_df")
        if not (nu > 0 and np.isfinite(nu)):
            raise ValueError(f"psi_df must be a positive finite number, got {nu}")


def _number(x, name: str) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {x!r}") from None


def _inv_gamma(rng: np.random.Generator, shape: float, rate: float) -> float:
    """One draw from Inverse-Gamma(shape, rate): ``rate / Gamma(shape, 1)``."""
    return rate / rng.gamma(shape)


def _inv_wishart(rng: np.random.Generator, df: float, S: np.ndarray) -> np.ndarray:
    """One draw from Inverse-Wishart(df, S) by Bartlett's decomposition.

    With ``S = K K'`` and ``A`` lower triangular, ``A_ii^2 ~ chi^2(df - i)``
    (``i = 0, ..., q-1``) and ``A_ij ~ N(0, 1)`` below the diagonal,
    ``psi^{-1} = K'^{-1} A A' K^{-1} ~ Wishart(df, S^{-1})``, so
    ``psi = N N'`` with ``N = K A'^{-1}``.
    """
    q = S.shape[0]
    A = np.zeros((q, q))
    A[np.diag_indices(q)] = np.sqrt(rng.chisquare(df - np.arange(q)))
    rows, cols = np.tril_indices(q, -1)
    A[rows, cols] = rng.standard_normal(len(rows))
    K = np.linalg.cholesky(S)
    N = K @ np.linalg.inv(A).T
    return N @ N.T


class BayesLMM:
    """The Bayesian linear mixed model of one formula and data set, ready to sample.

    Parameters
    ----------
    formula : str
        An lme4 formula with exactly one random-effects term, e.g.
        ``"Reaction ~ Days + (Days | Subject)"``.
    data : pandas.DataFrame
    prior : Prior, optional

    Attributes
    ----------
    mf : ModelFrame
    n, p, q, m : int
        Observations, fixed effects, random effects per level, levels.
    sigma_scale : float
        ``r`` in use.
    psi_scale : ndarray, shape (q,)
        ``A_k`` in use.
    """

    def __init__(self, formula: str, data: pd.DataFrame, prior: Prior | None = None):
        if prior is None:
            prior = Prior()
        elif not isinstance(prior, Prior):
            raise TypeError(f"prior must be a mmbook.forms.bayes.Prior, got {type(prior).__name__}")
        f = parse_formula(formula)
        if len(f.random) != 1:
            what = "no random-effects term" if not f.random else \
                f"{len(f.random)} random-effects terms ({', '.join('(' + b.text + ')' for b in f.random)})"
            raise ValueError(f"the Gibbs sampler supports exactly one random-effects term, such as "
                             f"(Days | Subject); {formula!r} has {what}")
        mf = model_frame(f, data, drop_rank=True, stacklevel=3)
        self.mf: ModelFrame = mf
        self.prior = prior
        term = mf.terms[0]
        self.term = term
        X, y, z, refs = mf.X, mf.y, term.z, term.refs
        self.n, self.p, self.q, self.m = mf.n, mf.p, term.q, term.nlevels

        sd_y = float(np.std(y, ddof=1))
        if not sd_y > 0:
            raise ValueError("the response is constant: there is nothing to model")
        self.sigma_scale = float(prior.sigma_scale) if prior.sigma_scale is not None else sd_y
        if prior.psi_scale is None:
            sd_z = np.std(z, axis=0, ddof=1)
            self.psi_scale = sd_y / np.where(sd_z > 0, sd_z, 1.0)
        else:
            if len(prior.psi_scale) != self.q:
                raise ValueError(f"psi_scale needs {self.q} values, one per random effect "
                                 f"({', '.join(term.cnames)}), got {len(prior.psi_scale)}")
            self.psi_scale = np.array(prior.psi_scale)

        # cross-products, formed once; per-level blocks element-major (q, q, m) as in mmbook.engine.linalg
        q, p, m = self.q, self.p, self.m
        self.XtX, self.Xty = X.T @ X, X.T @ y
        self.ZtZ = np.empty((q, q, m))
        self.ZtX = np.empty((q, p, m))
        self.Zty = np.empty((q, m))
        for a in range(q):
            for b in range(a + 1):
                self.ZtZ[a, b] = self.ZtZ[b, a] = np.bincount(refs, z[:, a] * z[:, b], minlength=m)
            for c in range(p):
                self.ZtX[a, c] = np.bincount(refs, z[:, a] * X[:, c], minlength=m)
            self.Zty[a] = np.bincount(refs, z[:, a] * y, minlength=m)

    # ------------------------------------------------------------ (beta, gamma)
    def _blocks(self, sigma2: float, psi_inv: np.ndarray):
        """Factor the full conditional's precision by blocks.

        Returns ``L`` (q, q, m) with ``L_c L_c' = D_c = Z_c'Z_c/sigma^2 + psi^{-1}``,
        ``W = L^{-1} Z'X / sigma^2`` (q, p, m), ``w = L^{-1} Z'y / sigma^2`` (q, m),
        the Cholesky factor ``LS`` of the Schur complement
        ``S = X'X/sigma^2 + I/v - sum_c W_c'W_c`` and ``S beta_hat = X'y/sigma^2 - sum_c W_c'w_c``'s
        right-hand side.
        """
        D = self.ZtZ / sigma2 + psi_inv[:, :, None]
        L = chol_blocks(D)
        W = solve_lower_blocks(L, self.ZtX / sigma2)
        w = solve_lower_blocks(L, self.Zty[:, None, :] / sigma2)[:, 0, :]
        S = self.XtX / sigma2 - np.einsum("iam,ibm->ab", W, W)
        if np.isfinite(self.prior.beta_var):
            S[np.diag_indices(self.p)] += 1.0 / self.prior.beta_var
        rhs = self.Xty / sigma2 - np.einsum("iam,im->a", W, w)
        LS = np.linalg.cholesky(S)
        return L, W, w, LS, rhs

    def _draw_beta_gamma(self, sigma2, psi_inv, rng=None):
        """``(beta, gamma)`` from their full conditional; the conditional mean when ``rng`` is None.

        ``beta ~ N(S^{-1} rhs, S^{-1})`` (``gamma`` integrated out), then for
        every level ``gamma_c | beta ~ N(D_c^{-1} Z_c'(y_c - X_c beta)/sigma^2, D_c^{-1})``,
        drawn as ``L_c'^{-1}(L_c^{-1} Z_c'(y_c - X_c beta)/sigma^2 + e_c)``.
        """
        L, W, w, LS, rhs = self._blocks(sigma2, psi_inv)
        t = np.linalg.solve(LS, rhs)
        if rng is not None:
            t = t + rng.standard_normal(self.p)
        beta = np.linalg.solve(LS.T, t)
        v = w - np.einsum("iam,a->im", W, beta)
        if rng is not None:
            v = v + rng.standard_normal((self.q, self.m))
        gamma = solve_upper_blocks(L, v[:, None, :])[:, 0, :]
        return beta, gamma.T.copy()

    def conditional_mean(self, sigma: float, psi) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean of ``(beta, gamma)`` given ``sigma`` and ``psi``.

        It solves the mixed-model equations with the prior precision added,

        .. math::

            \\begin{pmatrix} X'X/\\sigma^2 + I/v & X'Z/\\sigma^2 \\\\
                             Z'X/\\sigma^2 & Z'Z/\\sigma^2 + I_m \\otimes \\psi^{-1} \\end{pmatrix}
            \\begin{pmatrix} \\beta \\\\ \\gamma \\end{pmatrix}
            = \\begin{pmatrix} X'y \\\\ Z'y \\end{pmatrix} / \\sigma^2,

        so with ``beta_var = inf`` it gives the GLS estimate of ``beta`` and the
        conditional modes of ``gamma`` (lme4's ``fixef`` and ``ranef`` at these
        ``sigma`` and ``psi``).

        Returns
        -------
        beta : ndarray, shape (p,)
        gamma : ndarray, shape (m, q)
        """
        sigma, psi = self._check_fixed(sigma, psi)
        return self._draw_beta_gamma(sigma ** 2, np.linalg.inv(psi))

    # ----------------------------------------------------------------- checks
    def _check_fixed(self, sigma, psi):
        if sigma is not None:
            sigma = _number(sigma, "fix_sigma")
            if not (sigma > 0 and np.isfinite(sigma)):
                raise ValueError(f"sigma must be a positive finite number, got {sigma}")
        if psi is not None:
            psi = np.atleast_2d(np.asarray(psi, dtype=float))
            if psi.shape != (self.q, self.q):
                raise ValueError(f"psi must be a {self.q} x {self.q} matrix, got shape {psi.shape}")
            if not np.allclose(psi, psi.T) or np.any(np.linalg.eigvalsh(psi) <= 0):
                raise ValueError("psi must be symmetric positive definite")
        return sigma, psi

    # ------------------------------------------------------- variance steps
    def _draw_sigma2(self, rng, ssr: float, n: int, b: float):
        """``sigma^2 ~ IG((n + 1)/2, 1/b + ssr/2)``, then ``b ~ IG(1, 1/sigma^2 + 1/r^2)``.

        With ``n = 0`` and ``ssr = 0`` the pair of steps samples the half-Cauchy prior.
        """
        sigma2 = _inv_gamma(rng, (n + 1) / 2, 1.0 / b + 0.5 * ssr)
        b = _inv_gamma(rng, 1.0, 1.0 / sigma2 + 1.0 / self.sigma_scale ** 2)
        return sigma2, b

    def _draw_psi(self, rng, gamma: np.ndarray, a: np.ndarray):
        """``psi ~ IW(nu + q - 1 + m, 2 nu diag(1/a) + gamma'gamma)``, then
        ``a_k ~ IG((nu + q)/2, nu (psi^{-1})_kk + 1/A_k^2)``.

        ``gamma`` has one row per level; with no rows the steps sample the prior.
        Returns ``psi``, its inverse and the new ``a``.
        """
        nu, q, A = float(self.prior.psi_df), self.q, self.psi_scale
        psi = _inv_wishart(rng, nu + q - 1 + len(gamma), np.diag(2 * nu / a) + gamma.T @ gamma)
        psi = 0.5 * (psi + psi.T)
        psi_inv = np.linalg.inv(psi)
        a = (nu * np.diag(psi_inv) + 1.0 / A ** 2) / rng.gamma((nu + q) / 2, size=q)
        return psi, psi_inv, a

    # ---------------------------------------------------------------- sampler
    def _chain(self, rng, draws, tune, fix_sigma, fix_psi):
        y, X, z, refs = self.mf.y, self.mf.X, self.term.z, self.term.refs
        n, q = self.n, self.q
        nu, A, r = float(self.prior.psi_df), self.psi_scale, self.sigma_scale
        # dispersed starting values: prior scales times a factor between 1/e and e
        sigma2 = fix_sigma ** 2 if fix_sigma is not None else (r * np.exp(rng.uniform(-1, 1))) ** 2
        psi = fix_psi if fix_psi is not None else np.diag((A * np.exp(rng.uniform(-1, 1, q))) ** 2)
        psi_inv = np.linalg.inv(psi)
        b = _inv_gamma(rng, 1.0, 1.0 / sigma2 + 1.0 / r ** 2)
        a = (nu * np.diag(psi_inv) + 1.0 / A ** 2) / rng.gamma((nu + q) / 2, size=q)

        out_beta = np.empty((draws, self.p))
        out_gamma = np.empty((draws, self.m, q))
        out_sigma = np.empty(draws)
        out_psi = np.empty((draws, q, q))
        for it in range(tune + draws):
            beta, gamma = self._draw_beta_gamma(sigma2, psi_inv, rng)
            if fix_sigma is None:
                resid = y - X @ beta - np.einsum("nq,nq->n", z, gamma[refs])
                sigma2, b = self._draw_sigma2(rng, resid @ resid, n, b)
            if fix_psi is None:
                psi, psi_inv, a = self._draw_psi(rng, gamma, a)
            k = it - tune
            if k >= 0:
                out_beta[k], out_gamma[k], out_sigma[k], out_psi[k] = beta, gamma, np.sqrt(sigma2), psi
        return out_beta, out_gamma, out_sigma, out_psi

    def sample(self, draws: int = 1000, tune: int = 500, chains: int = 4, seed=None,
               fix_sigma: float | None = None, fix_psi=None):
        """Run the Gibbs sampler; see :func:`gibbs_lmm`."""
        draws, tune, chains = _count(draws, "draws", 1), _count(tune, "tune", 0), _count(chains, "chains", 1)
        fix_sigma, fix_psi = self._check_fixed(fix_sigma, fix_psi)
        streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(chains)]
        results = [self._chain(rng, draws, tune, fix_sigma, fix_psi) for rng in streams]
        beta, gamma, sigma, psi = (np.stack(x) for x in zip(*results))
        return self._inference_data(beta, gamma, sigma, psi, fix_sigma, fix_psi)

    def _inference_data(self, beta, gamma, sigma, psi, fix_sigma, fix_psi):
        term, q = self.term, self.q
        group = term.group if term.group not in _RESERVED_DIMS else "cluster"
        cn = list(term.cnames)
        tau = np.sqrt(np.einsum("cdkk->cdk", psi))
        posterior = {"beta": beta, "sigma": sigma, "tau": tau, "psi": psi, "gamma": gamma}
        dims = {"beta": ["coef"], "tau": ["re_coef"], "psi": ["re_coef", "re_coef2"],
                "gamma": [group, "re_coef"]}
        coords = {"coef": list(self.mf.xnames), "re_coef": cn, "re_coef2": cn, group: list(term.levels)}
        if q > 1:
            i, j = np.triu_indices(q, 1)
            posterior["rho"] = psi[:, :, i, j] / (tau[:, :, i] * tau[:, :, j])
            dims["rho"] = ["re_pair"]
            coords["re_pair"] = [f"{cn[a]},{cn[b]}" for a, b in zip(i, j)]
        attrs = {"formula": self.mf.formula.text, "sampler": "Gibbs (mmbook.forms.bayes)",
                 "beta_var": float(self.prior.beta_var), "sigma_prior": f"half-Cauchy(0, {self.sigma_scale:.6g})",
                 "psi_prior": f"Huang-Wand(nu={self.prior.psi_df:g}, A=[{', '.join(f'{x:.6g}' for x in self.psi_scale)}])"}
        if fix_sigma is not None:
            attrs["sigma_prior"] = f"fixed at {fix_sigma:.6g}"
        if fix_psi is not None:
            attrs["psi_prior"] = "fixed"
        return az.from_dict(posterior=posterior, observed_data={"y": self.mf.y}, coords=coords, dims=dims,
                            attrs=attrs)


def _count(x, name: str, least: int) -> int:
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {x!r}")
    if x < least:
        raise ValueError(f"{name} must be at least {least}, got {x}")
    return int(x)


def gibbs_lmm(formula: str, data: pd.DataFrame, draws: int = 1000, tune: int = 500, chains: int = 4,
              seed=None, prior: Prior | None = None, fix_sigma: float | None = None, fix_psi=None):
    """Sample the posterior of a Bayesian linear mixed model by Gibbs sampling.

    The model and the steps of the sampler are in the docstring of
    :mod:`mmbook.forms.bayes`:
    ``y ~ N(X beta + Z gamma, sigma^2 I)``, ``gamma_c ~ N(0, psi)``,
    ``beta ~ N(0, v I)``, ``sigma ~ Half-Cauchy(0, r)``, and half-t priors on
    the standard deviations in ``psi`` (Huang and Wand's inverse-Wishart
    mixture).

    Parameters
    ----------
    formula : str
        An lme4 formula with exactly one random-effects term, e.g.
        ``"Reaction ~ Days + (Days | Subject)"``.
    data : pandas.DataFrame
    draws : int
        Draws kept per chain.
    tune : int
        Draws discarded at the start of each chain (burn-in).
    chains : int
        Independent chains, each from its own dispersed starting values.
    seed : int or None
        Seed of ``numpy.random.SeedSequence``; chain ``k`` uses the ``k``-th
        spawned stream, so its draws do not depend on the number of chains.
    prior : Prior, optional
    fix_sigma : float, optional
        Hold ``sigma`` at this value instead of sampling it.
    fix_psi : array_like (q, q), optional
        Hold ``psi`` at this matrix instead of sampling it.

    Returns
    -------
    arviz.InferenceData
        ``posterior`` with ``beta`` (dimension ``coef``, lme4's names),
        ``sigma``, ``tau`` (standard deviations of the random effects,
        dimension ``re_coef``), ``psi`` (``re_coef`` x ``re_coef2``), ``rho``
        (correlations, dimension ``re_pair``, when ``q > 1``) and ``gamma``
        (the grouping factor's levels x ``re_coef``); ``observed_data`` with ``y``.

    Raises
    ------
    ValueError
        Not exactly one random-effects term; bad prior parameters, counts or
        fixed values.
    """
    return BayesLMM(formula, data, prior).sample(draws=draws, tune=tune, chains=chains, seed=seed,
                                                 fix_sigma=fix_sigma, fix_psi=fix_psi)
