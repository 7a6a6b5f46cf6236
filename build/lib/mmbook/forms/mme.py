r"""Henderson's mixed-model equations and the ridge-regression view of a mixed model.

For known variance parameters, the linear mixed model

.. math::

    y = X\beta + Z\gamma + e, \qquad \gamma \sim N(0, \psi), \qquad
    e \sim N(0, \sigma^2 I_n),

is a penalized least-squares problem: the estimate of ``beta`` and the
conditional modes of ``gamma`` jointly minimise

.. math::

    \frac{1}{\sigma^2}\lVert y - X\beta - Z\gamma \rVert^2 + \gamma^\top \psi^{-1} \gamma
    \qquad (:func:`penalized_loss`),

which is :math:`-2\log[p(y \mid \gamma)\,p(\gamma)]` up to constants. Setting
its gradient to zero gives Henderson's mixed-model equations
(:func:`mixed_model_equations`),

.. math::

    \begin{pmatrix} X^\top X & X^\top Z \\ Z^\top X & Z^\top Z + \sigma^2\psi^{-1} \end{pmatrix}
    \begin{pmatrix} \hat\beta \\ \hat\gamma \end{pmatrix}
    = \begin{pmatrix} X^\top y \\ Z^\top y \end{pmatrix}.

With ``psi = tau^2 I`` (a random intercept) the penalty is
:math:`\lambda\lVert\gamma\rVert^2` with :math:`\lambda = \sigma^2/\tau^2`
after multiplying the loss by :math:`\sigma^2`: ridge regression on the
columns of ``Z`` with ``X`` unpenalized (:func:`ridge`).

Here ``psi`` is the covariance of all random effects stacked in the column
order of ``Z`` (``psi_big`` in :mod:`mmbook.forms.marginal`). The equations need
:math:`\psi^{-1}`, so they fail when a variance is zero; lme4's
formulation with spherical random effects (:mod:`mmbook.engine.pls`) does not.
This module is for looking at the model; :mod:`mmbook.engine.pls` is what fits it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from .arguments import as_matrix, square_psi

__all__ = ["MMESolution", "mme_system", "mixed_model_equations", "penalized_loss", "ridge"]


class MMESolution(NamedTuple):
    """Solution of the mixed-model equations: ``beta, gamma = mixed_model_equations(...)``.

    Attributes
    ----------
    beta : ndarray, shape (p,)
        Fixed effects (the generalized least squares estimate for this ``psi`` and ``sigma``).
    gamma : ndarray, shape (Q,)
        Random effects (conditional modes), in the column order of ``Z``.
    """

    beta: np.ndarray
    gamma: np.ndarray


# ---------------------------------------------------------------------- checks
def _as_y(y) -> np.ndarray:
    y = np.asarray(y, dtype=float)
    if y.ndim == 2 and 1 in y.shape:
        y = y.ravel()
    if y.ndim != 1:
        raise ValueError(f"y must be a vector (one value per observation), got shape {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError("y has missing or infinite values; drop those rows first")
    return y


def _as_Z(Z, n: int) -> sp.csr_matrix:
    if not sp.issparse(Z):
        Z = np.asarray(Z, dtype=float)
        if Z.ndim == 1:
            Z = Z[:, None]
        if Z.ndim != 2:
            raise ValueError(f"Z must be a matrix, got an array with {Z.ndim} dimensions")
    Z = sp.csr_matrix(Z, dtype=float)
    if Z.shape[0] != n:
        raise ValueError(f"Z must have {n} rows, one per value of y, got shape {Z.shape}")
    return Z


def _as_sigma(sigma) -> float:
    sigma = float(sigma)
    if not np.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"sigma must be a positive residual standard deviation, got {sigma!r}")
    return sigma


def _inv_spd(P: np.ndarray, what: str) -> np.ndarray:
    """Inverse of a symmetric positive definite matrix by Cholesky, with a clear error."""
    if not np.allclose(P, P.T, rtol=1e-10, atol=1e-14 * max(1.0, np.abs(P).max(initial=0.0))):
        raise ValueError(f"{what} is not symmetric")
    try:
        c = sla.cho_factor(P, lower=True, check_finite=True)
    except (np.linalg.LinAlgError, sla.LinAlgError, ValueError):
        raise ValueError(f"{what} is not positive definite (a variance is zero, or a correlation is "
                         "+-1): the mixed-model equations need its inverse. lme4's form "
                         "(mmbook.engine.pls.PLS.solve) handles this boundary case") from None
    Pinv = sla.cho_solve(c, np.eye(len(P)))
    return (Pinv + Pinv.T) * 0.5


def _psi_inverse(psi, Q: int, nlevels=None) -> sp.csr_matrix:
    r"""``psi^{-1}`` as a sparse ``Q x Q`` matrix.

    ``psi`` is one of: the full ``Q x Q`` covariance (dense or sparse); one
    level's ``q x q`` covariance, repeated ``Q/q`` times; or a list of
    per-term covariances ``[psi_1, psi_2, ...]``, term ``k`` repeated
    ``nlevels[k]`` times (``nlevels`` may be left out for a single term).
    """
    is_blocks = (isinstance(psi, (list, tuple)) and len(psi) > 0
                 and all(sp.issparse(b) or np.ndim(b) == 2 for b in psi))
    if is_blocks:
        blocks = [np.asarray(b.toarray() if sp.issparse(b) else b, dtype=float) for b in psi]
        for k, b in enumerate(blocks):
            if b.shape[0] != b.shape[1]:
                raise ValueError(f"psi[{k}] must be square, got shape {b.shape}")
        if nlevels is None:
            if len(blocks) > 1:
                raise ValueError("with several per-term covariances in psi, give nlevels: "
                                 "the number of levels of each term")
            q = blocks[0].shape[0]
            if Q % q:
                raise ValueError(f"psi[0] is {q} x {q} but Z has {Q} columns, not a multiple of {q}")
            nlevels = [Q // q]
        nlevels = [int(m) for m in np.atleast_1d(nlevels)]
        if len(nlevels) != len(blocks):
            raise ValueError(f"psi has {len(blocks)} per-term covariances but nlevels has {len(nlevels)} values")
        total = sum(m * b.shape[0] for m, b in zip(nlevels, blocks))
        if total != Q:
            raise ValueError(f"the terms of psi cover {total} random effects "
                             f"(sum of nlevels x q), but Z has {Q} columns")
        inv = [sp.kron(sp.identity(m, format="csr"), _inv_spd(b, f"psi[{k}]"), format="csr")
               for k, (m, b) in enumerate(zip(nlevels, blocks))]
        return sp.block_diag(inv, format="csr")
    if nlevels is not None:
        raise ValueError("nlevels is only used with a list of per-term covariances in psi")
    P = square_psi(psi)
    if sp.issparse(P):
        P = P.toarray()
    q = P.shape[0]
    if q == Q:
        return sp.csr_matrix(_inv_spd(P, "psi"))
    if Q % q:
        raise ValueError(f"psi is {q} x {q} but Z has {Q} columns: give the {Q} x {Q} covariance of all "
                         f"random effects, or one level's q x q covariance with q dividing {Q}")
    return sp.kron(sp.identity(Q // q, format="csr"), _inv_spd(P, "psi"), format="csr")


def _check_full_rank(A: np.ndarray, what: str) -> None:
    """Raise if the columns of ``A`` are (numerically) linearly dependent, as R's ``lm`` would alias them."""
    if A.shape[1] == 0:
        return
    R = np.linalg.qr(A, mode="r")
    d = np.abs(np.diagonal(R))
    norms = np.linalg.norm(A, axis=0)
    if A.shape[0] < A.shape[1] or np.any(d <= 1e-7 * np.maximum(norms, np.finfo(float).tiny)):
        raise ValueError(f"{what} are linearly dependent (or a column is zero): drop the redundant ones")


