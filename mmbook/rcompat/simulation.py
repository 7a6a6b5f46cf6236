"""The reference document's two simulated data sets, drawn exactly as R draws them.

Both simulations start from ``set.seed(1234)`` and use :class:`mmbook.rcompat.rng.RRandom`,
so with the default arguments they return the document's data to the last bit
(checked against R 4.2.2 in ``tests/test_simulation.py``). The order of the draws
is the document's: the random effects ``gamma`` first, then the residuals ``e``,
then the covariate ``x``.

Observations are grouped in ``nclus`` clusters of ``size`` rows, rows ordered
cluster by cluster, and ``clus`` holds each row's cluster (0-based here; the data
frame's ``clus`` column is R's factor with levels ``"1"``, ..., ``str(nclus)``).
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .rng import RRandom

__all__ = ["RandomInterceptsSim", "RandomSlopesSim",
           "simulate_random_intercepts", "simulate_random_slopes"]


def _layout(nclus, size):
    for name, v in (("nclus", nclus), ("size", size)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return np.repeat(np.arange(nclus), size)


def _beta(beta):
    beta = np.asarray(beta, dtype=float)
    if beta.shape != (2,):
        raise ValueError(f"beta must be (intercept, slope), got {beta!r}")
    return beta


def _frame(x, y, clus, nclus):
    levels = [str(c) for c in range(1, nclus + 1)]
    return pd.DataFrame({"x": x, "y": y, "clus": pd.Categorical.from_codes(clus, levels)})


def _draws(seed, n, sigma, draw_gamma):
    """The document's draws after ``set.seed(seed)``, in its order: ``gamma = draw_gamma(rng)``, then
    ``e ~ N(0, sigma^2)`` and ``x ~ N(0, 1)`` (length ``n`` each); also ``X = [1, x]``."""
    rng = RRandom(seed)
    gamma = draw_gamma(rng)
    e = rng.rnorm(n, mean=0.0, sd=sigma)
    x = rng.rnorm(n)
    return gamma, e, x, np.column_stack([np.ones(n), x])


@dataclass(frozen=True, eq=False)
class _Simulated:
    """The fields both simulations return (documented on each)."""

    data: pd.DataFrame
    x: np.ndarray
    e: np.ndarray
    gamma: np.ndarray
    clus: np.ndarray
    X: np.ndarray
    Z: sp.csr_array
    beta: np.ndarray
    sigma: float


@dataclass(frozen=True, eq=False)
class RandomInterceptsSim(_Simulated):
    """Data simulated from the random-intercepts model (see :func:`simulate_random_intercepts`).

    Attributes
    ----------
    data : pandas.DataFrame
        Columns ``x``, ``y``, ``clus`` (categorical, levels ``"1"``..``str(nclus)``).
    x, e : numpy.ndarray
        Covariate and residuals, length n.
    gamma : numpy.ndarray
        Random intercepts, length ``nclus``.
    clus : numpy.ndarray
        Each row's cluster, 0-based.
    X : numpy.ndarray
        Fixed-effects model matrix ``[1, x]``, n x 2.
    Z : scipy.sparse.csr_array
        Cluster indicator matrix, n x nclus.
    beta : numpy.ndarray
        Fixed effects (intercept, slope).
    sigma, tau : float
        Residual and random-intercept standard deviations.
    """

    tau: float

    @property
    def y(self):
        """As simulated: :math:`y_i = \\beta_0 + \\beta_1 x_i + \\gamma_{c[i]} + e_i`."""
        return self.data["y"].to_numpy()

    @property
    def y2(self):
        """The same response in matrix form, :math:`y = X\\beta + Z\\gamma + e`."""
        return self.X @ self.beta + self.Z @ self.gamma + self.e


def simulate_random_intercepts(seed=1234, nclus=100, size=10, sigma=1.0, tau=0.5,
                               beta=(3.0, 0.75)):
    """Simulate the document's random-intercepts data ("Simulate a mixed model").

    .. math::

        y_{ic} = \\beta_0 + \\beta_1 x_{ic} + \\gamma_c + e_{ic}, \\qquad
        \\gamma_c \\sim N(0, \\tau^2), \\quad e_{ic} \\sim N(0, \\sigma^2), \\quad
        x_{ic} \\sim N(0, 1),

    or in matrix form :math:`y = X\\beta + Z\\gamma + e`, with :math:`Z` the
    n x nclus cluster indicator matrix.

    Parameters
    ----------
    seed : int
        ``set.seed(seed)``; the default reproduces the document's data.
    nclus, size : int
        Number of clusters and rows per cluster.
    sigma, tau : float
        Residual and random-intercept standard deviations.
    beta : sequence of 2 floats
        Fixed intercept and slope.

    Returns
    -------
    RandomInterceptsSim
    """
    clus, beta = _layout(nclus, size), _beta(beta)
    n = clus.size
    gamma, e, x, X = _draws(seed, n, sigma, lambda rng: rng.rnorm(nclus, mean=0.0, sd=tau))
    y = beta[0] + beta[1] * x + gamma[clus] + e          # R: intercept + b1*x + gamma_[clus] + e
    Z = sp.csr_array((np.ones(n), clus, np.arange(n + 1)), shape=(n, nclus))
    return RandomInterceptsSim(data=_frame(x, y, clus, nclus), x=x, e=e, gamma=gamma,
                               clus=clus, X=X, Z=Z, beta=beta, sigma=float(sigma), tau=float(tau))


@dataclass(frozen=True, eq=False)
class RandomSlopesSim(_Simulated):
    """Data simulated from the random intercepts and slopes model.

    See :func:`simulate_random_slopes`.

    Attributes
    ----------
    data : pandas.DataFrame
        Columns ``x``, ``y``, ``clus`` (categorical, levels ``"1"``..``str(nclus)``).
    x, e : numpy.ndarray
        Covariate and residuals, length n.
    gamma : numpy.ndarray
        Random effects, nclus x 2 (intercept, slope) per cluster.
    clus : numpy.ndarray
        Each row's cluster, 0-based.
    X : numpy.ndarray
        Fixed-effects model matrix ``[1, x]``, n x 2.
    Z : scipy.sparse.csr_array
        Block-diagonal random-effects model matrix, n x 2 nclus: cluster c's rows
        of ``X`` in columns ``2c`` (intercept) and ``2c + 1`` (slope).
    beta : numpy.ndarray
        Fixed effects (intercept, slope).
    sigma : float
        Residual standard deviation.
    psi : numpy.ndarray
        Random-effects covariance, 2 x 2.
    """

    psi: np.ndarray

    @property
    def y(self):
        """Direct: :math:`y_i = (\\beta_0 + \\gamma_{c0}) + (\\beta_1 + \\gamma_{c1}) x_i + e_i`."""
        return self.data["y"].to_numpy()

    @property
    def y_rowsum(self):
        """Row-sum shortcut: :math:`y = X\\beta + \\sum_k (X \\circ G)_{\\cdot k} + e`.

        :math:`G` stacks each row's cluster effects, :math:`G_{i\\cdot} = \\gamma_{c[i]}`.
        """
        return self.X @ self.beta + (self.X * self.gamma[self.clus]).sum(axis=1) + self.e

    @property
    def y_blockdiag(self):
        """Block-diagonal form: :math:`y = X\\beta + Z\\,\\mathrm{vec}(\\gamma^\\top) + e`."""
        return self.X @ self.beta + self.Z @ self.gamma.ravel() + self.e

    @property
    def y_bycluster(self):
        """Cluster by cluster: :math:`y_c = X_c\\beta + X_c\\gamma_c + e_c`, stacked."""
        y = np.empty_like(self.e)
        for c, g in enumerate(self.gamma):       # the per-cluster view is the point here
            rows = np.flatnonzero(self.clus == c)
            y[rows] = self.X[rows] @ self.beta + self.X[rows] @ g + self.e[rows]
        return y

    def marginal_cov(self, residual_var=None):
        """Marginal covariance of y.

        :math:`V = Z (I_{nclus} \\otimes \\psi) Z^\\top + \\sigma^2 I_n`.

        ``residual_var`` replaces :math:`\\sigma^2` (default ``sigma**2``). Dense, n x n.
        """
        rv = self.sigma**2 if residual_var is None else float(residual_var)
        psi_big = sp.kron(sp.eye_array(len(self.gamma)), self.psi, format="csr")
        V = (self.Z @ psi_big @ self.Z.T).toarray()
        V[np.diag_indices_from(V)] += rv
        return V

    def marginal_draw(self, seed=1234, rng=None, residual_var=None):
        """One draw from the marginal model.

        .. math:: y \\sim N\\big(X\\beta,\\; Z (I \\otimes \\psi) Z^\\top + \\sigma^2 I\\big)

        The document's ``y5 = MASS::mvrnorm(1, mu = X %*% B, Sigma = Z %*% psiBig %*%
        t(Z) + diag(sigma, n))``, drawn right after ``set.seed(1234)`` (its
        ``ybycluster()`` in between draws nothing). The document writes
        ``diag(sigma, n)``, a residual *variance* of sigma; that equals
        :math:`\\sigma^2` for its sigma = 1, and ``residual_var`` reproduces it for
        other values.

        Parameters
        ----------
        seed : int
            ``set.seed(seed)`` before the draw; ignored when ``rng`` is given.
        rng : RRandom, optional
            Continue this stream instead.
        residual_var : float, optional
            Residual variance, default ``sigma**2``.

        Returns
        -------
        numpy.ndarray
            Length n.

        Notes
        -----
        This is **not** R's y5 to the last bit, and cannot be made so: ``mvrnorm``
        rotates the normal draws by the eigenvectors of the 1000 x 1000 covariance,
        whose eigenvalue :math:`\\sigma^2` has multiplicity n - 2 nclus (800 here).
        Any orthonormal basis of that eigenspace is correct, and which one LAPACK
        returns depends on the rounding of the BLAS underneath (R's reference BLAS
        vs numpy's OpenBLAS). The draw uses R's normal deviates and has the right
        distribution, but its values differ from R's.
        """
        rng = RRandom(seed) if rng is None else rng
        return rng.mvrnorm(1, mu=self.X @ self.beta, Sigma=self.marginal_cov(residual_var))


def simulate_random_slopes(seed=1234, nclus=100, size=10, sigma=1.0,
                           psi=((1.0, 0.25), (0.25, 1.0)), beta=(3.0, 0.75), empirical=True):
    """Simulate the document's random intercepts and slopes data (Appendix).

    .. math::

        y_{ic} = (\\beta_0 + \\gamma_{c0}) + (\\beta_1 + \\gamma_{c1}) x_{ic} + e_{ic},
        \\qquad \\gamma_c \\sim N_2(0, \\psi), \\quad e_{ic} \\sim N(0, \\sigma^2),
        \\quad x_{ic} \\sim N(0, 1),

    or :math:`y = X\\beta + Z\\,\\mathrm{vec}(\\gamma^\\top) + e` with the block-diagonal
    :math:`Z`. The document draws ``gamma`` with ``MASS::mvrnorm(nclus, c(0, 0),
    psi, empirical = TRUE)``, so its sample covariance is exactly ``psi``.

    Parameters
    ----------
    seed : int
        ``set.seed(seed)``; the default reproduces the document's data.
    nclus, size : int
        Number of clusters and rows per cluster.
    sigma : float
        Residual standard deviation.
    psi : array_like, 2 x 2
        Covariance of the random intercepts and slopes.
    beta : sequence of 2 floats
        Fixed intercept and slope.
    empirical : bool
        Passed to ``mvrnorm``.

    Returns
    -------
    RandomSlopesSim
        ``y``, ``y_rowsum``, ``y_blockdiag`` and ``y_bycluster`` give the response
        computed four ways; ``marginal_draw`` draws it from the marginal model.
    """
    clus, beta = _layout(nclus, size), _beta(beta)
    psi = np.asarray(psi, dtype=float)
    if psi.shape != (2, 2):
        raise ValueError(f"psi must be a 2 x 2 covariance matrix, got shape {psi.shape}")
    n = clus.size

    def draw_gamma(rng):
        return rng.mvrnorm(nclus, mu=[0.0, 0.0], Sigma=psi, empirical=empirical).reshape(nclus, 2)

    gamma, e, x, X = _draws(seed, n, sigma, draw_gamma)
    # R: intercept + gamma_[clus, 1] + (b1 + gamma_[clus, 2]) * x + e
    y = beta[0] + gamma[clus, 0] + (beta[1] + gamma[clus, 1]) * x + e
    cols = (2 * clus)[:, None] + np.arange(2)
    Z = sp.csr_array((X.ravel(), cols.ravel(), np.arange(0, 2 * n + 1, 2)), shape=(n, 2 * nclus))
    return RandomSlopesSim(data=_frame(x, y, clus, nclus), x=x, e=e, gamma=gamma, clus=clus,
                           X=X, Z=Z, beta=beta, sigma=float(sigma), psi=psi)
