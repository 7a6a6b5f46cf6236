"""A well-conditioned parameterisation of the same model, and the exact map back.

The profiled criterion depends on the units of the data only through
constants, but an optimizer does not: with ``Days`` in microseconds the
relative covariance factor has entries of ``1e-7`` and ``1e5`` side by side,
and a covariate near ``1e6`` makes ``X'X`` and ``Z'Z`` lose twelve of their
sixteen digits to cancellation. mmbook therefore fits an *equivalent* model
in centred and scaled columns and maps the result back, exactly.

For every random-effects term, ``z~ = z S`` with ``S`` invertible (``q x q``):
when the constant is in the span of the term's columns (an intercept, or
the dummies of a factor), the other columns are centred on it; every
column is scaled to unit size; columns still nearly collinear after that
(an interaction of a far-from-zero covariate with a factor) are
orthogonalised. Likewise ``X~ = X G``, and ``y~ = (y - c_y) / s_y``
(centred only when the constant is in the column space of ``X``). The
model is unchanged:

.. math::

    b = s_y S \\tilde b, \\qquad \\Psi = S \\tilde\\Psi S', \\qquad
    T T' = S \\tilde T \\tilde T' S', \\qquad
    \\beta = s_y G \\tilde\\beta + c_y w \\quad (X w = 1),

so ``T`` is the lower-triangular factor of the LQ decomposition of
``S T~`` (``S T~ = T Q``, ``Q`` orthogonal: no squaring of the condition
number), and the spherical random effects map by ``u = s_y Q u~``. The
criteria differ by constants (``|I + Z Lambda Lambda' Z'|`` is the same in
both parameterisations, ``pwrss = s_y^2 pwrss~`` and
``R_X R_X' = G^{-T} R~_X R~_X' G^{-1}``):

.. math::

    -2\\ell(\\theta) = -2\\tilde\\ell(\\tilde\\theta) + 2 d \\log s_y
        - [\\text{REML}]\\, 2 \\log|\\det G|,
    \\qquad d = n - p \\text{ (REML) or } n \\text{ (ML)}.

The same constants give the closed-form invariances the tests check:
scaling a column of ``X`` by ``c`` adds ``2 log|c|`` to the REML criterion
and nothing to the ML deviance; scaling ``y`` by ``c`` adds
``2 d log|c|``.

:class:`ConditionedPLS` is the predictor every fit uses: the optimizer works
on ``theta~`` (:meth:`ConditionedPLS.objective_par`), and every other method
takes and returns the original units, so the fit object, intervals and
tests see lme4's ``theta`` while the numbers are computed where they are
accurate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import scipy.linalg as sla

from .design import ModelFrame
from .pls import PLS, PLSSolution

__all__ = ["Conditioning", "ConditionedPLS", "lq_lower", "column_moments", "constant_direction"]


def lq_lower(M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``M = L Q`` with ``L`` lower triangular (non-negative diagonal) and ``Q`` orthogonal.

    Givens rotations of the columns (for the small ``q`` of a random-effects
    term), or the QR decomposition of ``M'`` for larger matrices: backward
    stable either way, so ``L`` is accurate even when ``M M'`` is
    ill-conditioned (no Cholesky factor of a product is formed).
    """
    M = np.asarray(M, dtype=float)
    k = M.shape[0]
    if k == 1:
        m = float(M[0, 0])
        return np.array([[abs(m)]]), np.array([[-1.0 if m < 0 else 1.0]])
    if k > 4:
        Qt, R = np.linalg.qr(M.T)
        d = np.where(np.diag(R) < 0, -1.0, 1.0)
        return R.T * d[None, :], (Qt * d[None, :]).T
    L = M.tolist()
    Q = [[float(i == j) for j in range(k)] for i in range(k)]  # M = L Q: rotations act on L's columns, Q's rows
    for i in range(k):
        for j in range(k - 1, i, -1):  # zero L[i][j] against L[i][i]
            a, b = L[i][i], L[i][j]
            if b == 0.0:
                continue
            r = math.hypot(a, b)
            c, s_ = a / r, b / r
            for row in L:
                x, y = row[i], row[j]
                row[i], row[j] = c * x + s_ * y, -s_ * x + c * y
            qi, qj = Q[i], Q[j]
            for t in range(k):
                x, y = qi[t], qj[t]
                qi[t], qj[t] = c * x + s_ * y, -s_ * x + c * y
        if L[i][i] < 0.0:
            for row in L:
                row[i] = -row[i]
            Q[i] = [-v for v in Q[i]]
    for i in range(k):
        for j in range(i + 1, k):
            L[i][j] = 0.0
    return np.array(L), np.array(Q)