# ----------------------------------------------------------- the equations
def mme_system(X, Z, y, psi, sigma, nlevels=None):
    r"""The coefficient matrix and right-hand side of Henderson's mixed-model equations.

    .. math::

        C = \begin{pmatrix} X^\top X & X^\top Z \\ Z^\top X & Z^\top Z + \sigma^2\psi^{-1}
            \end{pmatrix}, \qquad
        c = \begin{pmatrix} X^\top y \\ Z^\top y \end{pmatrix},

    so that :math:`C (\hat\beta^\top, \hat\gamma^\top)^\top = c`.

    Parameters
    ----------
    X : array_like, shape (n, p)
    Z : array_like or sparse matrix, shape (n, Q)
    y : array_like, shape (n,)
    psi : array_like, sparse matrix, or list of array_like
        Covariance of the random effects: the ``Q x Q`` matrix of all of them
        (e.g. :func:`mmbook.forms.marginal.psi_big`), one level's ``q x q``
        covariance repeated ``Q/q`` times, or a list of per-term ``q_k x q_k``
        covariances (see ``nlevels``). Must be positive definite.
    sigma : float
        Residual standard deviation (not the variance).
    nlevels : sequence of int, optional
        With a list ``psi``: the number of levels of each term, so that term
        ``k`` owns ``nlevels[k] * q_k`` consecutive columns of ``Z``.

    Returns
    -------
    C : scipy.sparse.csc_matrix, shape (p + Q, p + Q)
    c : ndarray, shape (p + Q,)

    Raises
    ------
    ValueError
        Shapes that do not match, ``sigma <= 0``, ``psi`` not positive definite,
        or linearly dependent columns of ``X``.
    """
    C, c, _ = _system(X, Z, y, psi, sigma, nlevels)
    return C, c


