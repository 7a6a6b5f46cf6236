"""The conditional and the marginal form of a linear mixed model.

Given the random effects, a linear mixed model is an ordinary linear model
with the random effects as extra coefficients (the *conditional* model);
averaged over the random effects it is one multivariate normal draw for the
whole response vector (the *marginal* model):

.. math::

    y \\mid \\gamma \\sim N(X\\beta + Z\\gamma,\\; \\sigma^2 I_n),
    \\qquad \\gamma \\sim N(0, \\psi_{\\text{big}})
    \\quad\\Longrightarrow\\quad
    y \\sim N(X\\beta,\\; \\Sigma), \\qquad
    \\Sigma = Z \\psi_{\\text{big}} Z^\\top + \\sigma^2 I_n .

``Z`` has one block of columns per random-effects term and, within a term,
each level's ``q`` columns together (lme4's order); ``psi_big`` is block
diagonal with ``I_m (x) psi_k`` for term ``k`` (``m`` levels, ``psi_k`` its
``q x q`` covariance). This module builds these matrices from a fit (or from
their parts) and evaluates the two log densities, so that a chapter can show
that the likelihood lme4 maximises is the marginal one.

These functions form ``Sigma`` as a dense ``n x n`` matrix and factorise it
directly: fine for a few thousand rows, and meant for looking at the model,
not for fitting it (:mod:`mmbook.engine.pls` never forms ``Sigma``).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from .arguments import as_matrix, as_vector, square_psi

__all__ = ["Z_matrix", "gamma_vector", "psi_big", "marginal_cov", "residual_R", "marginal_logdensity",
           "conditional_logdensity", "gls_beta", "reml_logdensity"]

_LOG2PI = np.log(2.0 * np.pi)


# ------------------------------------------------------------------ from a fit
def _check_fit(fit):
    if not hasattr(fit, "terms") or not hasattr(fit, "psi") or not hasattr(fit, "gamma"):
        raise TypeError(f"expected a fitted model from mmbook.lmer, got {type(fit).__name__}")


def Z_matrix(fit) -> sp.csr_matrix:
    """The random-effects model matrix ``Z`` of a fit, all terms side by side.

    .. math:: Z = [Z_1 \\; Z_2 \\; \\cdots], \\qquad
              (Z_k)_{i,\\, l q_k + j} = z^{(k)}_{ij} \\text{ if row } i \\text{ is in level } l,

    term ``k`` contributing ``nlevels_k * q_k`` columns, level by level
    (:meth:`mmbook.engine.design.RandomTerm.Z`).

    Parameters
    ----------
    fit : LmerFit

    Returns
    -------
    scipy.sparse.csr_matrix, shape (n, sum_k nlevels_k q_k)
    """
    _check_fit(fit)
    return sp.hstack([t.Z() for t in fit.terms], format="csr")


def gamma_vector(fit) -> np.ndarray:
    """The fit's random effects stacked in the column order of :func:`Z_matrix`.

    .. math:: \\hat\\gamma = (\\hat\\gamma_{1,1}^\\top, \\hat\\gamma_{1,2}^\\top, \\dots,
              \\hat\\gamma_{2,1}^\\top, \\dots)^\\top,

    term by term, and within a term level by level with each level's ``q``
    values together, so that ``Z_matrix(fit) @ gamma_vector(fit)`` is
    ``fit.Zgamma()``.
    """
    _check_fit(fit)
    return np.concatenate([np.asarray(g).ravel() for g in fit.gamma])


def psi_big(fit) -> sp.csr_matrix:
    """Covariance of the stacked random effects: block diagonal.

    .. math:: \\psi_{\\text{big}} = \\operatorname{blockdiag}_k \\left(I_{m_k} \\otimes \\psi_k\\right),

    with ``m_k`` levels and the ``q_k x q_k`` covariance ``psi_k = fit.psi(k)`` of
    term ``k``.

    Returns
    -------
    scipy.sparse.csr_matrix, square, in the column order of :func:`Z_matrix`
    """
    _check_fit(fit)
    blocks = [sp.kron(sp.identity(t.nlevels, format="csr"), fit.psi(k), format="csr")
              for k, t in enumerate(fit.terms)]
    return sp.block_diag(blocks, format="csr")


# --------------------------------------------------------------- covariance
def marginal_cov(fit=None, *, Z=None, psi=None, sigma=None, R=None, sparse: bool = False):
    """Marginal covariance of the response, ``Sigma = Z psi_big Z' + sigma^2 R`` (``R = I`` usually).

    .. math:: \\Sigma = \\operatorname{Var}(y) = Z \\psi_{\\text{big}} Z^\\top + \\sigma^2 R .

    Entry ``(i, k)`` is the covariance of observations ``i`` and ``k``: it is
    zero unless they share a level of some grouping factor, so ``Sigma`` is
    block diagonal when there is one grouping factor and the rows are sorted
    by it.

    Parameters
    ----------
    fit : LmerFit, optional
        Take ``Z``, ``psi_big`` and ``sigma`` from a fit (its estimates).
    Z : array_like or sparse matrix, shape (n, Q), optional
        Random-effects model matrix, when no fit is given.
    psi : array_like, optional
        Either the ``Q x Q`` covariance of all random effects, or one level's
        ``q x q`` covariance, which is repeated down the diagonal
        (``I_{Q/q} (x) psi``, as for a single term with ``Q/q`` levels).
    sigma : float, optional
        Residual standard deviation (not the variance).
    R : array_like or sparse matrix, shape (n, n), optional
        Correlation matrix of the residuals (default: the identity; from a
        fit with correlated residuals, their fitted ``R``, :func:`residual_R`).
    sparse : bool, default False
        Return a ``scipy.sparse.csr_matrix`` instead of a dense array.

    Returns
    -------
    numpy.ndarray or scipy.sparse.csr_matrix, shape (n, n)

    Examples
    --------
    >>> import numpy as np
    >>> Z = np.array([[1, 0], [1, 0], [0, 1]])
    >>> marginal_cov(Z=Z, psi=[[4.0]], sigma=1.0)
    array([[5., 4., 0.],
           [4., 5., 0.],
           [0., 0., 5.]])
    """
    if fit is not None:
        if Z is not None or psi is not None or sigma is not None:
            raise TypeError("give either a fit or Z, psi and sigma, not both")
        _check_fit(fit)
        Z, P, sigma = Z_matrix(fit), psi_big(fit), float(fit.sigma)
        if R is None:
            R = residual_R(fit)
    else:
        if Z is None or psi is None or sigma is None:
            raise TypeError("marginal_cov needs a fit, or all of Z, psi and sigma")
        Z = sp.csr_matrix(Z, dtype=float)
        P = _expand_psi(psi, Z.shape[1])
        sigma = float(sigma)
        if not np.isfinite(sigma) or sigma < 0:
            raise ValueError(f"sigma must be a non-negative standard deviation, got {sigma!r}")
    n = Z.shape[0]
    ZPZ = (Z @ P @ Z.T).tocsr()
    # exactly symmetric: the sparse product can differ from its transpose in the last bit
    ZPZ = (ZPZ + ZPZ.T) * 0.5
    if R is None:
        R = sp.identity(n, format="csr")
    else:
        R = sp.csr_matrix(R, dtype=float)
        if R.shape != (n, n):
            raise ValueError(f"R must be {n} x {n} (the rows of Z), got {R.shape}")
    Sigma = ZPZ + sigma ** 2 * R
    return Sigma.tocsr() if sparse else Sigma.toarray()


def residual_R(fit) -> sp.csr_matrix:
    """The fitted correlation matrix ``R`` of a fit's residuals (``n x n``; the identity without one).

    For ``lmer(..., residual="ar1(t | g)")`` block diagonal with
    ``R_ij = phi^|t_i - t_j|`` within a cluster (see :mod:`mmbook.engine.residual`).
    """
    corr = getattr(fit.mf, "residual", None)
    if corr is None:
        return sp.identity(fit.nobs, format="csr")
    eta = float(fit.opt.theta[sum(t.ntheta for t in fit.terms)])
    return corr.full_matrix(eta)



def _expand_psi(psi, Q: int) -> sp.csr_matrix:
    P = square_psi(psi)
    q = P.shape[0]
    if q == Q:
        return sp.csr_matrix(P)
    if q == 0 or Q % q:
        raise ValueError(f"psi is {q} x {q} but Z has {Q} columns: psi must be {Q} x {Q}, "
                         "or one level's q x q covariance with q dividing the number of columns of Z")
    return sp.kron(sp.identity(Q // q, format="csr"), sp.csr_matrix(P), format="csr")


# ------------------------------------------------------------ log densities


def _data(y, X, beta=None):
    """``y`` as a vector, ``X`` as a matrix with a row per observation, ``beta`` (if given) with one value
    per column of ``X``; a clear ValueError otherwise."""
    y = as_vector(y, "y")
    X = as_matrix(X, "X", y.size)
    return y, X, None if beta is None else as_vector(beta, "beta", X.shape[1])


def _whitened(y, X, Sigma):
    """``L`` (:math:`\\Sigma = LL^\\top`), :math:`L^{-1}y` and :math:`L^{-1}X`."""
    L = _cholesky(Sigma, y.size)
    return L, sla.solve_triangular(L, y, lower=True), sla.solve_triangular(L, X, lower=True)


def _cholesky(Sigma, n: int) -> np.ndarray:
    S = np.asarray(Sigma.toarray() if sp.issparse(Sigma) else Sigma, dtype=float)
    if S.shape != (n, n):
        raise ValueError(f"Sigma must be {n} x {n}, got shape {S.shape}")
    if not np.allclose(S, S.T, rtol=1e-10, atol=0.0):
        raise ValueError("Sigma is not symmetric")
    try:
        return sla.cholesky(S, lower=True, check_finite=True)
    except sla.LinAlgError:
        raise ValueError("Sigma is not positive definite") from None


def marginal_logdensity(y, X, beta, Sigma) -> float:
    """Log density of the marginal model, ``log N(y; X beta, Sigma)``.

    .. math::

        \\log p(y) = -\\tfrac12\\left[n \\log 2\\pi + \\log|\\Sigma|
            + (y - X\\beta)^\\top \\Sigma^{-1} (y - X\\beta)\\right],

    computed from the Cholesky factor :math:`\\Sigma = LL^\\top`:
    :math:`\\log|\\Sigma| = 2\\sum_i \\log L_{ii}` and the quadratic form is
    :math:`\\lVert L^{-1}(y - X\\beta) \\rVert^2`. At the ML estimates of a
    fit this is its log-likelihood, ``fit.loglik``.

    Parameters
    ----------
    y : array_like, shape (n,)
    X : array_like, shape (n, p)
    beta : array_like, shape (p,)
    Sigma : array_like or sparse matrix, shape (n, n)
        Symmetric positive definite, e.g. from :func:`marginal_cov`.

    Returns
    -------
    float
    """
    y, X, beta = _data(y, X, beta)
    n = y.size
    L = _cholesky(Sigma, n)
    w = sla.solve_triangular(L, y - X @ beta, lower=True)
    logdet = 2.0 * np.log(np.diagonal(L)).sum()
    return float(-0.5 * (n * _LOG2PI + logdet + w @ w))


def conditional_logdensity(y, X, beta, Z, gamma, sigma) -> float:
    """Log density of the conditional model, ``log N(y; X beta + Z gamma, sigma^2 I)``.

    .. math::

        \\log p(y \\mid \\gamma) = \\sum_{i=1}^n \\log \\phi\\!\\left(y_i;\\;
            (X\\beta + Z\\gamma)_i,\\; \\sigma^2\\right)
        = -\\frac n2 \\log(2\\pi\\sigma^2)
          - \\frac{\\lVert y - X\\beta - Z\\gamma \\rVert^2}{2\\sigma^2} :

    given the random effects, the observations are independent normals.

    Parameters
    ----------
    y : array_like, shape (n,)
    X : array_like, shape (n, p)
    beta : array_like, shape (p,)
    Z : array_like or sparse matrix, shape (n, Q)
    gamma : array_like, shape (Q,)
        In the column order of ``Z`` (see :func:`gamma_vector`).
    sigma : float
        Residual standard deviation.

    Returns
    -------
    float
    """
    y, X, beta = _data(y, X, beta)
    n = y.size
    Z = sp.csr_matrix(Z, dtype=float)
    if Z.shape[0] != n:
        raise ValueError(f"Z must have {n} rows (one per observation), got shape {Z.shape}")
    gamma = as_vector(gamma, "gamma", Z.shape[1])
    sigma = float(sigma)
    if not np.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"sigma must be a positive standard deviation, got {sigma!r}")
    r = y - X @ beta - Z @ gamma
    return float(-0.5 * n * (_LOG2PI + 2.0 * np.log(sigma)) - 0.5 * (r @ r) / sigma ** 2)


def gls_beta(y, X, Sigma) -> np.ndarray:
    """Generalized least squares estimate of ``beta`` for a known ``Sigma``.

    .. math:: \\tilde\\beta = (X^\\top \\Sigma^{-1} X)^{-1} X^\\top \\Sigma^{-1} y ,

    computed by ordinary least squares on the whitened data
    :math:`L^{-1}y,\\; L^{-1}X` (:math:`\\Sigma = LL^\\top`). At the estimated
    ``Sigma`` of a fit, this is the fit's ``beta``.
    """
    y, X, _ = _data(y, X)
    _, yw, Xw = _whitened(y, X, Sigma)
    return np.linalg.lstsq(Xw, yw, rcond=None)[0]


def reml_logdensity(y, X, Sigma) -> float:
    """Restricted (REML) log-likelihood of the marginal model at ``Sigma``.

    The marginal likelihood integrated over ``beta`` with a flat prior
    (Laird and Ware; lme4's definition):

    .. math::

        \\ell_R(\\Sigma) = \\log \\int N(y; X\\beta, \\Sigma)\\, d\\beta
        = -\\tfrac12\\left[(n - p)\\log 2\\pi + \\log|\\Sigma|
            + \\log|X^\\top\\Sigma^{-1}X|
            + (y - X\\tilde\\beta)^\\top \\Sigma^{-1} (y - X\\tilde\\beta)\\right],

    with :math:`\\tilde\\beta` from :func:`gls_beta`. At the REML estimates of
    a fit, :math:`-2\\ell_R` is the fit's REML criterion, ``fit.objective``.
    (Defining REML as the likelihood of ``n - p`` orthonormal error contrasts
    instead adds the constant :math:`\\tfrac12 \\log|X^\\top X|`.)

    Parameters
    ----------
    y : array_like, shape (n,)
    X : array_like, shape (n, p)
    Sigma : array_like or sparse matrix, shape (n, n)

    Returns
    -------
    float
    """
    y, X, _ = _data(y, X)
    n, p = X.shape
    if n <= p:
        raise ValueError(f"REML needs more observations (n={n}) than columns of X (p={p})")
    L, yw, Xw = _whitened(y, X, Sigma)
    Q, R = np.linalg.qr(Xw)                    # X' Sigma^{-1} X = R'R
    beta = sla.solve_triangular(R, Q.T @ yw)
    w = yw - Xw @ beta
    logdet = 2.0 * np.log(np.diagonal(L)).sum()
    logdet_x = 2.0 * np.log(np.abs(np.diagonal(R))).sum()
    return float(-0.5 * ((n - p) * _LOG2PI + logdet + logdet_x + w @ w))