def constant_direction(M: np.ndarray, tol: float = 1e-9) -> np.ndarray | None:
    """``w`` with ``M w = 1`` when the constant is in the column space of ``M``, else None.

    A constant column gives ``w`` exactly; otherwise (dummy columns of a
    factor without an intercept, ``0 + f``) least squares on the columns
    scaled to unit root mean square, accepted when ``max|M w - 1| <= tol``.
    """
    n, k = M.shape
    if n == 0 or k == 0:
        return None
    w = np.zeros(k)
    first = M[0]
    for j in range(k):  # a constant column: three cheap looks, then one pass over that column only
        if first[j] != 0 and M[-1, j] == first[j] and M[n // 2, j] == first[j] and np.all(M[:, j] == first[j]):
            w[j] = 1.0 / first[j]
            return w
    rms = np.sqrt(np.mean(M ** 2, axis=0))
    rms[~(rms > 0)] = 1.0
    ws = np.linalg.lstsq(M / rms, np.ones(n), rcond=None)[0]
    w = ws / rms
    if not np.all(np.isfinite(w)) or np.max(np.abs(M @ w - 1.0)) > tol:
        return None
    w[np.abs(ws) <= 1e-12 * np.max(np.abs(ws))] = 0.0
    return w


def column_moments(M: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Means, standard deviations (divisor ``n``) and root mean squares of the columns of ``M``.

    One shifted pass and BLAS (numpy's column reductions of a tall ``(n, 2)``
    array are slow); the shift by the first row keeps ``E[d^2] - E[d]^2``
    free of cancellation for a column far from zero.
    """
    n = M.shape[0]
    x0 = M[0]
    D = M - x0
    s1 = np.ones(n) @ D / n
    s2 = np.einsum("ij,ij->j", D, D) / n
    sd = np.sqrt(np.maximum(s2 - s1 * s1, 0.0))
    rms = np.sqrt(np.maximum(s2 + 2.0 * x0 * s1 + x0 * x0, 0.0))
    return x0 + s1, sd, rms


def _column_map(M: np.ndarray, w: np.ndarray | None) -> np.ndarray:
    """``S`` with the columns of ``M S`` centred (when ``M w = 1``) and of unit scale.

    The columns that make up the constant (the support of ``w``) are only
    scaled, to unit root mean square; every other column ``j`` becomes
    ``(M_j - mean_j M w) / sd_j``. ``S = (I - w m') D`` is invertible
    (``m' w = 0``, the centred columns being outside the support of ``w``).
    """
    n, k = M.shape
    S = np.eye(k)
    if n == 0 or k == 0:
        return S
    mean, sd, rms = column_moments(M)
    support = np.zeros(k, dtype=bool) if w is None else w != 0
    for j in range(k):
        if w is not None and not support[j] and sd[j] > 0 and np.isfinite(sd[j]):
            S[:, j] = -mean[j] * w / sd[j]
            S[j, j] = 1.0 / sd[j]
        elif rms[j] > 0 and np.isfinite(rms[j]):
            S[j, j] = 1.0 / rms[j]
    return S


def _condition_columns(M: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(S, M S, w)``: ``M S`` has centred, unit-scale, (nearly) orthogonal columns; ``M w = 1`` or None.

    First :func:`_column_map` (centre on the constant when it is in the span
    of the columns, scale). Columns that are still nearly collinear (a
    far-from-zero covariate's interaction with a factor, against the
    factor) are then orthogonalised: ``R`` from the Cholesky factor of their
    Gram matrix ``C = (M S)'(M S) / n`` (well enough conditioned after the
    centring), or from a QR decomposition when ``C`` is too ill-conditioned
    for that, and ``S <- S R^{-1}``. Rank-deficient columns keep the first
    map.
    """
    n, k = M.shape
    w = constant_direction(M)
    S = _column_map(M, w)
    M1 = np.ascontiguousarray(M @ S)
    if n < k or k < 2:
        return S, M1, w
    C = (M1.T @ M1) / n
    if not np.all(np.isfinite(C)):
        return S, M1, w
    ev = np.linalg.eigvalsh(C)
    if ev[0] > 1e-4 * ev[-1]:  # well conditioned already: keep the simple map
        return S, M1, w
    if ev[0] <= 1e-20 * ev[-1]:  # rank deficient: nothing to orthogonalise
        return S, M1, w
    try:
        R = np.linalg.cholesky(C).T if ev[0] > 1e-12 * ev[-1] else None
    except np.linalg.LinAlgError:
        R = None
    if R is None:
        R = np.linalg.qr(M1, mode="r") / np.sqrt(n)
        R = R * np.where(np.diag(R) < 0, -1.0, 1.0)[:, None]
    Rinv = sla.solve_triangular(R, np.eye(k))
    return S @ Rinv, np.ascontiguousarray(M1 @ Rinv), w


@dataclass(frozen=True)
class Conditioning:
    """The column maps from the original model to its well-conditioned equivalent.

    Attributes
    ----------
    S : tuple of ndarray
        Per random-effects term, ``z~ = z S`` (``q x q``).
    G : ndarray, shape (p, p)
        ``X~ = X G``.
    w : ndarray, shape (p,)
        ``X w = 1`` (zeros when the constant is not in the column space of ``X``).
    c_y, s_y : float
        ``y~ = (y - c_y) / s_y``.
    """

    S: tuple
    G: np.ndarray
    w: np.ndarray
    c_y: float
    s_y: float

    @classmethod
    def of(cls, mf: ModelFrame, enabled: bool = True) -> tuple["Conditioning", ModelFrame]:
        """The conditioning of a model frame and the conditioned frame (``y~``, ``X~``, terms with ``z~``).

        With ``enabled=False``, the identity map and the frame itself.
        """
        p = mf.p
        if not enabled:
            ident = cls(S=tuple(np.eye(t.q) for t in mf.terms), G=np.eye(p), w=np.zeros(p), c_y=0.0, s_y=1.0)
            return ident, mf
        # X~ and y~ side by side in one column-major array (PLS.reweight reads its columns in place:
        # mmbook.engine.pls.joined_columns), and each term's z~ column-major: no further copies of n rows
        G, Xc, w = _condition_columns(mf.X)
        XY = np.empty((mf.n, p + 1), order="F")
        XY[:, :p] = Xc
        del Xc
        X = XY[:, :p]
        S, terms = [], []
        for t in mf.terms:
            if t.structure == "identity":  # T = theta I (a smooth): one scale for all its columns keeps it
                rms = float(np.sqrt(np.mean(t.z ** 2))) if t.z.size else 1.0
                scale = 1.0 / rms if rms > 0 and np.isfinite(rms) else 1.0
                S.append(scale * np.eye(t.q))
                terms.append(replace(t, z=np.asfortranarray(t.z * scale)))
                continue
            if t.z is mf.X:  # the term's columns are X's (design.model_frame shares them): z~ = X~, S = G
                S.append(G)
                terms.append(replace(t, z=X))
                continue
            St, zt, _ = _condition_columns(t.z)
            S.append(St)
            terms.append(replace(t, z=np.asfortranarray(zt)))
            del zt
        y = mf.y_offset  # the response the penalized least squares problem fits (y minus any offset)
        if w is not None:
            c_y = float(np.mean(y))
            np.subtract(y, c_y, out=XY[:, p])
            s_y = float(np.sqrt(np.mean(XY[:, p] ** 2)))
        else:
            w = np.zeros(p)
            c_y = 0.0
            XY[:, p] = y
            s_y = float(np.sqrt(np.mean(y ** 2))) if len(y) else 1.0
        if not (s_y > 0 and np.isfinite(s_y)):
            s_y = 1.0
        XY[:, p] /= s_y  # y~ = (y - c_y) / s_y
        cond = cls(S=tuple(S), G=G, w=w, c_y=c_y, s_y=s_y)
        # the offset is taken out of y here (prior weights stay: they scale rows, not columns)
        return cond, replace(mf, y=XY[:, p], offset=None, X=X, terms=terms)

    @property
    def log_abs_det_G(self) -> float:
        return float(np.linalg.slogdet(self.G)[1]) if len(self.G) else 0.0

    def offset(self, n: int, p: int, REML: bool) -> float:
        """Original criterion minus the conditioned one (a constant)."""
        dof = n - p if REML else n
        out = 2.0 * dof * np.log(self.s_y)
        if REML:
            out -= 2.0 * self.log_abs_det_G
        return float(out)


class ConditionedPLS:
    """The predictor of :class:`~mmbook.engine.pls.PLS`, computed in a well-conditioned parameterisation.

    Every method takes and returns the original units (``theta`` of lme4,
    ``beta`` and ``b`` on the data's scale), and agrees with ``PLS(mf)``
    wherever that one is accurate. The optimizer works on the conditioned
    parameters through :meth:`objective_par`; :meth:`theta_of` and
    :meth:`par_of` map between the two (per term, ``T = LQ(S T~)``).

    Parameters
    ----------
    mf : ModelFrame
    REML : bool
    condition : bool
        False: the identity map (the raw parameterisation, as lme4's).
    """

    def __init__(self, mf: ModelFrame, REML: bool = True, condition: bool = True, _cond=None):
        self.mf = mf
        if _cond is None:
            self.cond, frame = Conditioning.of(mf, condition)
        else:
            self.cond, frame = _cond
        self._frame = frame
        self.inner = PLS(frame, REML=REML)
        self.terms = mf.terms
        self.n, self.p = mf.n, mf.p
        self.X, self.y = mf.X, mf.y
        self.theta_offsets = self.inner.theta_offsets
        self.lower = self.inner.lower
        self.theta0 = self.inner.theta0
        self.offset = self.cond.offset(self.inner.response.n, self.p, REML)  # n: rows with positive weight
        self._maps = [_ScalarMap(S[0, 0]) if t.structure == "identity" else _TermMap(S)
                      for t, S in zip(mf.terms, self.cond.S)]
        self._GinvT = np.linalg.inv(self.cond.G).T if self.p else self.cond.G
        self._logdetG = self.cond.log_abs_det_G
        self._GinvT_lower = bool(np.array_equal(self._GinvT, np.tril(self._GinvT))
                                 and np.all(np.diag(self._GinvT) > 0))
        self._cache: dict = {}

    @property
    def REML(self) -> bool:
        return self.inner.REML

    @property
    def response(self):
        return self.inner.response

    def with_REML(self, REML: bool) -> "ConditionedPLS":
        """The same predictor with the other criterion (REML or ML deviance)."""
        return ConditionedPLS(self.mf, REML=REML, _cond=(self.cond, self._frame))

    # ------------------------------------------------------------ the maps
    def theta_of(self, par: np.ndarray) -> np.ndarray:
        """``theta`` (original units) of conditioned parameters ``par``."""
        par = np.asarray(par, dtype=float)
        theta = np.empty_like(par)
        o = self.theta_offsets
        for k, m in enumerate(self._maps):
            theta[o[k]:o[k + 1]] = m.forward(par[o[k]:o[k + 1]])
        theta[o[-1]:] = par[o[-1]:]  # a residual correlation's parameter: not touched by the column maps
        self._remember(theta, par)
        return theta

    def par_of(self, theta: np.ndarray) -> np.ndarray:
        """Conditioned parameters of ``theta`` (original units)."""
        theta = np.asarray(theta, dtype=float)
        hit = self._cache.get(theta.tobytes())
        if hit is not None:
            return hit.copy()
        par = np.empty_like(theta)
        o = self.theta_offsets
        for k, m in enumerate(self._maps):
            par[o[k]:o[k + 1]] = m.backward(theta[o[k]:o[k + 1]])
        par[o[-1]:] = theta[o[-1]:]
        return par

    def _remember(self, theta, par):
        # theta_of(par) followed by par_of(theta) returns par exactly (the fit's estimates)
        if len(self._cache) > 64:
            self._cache.clear()
        self._cache[theta.tobytes()] = par.copy()

    def start_par(self) -> np.ndarray:
        """Conditioned starting parameters (:meth:`PLS.moment_start` of the conditioned model)."""
        return self.inner.moment_start()

    def moment_start(self) -> np.ndarray:
        return self.theta_of(self.start_par())

    def is_singular(self, theta: np.ndarray, tol: float) -> bool:
        """A diagonal element of some ``T~`` below ``tol`` (decided in the conditioned parameterisation)."""
        return bool(np.any(self.par_of(theta)[self.lower == 0] < tol))

    # ---------------------------------------------------------- criterion
    def objective_par(self, par: np.ndarray) -> float:
        """The criterion at conditioned parameters, in the conditioned units (the optimizer's function).

        ``inf`` where it is not defined (a factor that is not positive
        definite; non-finite parameters), without numpy's warnings.
        """
        par = np.asarray(par, dtype=float)
        if not np.all(np.isfinite(par)):
            return np.inf
        with np.errstate(all="ignore"):
            v = self.inner.objective(par)
        return v if np.isfinite(v) else np.inf

    def objective(self, theta: np.ndarray) -> float:
        """Profiled REML criterion or ML deviance at ``theta``, original units (``inf`` where undefined)."""
        theta = np.asarray(theta, dtype=float)
        if not np.all(np.isfinite(theta)):
            return np.inf
        return self.objective_par(self.par_of(theta)) + self.offset

    def T(self, k: int, theta: np.ndarray) -> np.ndarray:
        o = self.theta_offsets
        return self.terms[k].T(np.asarray(theta, dtype=float)[o[k]:o[k + 1]])

    def __getattr__(self, name):
        """Anything else of :class:`PLS` (``factor``, the cross-products, ...): from the plain predictor.

        Those work in the original parameterisation (lme4's ``L``, ``R_X``);
        the plain predictor is built on first use.
        """
        if name.startswith("__") or name in ("mf", "inner", "_plain_pls"):
            raise AttributeError(name)
        plain = self.__dict__.get("_plain_pls")
        if plain is None:
            plain = self.__dict__["_plain_pls"] = PLS(self.mf, REML=self.inner.REML)
        return getattr(plain, name)

    def reweight(self, sqrtw=None, y=None) -> "ConditionedPLS":
        """:meth:`PLS.reweight` with ``y`` in the original units."""
        if y is not None:
            self.y = np.asarray(y, dtype=float)
            y = (self.y - self.cond.c_y) / self.cond.s_y
        self.inner.reweight(sqrtw, y)
        return self

    # ------------------------------------------------------------ solution
    def solve(self, theta: np.ndarray) -> PLSSolution:
        """:meth:`PLS.solve` at ``theta``, every piece in the original units."""
        theta = np.asarray(theta, dtype=float)
        par = self.par_of(theta)
        s = self.inner.solve(par)
        c = self.cond
        beta = c.s_y * (c.G @ s.beta) + c.c_y * c.w
        u, gamma = [], []
        o = self.theta_offsets
        for k, (m, S) in enumerate(zip(self._maps, c.S)):
            Q = m.rotation(par[o[k]:o[k + 1]])
            u.append(c.s_y * (s.u[k] if Q is None else s.u[k] @ Q.T))
            gamma.append(c.s_y * (s.gamma[k] @ S.T))
        if not self.p:
            RX = s.RX
        elif self._GinvT_lower:  # G^{-T} R~_X is lower triangular with a positive diagonal
            RX = self._GinvT @ s.RX
        else:
            RX = lq_lower(self._GinvT @ s.RX)[0]
        return PLSSolution(theta=theta.copy(), beta=beta, u=u, gamma=gamma, pwrss=c.s_y ** 2 * s.pwrss,
                           logdet_L=s.logdet_L, logdet_RX=s.logdet_RX - 2.0 * self._logdetG, RX=RX)

    def condvar(self, theta: np.ndarray) -> list[np.ndarray]:
        """:meth:`PLS.condvar` at ``theta`` in the original units: ``S V~ S'`` per level."""
        V = self.inner.condvar(self.par_of(theta))
        return [np.matmul(np.matmul(S[None], v), S.T[None]) for S, v in zip(self.cond.S, V)]


class _ScalarMap:
    """``theta_k`` <-> ``theta~_k`` for a term with ``T = theta I`` and ``z~ = s z``: ``theta = s theta~``."""

    def __init__(self, scale: float):
        self.scale = float(scale)

    def forward(self, par_k):
        return self.scale * np.asarray(par_k, dtype=float)

    def backward(self, theta_k):
        return np.asarray(theta_k, dtype=float) / self.scale

    def rotation(self, par_k):
        return None


class _TermMap:
    """``theta_k`` <-> ``theta~_k`` for one term with ``z~ = z S``: ``T = LQ(S T~)``, ``T~ = LQ(S^{-1} T)``.

    A diagonal ``S`` (no centring) keeps ``S T~`` lower triangular: the map
    is then a scaling of ``T``'s rows, with no rotation.
    """

    def __init__(self, S):
        self.S = S
        self.Sinv = np.linalg.inv(S)
        self.q = len(S)
        cols, rows = np.triu_indices(self.q)  # column-major lower triangle (lme4's order)
        self.rows, self.cols = rows, cols
        self.diagonal = np.array_equal(S, np.diag(np.diag(S)))
        self.row_scale = np.diag(S)[rows]

    def _T(self, v):
        T = np.zeros((self.q, self.q))
        T[self.rows, self.cols] = v
        return T

    def forward(self, par_k):
        if self.diagonal:
            return self.row_scale * par_k
        return lq_lower(self.S @ self._T(par_k))[0][self.rows, self.cols]

    def backward(self, theta_k):
        if self.diagonal:
            return theta_k / self.row_scale
        return lq_lower(self.Sinv @ self._T(theta_k))[0][self.rows, self.cols]

    def rotation(self, par_k):
        """``Q`` of ``S T~ = T Q`` (None for the identity)."""
        if self.diagonal:
            return None
        return lq_lower(self.S @ self._T(par_k))[1]