def _system(X, Z, y, psi, sigma, nlevels):
    y = _as_y(y)
    n = y.size
    X = as_matrix(X, "X", n)
    Z = _as_Z(Z, n)
    sigma = _as_sigma(sigma)
    Psi_inv = _psi_inverse(psi, Z.shape[1], nlevels)
    _check_full_rank(X, "the columns of X")
    ZtX = sp.csr_matrix(Z.T @ X)
    C = sp.bmat([[sp.csr_matrix(X.T @ X), ZtX.T],
                 [ZtX, (Z.T @ Z) + sigma ** 2 * Psi_inv]], format="csc")
    c = np.concatenate([X.T @ y, np.asarray(Z.T @ y).ravel()])
    return C, c, X.shape[1]


def mixed_model_equations(X, Z, y, psi, sigma, nlevels=None) -> MMESolution:
    r"""Solve Henderson's mixed-model equations for ``beta`` and ``gamma``.

    .. math::

        \begin{pmatrix} X^\top X & X^\top Z \\ Z^\top X & Z^\top Z + \sigma^2\psi^{-1} \end{pmatrix}
        \begin{pmatrix} \hat\beta \\ \hat\gamma \end{pmatrix}
        = \begin{pmatrix} X^\top y \\ Z^\top y \end{pmatrix}.

    The solution minimises :func:`penalized_loss`; :math:`\hat\beta` is the
    generalized least squares estimate
    :math:`(X^\top\Sigma^{-1}X)^{-1}X^\top\Sigma^{-1}y` with
    :math:`\Sigma = Z\psi Z^\top + \sigma^2 I`, and :math:`\hat\gamma` the
    conditional mode (= mean) of the random effects given ``y`` at that
    :math:`\hat\beta`. With ``psi`` and ``sigma`` at a fit's estimates these
    are lme4's ``fixef`` and ``ranef``. The sparse system is solved by a
    sparse LU factorization (SuperLU).

    Parameters
    ----------
    X, Z, y, psi, sigma, nlevels
        As in :func:`mme_system`.

    Returns
    -------
    MMESolution
        ``(beta, gamma)``, ``gamma`` in the column order of ``Z``.

    Raises
    ------
    ValueError
        Bad shapes or parameters (see :func:`mme_system`), or columns of ``X``
        that are linearly dependent (the system is then singular).

    Examples
    --------
    Two clusters of two rows, an intercept, ``psi = 4`` and ``sigma = 1``:

    >>> import numpy as np
    >>> X = np.ones((4, 1)); Z = np.array([[1, 0], [1, 0], [0, 1], [0, 1]])
    >>> beta, gamma = mixed_model_equations(X, Z, [1.0, 3.0, 6.0, 6.0], [[4.0]], 1.0)
    >>> beta.round(4), gamma.round(4)
    (array([4.]), array([-1.7778,  1.7778]))
    """
    C, c, p = _system(X, Z, y, psi, sigma, nlevels)
    sol = spla.splu(C).solve(c)     # C is positive definite: X has full rank, psi is positive definite
    return MMESolution(beta=sol[:p], gamma=sol[p:])


def penalized_loss(y, X, Z, beta, gamma, psi, sigma, nlevels=None) -> float:
    r"""The loss the mixed-model equations minimise.

    .. math::

        \frac{1}{\sigma^2}\lVert y - X\beta - Z\gamma \rVert^2 + \gamma^\top\psi^{-1}\gamma ,

    a residual sum of squares in units of :math:`\sigma^2` plus a penalty
    on the size of the random effects. It is
    :math:`-2\log[p(y \mid \gamma)\,p(\gamma)]` up to terms that depend on
    neither :math:`\beta` nor :math:`\gamma`.

    Parameters
    ----------
    y : array_like, shape (n,)
    X : array_like, shape (n, p)
    Z : array_like or sparse matrix, shape (n, Q)
    beta : array_like, shape (p,)
    gamma : array_like, shape (Q,)
        In the column order of ``Z``.
    psi, sigma, nlevels
        As in :func:`mme_system`.

    Returns
    -------
    float
    """
    y = _as_y(y)
    n = y.size
    X = as_matrix(X, "X", n)
    Z = _as_Z(Z, n)
    sigma = _as_sigma(sigma)
    beta = np.asarray(beta, dtype=float).ravel()
    gamma = np.asarray(gamma, dtype=float).ravel()
    if beta.size != X.shape[1]:
        raise ValueError(f"beta has {beta.size} values but X has {X.shape[1]} columns")
    if gamma.size != Z.shape[1]:
        raise ValueError(f"gamma has {gamma.size} values but Z has {Z.shape[1]} columns")
    Psi_inv = _psi_inverse(psi, Z.shape[1], nlevels)
    r = y - X @ beta - Z @ gamma
    return float(r @ r / sigma ** 2 + gamma @ (Psi_inv @ gamma))


# ------------------------------------------------------------------- ridge
def ridge(X, y, lam, penalize=None) -> np.ndarray:
    r"""Ridge regression: least squares with a penalty on the size of some coefficients.

    .. math::

        \hat b(\lambda) = \arg\min_b \lVert y - Xb \rVert^2 + \lambda \sum_{j \in P} b_j^2
        = (X^\top X + \lambda D)^{-1} X^\top y,

    with :math:`D` diagonal, :math:`D_{jj} = 1` for the penalized columns
    :math:`j \in P` and 0 for the others. :math:`\lambda = 0` is ordinary
    least squares; as :math:`\lambda \to \infty` the penalized coefficients
    go to zero and the others to the least-squares fit without those
    columns. For a random-intercept model, ``X`` = ``[X Z]`` with only
    ``Z``'s columns penalized and :math:`\lambda = \sigma^2/\tau^2` gives the
    mixed model's :math:`\hat\beta` and :math:`\hat\gamma`.

    Parameters
    ----------
    X : array_like or sparse matrix, shape (n, p)
        The columns are used as given (no centring or scaling).
    y : array_like, shape (n,)
    lam : float or array_like of float
        Penalty :math:`\lambda \ge 0`; several values give one row of
        coefficients each (the *ridge path*).
    penalize : array_like of bool, shape (p,), optional
        Which coefficients are penalized (default: all).

    Returns
    -------
    ndarray
        Shape (p,) for a single ``lam``, (len(lam), p) for several.

    Raises
    ------
    ValueError
        Shapes that do not match, a negative ``lam``, or a singular
        :math:`X^\top X + \lambda D` (the unpenalized columns, or all columns
        when :math:`\lambda = 0`, are linearly dependent).
    """
    y = _as_y(y)
    n = y.size
    if sp.issparse(X):
        X = sp.csr_matrix(X, dtype=float)
        if X.shape[0] != n:
            raise ValueError(f"X must have {n} rows, one per value of y, got shape {X.shape}")
        XtX = (X.T @ X).toarray()
        Xty = np.asarray(X.T @ y).ravel()
    else:
        X = as_matrix(X, "X", n)
        XtX, Xty = X.T @ X, X.T @ y
    p = XtX.shape[0]
    if penalize is None:
        d = np.ones(p)
    else:
        pen = np.asarray(penalize)
        if pen.dtype != bool or pen.shape != (p,):
            raise ValueError(f"penalize must be {p} booleans, one per column of X, got {pen.dtype} "
                             f"array of shape {pen.shape}")
        d = pen.astype(float)
    lams = np.asarray(lam, dtype=float)
    if lams.ndim > 1:
        raise ValueError("lam must be a number or a 1-d array of numbers")
    if not np.all(np.isfinite(lams)) or np.any(lams < 0):
        raise ValueError(f"lam must be finite and >= 0, got {lam!r}")
    # X'X + lam D is positive definite iff the columns not penalized (all, when lam = 0) have full rank
    free = np.ones(p, dtype=bool) if np.any(lams == 0) else (d == 0)
    Xfree = X[:, np.flatnonzero(free)]
    Xfree = Xfree.toarray() if sp.issparse(Xfree) else Xfree
    try:
        _check_full_rank(Xfree, "the unpenalized columns of X (all columns when lam = 0)")
    except ValueError as err:
        raise ValueError(f"X'X + lam D is singular: {err}") from None
    A = XtX[None, :, :] + lams.reshape(-1)[:, None, None] * np.diag(d)[None, :, :]
    b = np.linalg.solve(A, np.broadcast_to(Xty, (len(A), p))[..., None])[..., 0]
    return b[0] if lams.ndim == 0 else b
