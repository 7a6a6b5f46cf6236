"""R-compatible random numbers: ``set.seed``, ``runif``, ``rnorm``, ``MASS::mvrnorm``.

The reference document simulates its data in R after ``set.seed(1234)``. To carry
its data over bit for bit, :class:`RRandom` reproduces R 4.x's default generators,
``RNGkind("Mersenne-Twister", "Inversion", "Rejection")``:

* the uniform stream is the Mersenne twister of numpy's :class:`numpy.random.MT19937`,
  seeded the way R's ``set.seed`` seeds it (``src/main/RNG.c``), each 32-bit output
  ``k`` giving ``u = k * 2**-32`` (mapped into (0, 1) as R's ``fixup`` does);
* a standard normal is the inversion of two uniforms (``src/nmath/snorm.c``),
  ``z = qnorm((floor(2**27 u1) + u2) / 2**27)``, with ``qnorm`` Wichura's AS 241
  evaluated in the same order as R's ``src/nmath/qnorm.c``;
* ``mvrnorm`` is ``MASS::mvrnorm`` (MASS 7.3-58) step by step, down to the
  summation order of R's reference BLAS and the extended-precision sums of R's
  ``colMeans`` and ``sum``.
"""

import numpy as np
import scipy.linalg

__all__ = ["RRandom", "qnorm"]

_MASK32 = 0xFFFFFFFF
_N = 624                              # Mersenne-twister state length
_TWO_M32 = 2.3283064365386963e-10     # 2^-32, R's MT_genrand multiplier
_I2_32M1 = 2.328306437080797e-10      # 1/(2^32 - 1), R's fixup for 0
_BIG = 134217728.0                    # 2^27, R's INVERSION constant
_MT_KIND = 10403                      # .Random.seed[1]: Mersenne-Twister, Inversion, Rejection

# Wichura (1988), AS 241, PPND16: rational approximations, coefficients highest power first
_A = (2509.0809287301226727, 33430.575583588128105, 67265.770927008700853,
      45921.953931549871457, 13731.693765509461125, 1971.5909503065514427,
      133.14166789178437745, 3.387132872796366608)
_B = (5226.495278852854561, 28729.085735721942674, 39307.89580009271061,
      21213.794301586595867, 5394.1960214247511077, 687.1870074920579083,
      42.313330701600911252, 1.0)
_C = (7.7454501427834140764e-4, .0227238449892691845833, .24178072517745061177,
      1.27045825245236838258, 3.64784832476320460504, 5.7694972214606914055,
      4.6303378461565452959, 1.42343711074968357734)
_D = (1.05075007164441684324e-9, 5.475938084995344946e-4, .0151986665636164571966,
      .14810397642748007459, .68976733498510000455, 1.6763848301838038494,
      2.05319162663775882187, 1.0)
_E = (2.01033439929228813265e-7, 2.71155556874348757815e-5, .0012426609473880784386,
      .026532189526576123093, .29656057182850489123, 1.7848265399172913358,
      5.4637849111641143699, 6.6579046435011037772)
_F = (2.04426310338993978564e-15, 1.4215117583164458887e-7, 1.8463183175100546818e-5,
      7.868691311456132591e-4, .0148753612908506148525, .13692988092273580531,
      .59983220655588793769, 1.0)


def _horner(coef, r):
    """``((c0*r + c1)*r + c2)*r + ...``, the order R's C code writes it."""
    val = coef[0] * r
    for c in coef[1:-1]:
        val = (val + c) * r
    return val + coef[-1]


def qnorm(p):
    """Standard normal quantile, bit-identical to R 4.2's ``qnorm(p)``.

    Wichura's AS 241 (PPND16) as in R's ``src/nmath/qnorm.c``: for
    :math:`|p - 1/2| \\le 0.425`, :math:`z = q\\,A(r)/B(r)` with :math:`q = p - 1/2`,
    :math:`r = 0.180625 - q^2`; otherwise :math:`r = \\sqrt{-\\log\\min(p, 1-p)}` and
    :math:`z = \\pm C(r - 1.6)/D(r - 1.6)` (:math:`r \\le 5`) or
    :math:`\\pm E(r - 5)/F(r - 5)`.

    ``scipy.special.ndtri`` differs from R in the last bit or two, which is why
    this exists.

    Parameters
    ----------
    p : array_like
        Probabilities in [0, 1].

    Returns
    -------
    numpy.ndarray
        The quantiles (``-inf``/``inf`` at 0/1, ``nan`` outside [0, 1]).
    """
    p = np.asarray(p, dtype=float)
    q = p - 0.5
    with np.errstate(divide="ignore", invalid="ignore"):
        r = 0.180625 - q * q
        central = q * _horner(_A, r) / _horner(_B, r)
        r = np.sqrt(-np.log(np.where(q > 0, 1.0 - p, p)))
        tail = np.where(r <= 5.0, _horner(_C, r - 1.6) / _horner(_D, r - 1.6),
                        _horner(_E, r - 5.0) / _horner(_F, r - 5.0))
    val = np.where(np.abs(q) <= 0.425, central, np.where(q < 0, -tail, tail))
    val = np.where(p == 0.0, -np.inf, np.where(p == 1.0, np.inf, val))
    return np.where((p < 0) | (p > 1), np.nan, val)


def _matmul_ref(A, B):
    """``A @ B`` summed as R's reference BLAS ``dgemm`` does: term by term, in order.

    Optimised BLAS (OpenBLAS, MKL) block and fuse the sums, which changes the last
    bits. The loop is over the inner dimension only (2 for the document's psi).
    """
    C = np.zeros((A.shape[0], B.shape[1]))
    for j in range(A.shape[1]):
        C += A[:, j, None] * B[None, j, :]
    return C


def _colmeans(X):
    """R's ``colMeans``: a sequential long-double sum, divided in long double.

    numpy's ``longdouble`` is C's ``long double``, as R's ``LDOUBLE`` is (80-bit on
    x86-64 Linux, plain double on some other platforms), so this follows R there too.
    """
    s = np.cumsum(X.astype(np.longdouble), axis=0)[-1]
    return (s / np.longdouble(X.shape[0])).astype(float)


def _colrms(X):
    """``apply(X, 2, function(v) sqrt(sum(v^2) / max(1, length(v) - 1)))``, R's ``scale``."""
    ss = np.cumsum((X * X).astype(np.longdouble), axis=0)[-1].astype(float)
    return np.sqrt(ss / max(1, X.shape[0] - 1))


# --- svd(X, nu = 0)$v for one or two columns, as R's LAPACK 3.10 computes it -------------
# For an n x 2 matrix (n >= 3) dgesdd takes its "M >> N" path: a Householder QR (dgeqr2),
# a 2 x 2 upper-triangular R that is already bidiagonal (dgebd2's reflectors are all the
# identity), and the 2 x 2 SVD of R by dlasv2 inside dbdsqr. Replaying those few scalar steps
# gives R's singular vectors to the last bit; OpenBLAS's dnrm2 (extended precision) does not.

_TSML, _TBIG = 2.0**-511, 2.0**486        # dnrm2's range for unscaled sums of squares


def _dnrm2(x):
    """Reference BLAS ``dnrm2`` (LAPACK 3.10): a plain sequential sum of squares in range."""
    return np.sqrt(np.cumsum(x * x)[-1]) if x.size else 0.0


def _dlarfg(alpha, x):
    """LAPACK ``dlarfg``: Householder reflector; returns beta, scaled x, tau."""
    xnorm = _dnrm2(x)
    if xnorm == 0.0:
        return alpha, x, 0.0
    w, z = max(abs(alpha), xnorm), min(abs(alpha), xnorm)           # dlapy2
    beta = -np.copysign(w * np.sqrt(1.0 + (z / w) ** 2), alpha)
    return beta, x * (1.0 / (alpha - beta)), (beta - alpha) / beta


def _dlasv2(f, g, h):
    """LAPACK ``dlasv2``: SVD of [[f, g], [0, h]]; returns ssmin, ssmax, snr, csr."""
    sign = np.copysign
    ft, fa, ht, ha = f, abs(f), h, abs(h)
    pmax, swap = 1, abs(h) > abs(f)
    if swap:
        pmax, ft, ht, fa, ha = 3, ht, ft, ha, fa
    gt, ga = g, abs(g)
    gasmal = True
    if ga == 0.0:
        ssmin, ssmax, clt, crt, slt, srt = ha, fa, 1.0, 1.0, 0.0, 0.0
        gasmal = False
    elif ga > fa:
        pmax = 2
        if fa / ga < 2.0**-53:                         # very large g
            gasmal = False
            ssmax = ga
            ssmin = fa / (ga / ha) if ha > 1.0 else (fa / ga) * ha
            clt, slt, srt, crt = 1.0, ht / gt, 1.0, ft / gt
    if gasmal:
        d = fa - ha
        l = 1.0 if d == fa else d / fa
        m = gt / ft
        t = 2.0 - l
        mm = m * m
        s = np.sqrt(t * t + mm)
        r = abs(m) if l == 0.0 else np.sqrt(l * l + mm)
        a = 0.5 * (s + r)
        ssmin, ssmax = ha / a, fa * a
        if mm == 0.0:
            t = sign(2.0, ft) * sign(1.0, gt) if l == 0.0 else gt / sign(d, ft) + m / t
        else:
            t = (m / (s + t) + m / (r + l)) * (1.0 + a)
        l = np.sqrt(t * t + 4.0)
        crt, srt = 2.0 / l, t / l
        clt, slt = (crt + srt * m) / a, (ht / ft) * srt / a
    csl, snl, csr, snr = (srt, crt, slt, clt) if swap else (clt, slt, crt, srt)
    tsign = {1: sign(1.0, csr) * sign(1.0, csl) * sign(1.0, f),
             2: sign(1.0, snr) * sign(1.0, csl) * sign(1.0, g),
             3: sign(1.0, snr) * sign(1.0, snl) * sign(1.0, h)}[pmax]
    return sign(ssmin, tsign * sign(1.0, f) * sign(1.0, h)), sign(ssmax, tsign), snr, csr


def _svd_v(X):
    """``svd(X, nu = 0)$v``: right singular vectors, signs and order as R's."""
    n, p = X.shape
    nz = np.abs(X[X != 0])
    in_range = nz.size == 0 or (nz.min() >= _TSML and nz.max() <= _TBIG)
    if p == 1:                          # dbdsdc with one column: VT = 1
        return np.ones((1, 1))
    if p != 2 or n < 3 or not in_range:
        return np.linalg.svd(X, full_matrices=False)[2].T    # LAPACK dgesdd, OpenBLAS rounding
    # dgeqr2: H1 annihilates column 1 below the diagonal, then is applied to column 2
    r11, v, tau = _dlarfg(X[0, 0], X[1:, 0])
    v = np.concatenate([[1.0], v])
    c = X[:, 1]
    if tau != 0.0:
        w = np.cumsum(c * v)[-1]                          # dgemv, sequential
        c = c + v * (-tau * w)                            # dger
    r12 = c[0]
    r22 = _dlarfg(c[1], c[2:])[0]
    # dbdsqr on the bidiagonal [[r11, r12], [0, r22]]
    d, VT = np.array([r11, r22]), np.eye(2)
    eps = 2.0**-53
    tol = max(10.0, min(100.0, eps**-0.125)) * eps
    sminoa = abs(r11)
    if sminoa != 0.0:
        sminoa = min(sminoa, abs(r22) * (sminoa / (sminoa + abs(r12))))
    thresh = max(tol * (sminoa / np.sqrt(2.0)), 6 * (2 * (2 * np.finfo(float).tiny)))
    if abs(r12) > thresh:
        ssmin, ssmax, snr, csr = _dlasv2(r11, r12, r22)
        d, VT = np.array([ssmax, ssmin]), np.array([[csr, snr], [-snr, csr]])
    VT[d < 0] *= -1.0                                     # singular values made positive
    if abs(d[1]) > abs(d[0]):                             # sorted decreasing
        VT = VT[::-1]
    return VT.T


def _count(n):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"n must be an integer, got {n!r}")
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    return int(n)


def _recycle(value, n, name):
    """R's recycling of a parameter vector to length n."""
    v = np.atleast_1d(np.asarray(value, dtype=float)).ravel()
    if v.size == 0:
        raise ValueError(f"{name} must have at least one value")
    return np.resize(v, n)


class RRandom:
    """Random numbers identical to R's defaults (Mersenne-Twister, Inversion, Rejection).

    ``RRandom(1234).rnorm(5)`` returns the numbers of ``set.seed(1234); rnorm(5)``
    in R 4.x, bit for bit, and successive calls continue the same stream, so a
    sequence of R calls can be replayed call by call.

    Parameters
    ----------
    seed : int, optional
        As in ``set.seed(seed)``; must fit in a 32-bit signed integer. Without a
        seed the generator is seeded from numpy's entropy (not reproducible).

    Attributes
    ----------
    bit_generator : numpy.random.MT19937
        The underlying twister; its 32-bit outputs are R's.

    Notes
    -----
    ``set.seed(seed)`` scrambles the seed with the congruential generator
    :math:`s \\leftarrow 69069 s + 1 \\pmod{2^{32}}` 50 times, then fills R's
    625-integer seed vector with 625 further steps; the first entry is replaced by
    the position 624, so the first draw regenerates the whole state, and the other
    624 are the twister's key.

    A uniform is :math:`u = k\\,2^{-32}` for the twister's next 32-bit output
    :math:`k` (:math:`k = 0` gives :math:`2^{-33}` instead, R's ``fixup``).
    A standard normal uses two uniforms,
    :math:`z = \\Phi^{-1}\\big((\\lfloor 2^{27} u_1 \\rfloor + u_2) / 2^{27}\\big)`.
    """

    def __init__(self, seed=None):
        self.bit_generator = np.random.MT19937()
        if seed is not None:
            self.set_seed(seed)

    def set_seed(self, seed):
        """Seed the generator exactly as R's ``set.seed(seed)``.

        Parameters
        ----------
        seed : int
            An integer in :math:`[-2^{31} + 1, 2^{31} - 1]` (R's integer range).

        Returns
        -------
        RRandom
            ``self``, so that ``RRandom().set_seed(1)`` chains.
        """
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"seed must be an integer, got {seed!r}")
        if not -(2**31) < int(seed) < 2**31:
            raise ValueError(f"seed must fit in a 32-bit signed integer (R's integer), got {seed}")
        s = int(seed) & _MASK32
        for _ in range(50):                     # initial scrambling
            s = (69069 * s + 1) & _MASK32
        key = np.empty(_N + 1, dtype=np.uint32)
        for j in range(_N + 1):                 # i_seed[0..624]; i_seed[0] is then mti
            s = (69069 * s + 1) & _MASK32
            key[j] = s
        self.bit_generator.state = {"bit_generator": "MT19937",
                                    "state": {"key": key[1:], "pos": _N}}
        return self

    @property
    def random_seed(self):
        """The generator state as R's ``.Random.seed`` (626 integers: kind, position, key)."""
        st = self.bit_generator.state["state"]
        head = np.array([_MT_KIND, st["pos"]], dtype=np.int64)
        return np.concatenate([head, st["key"].astype(np.int64)]).astype(np.uint32).view(np.int32)

    def unif_rand(self, n):
        """``n`` draws of R's ``unif_rand()``: uniforms on the open interval (0, 1)."""
        k = self.bit_generator.random_raw(_count(n)).astype(float)
        return np.where(k == 0.0, 0.5 * _I2_32M1, k * _TWO_M32)

    def norm_rand(self, n):
        """``n`` draws of R's ``norm_rand()`` (Inversion); each uses two uniforms."""
        u = self.unif_rand(2 * _count(n)).reshape(-1, 2)
        return qnorm((np.floor(_BIG * u[:, 0]) + u[:, 1]) / _BIG)

    def runif(self, n, min=0.0, max=1.0):
        """Uniform draws as R's ``runif(n, min, max)``: :math:`min + (max - min)\\,u`.

        Parameters
        ----------
        n : int
            Number of draws.
        min, max : float or array_like
            Bounds, recycled to length ``n`` as in R. Where ``min == max`` the
            value is ``min`` and, as in R, no uniform is consumed.

        Returns
        -------
        numpy.ndarray
            Shape ``(n,)``.
        """
        n = _count(n)
        a, b = _recycle(min, n, "min"), _recycle(max, n, "max")
        if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
            raise ValueError("min and max must be finite")
        if np.any(b < a):
            raise ValueError("max must not be smaller than min")
        out = a.copy()
        draw = a != b
        out[draw] = a[draw] + (b[draw] - a[draw]) * self.unif_rand(int(draw.sum()))
        return out

    def rnorm(self, n, mean=0.0, sd=1.0):
        """Normal draws as R's ``rnorm(n, mean, sd)``: :math:`mean + sd\\,z`.

        Parameters
        ----------
        n : int
            Number of draws.
        mean, sd : float or array_like
            Recycled to length ``n`` as in R. Where ``sd == 0`` or ``mean`` is
            infinite the value is ``mean`` and, as in R, nothing is drawn.

        Returns
        -------
        numpy.ndarray
            Shape ``(n,)``.
        """
        n = _count(n)
        mu, s = _recycle(mean, n, "mean"), _recycle(sd, n, "sd")
        if np.any(np.isnan(mu)) or not np.all(np.isfinite(s)) or np.any(s < 0):
            raise ValueError("mean must not be NaN and sd must be finite and non-negative")
        out = mu.copy()
        draw = (s != 0) & np.isfinite(mu)
        out[draw] = mu[draw] + s[draw] * self.norm_rand(int(draw.sum()))
        return out

    def unif_index(self, dn: int) -> int:
        """R's ``R_unif_index(dn)`` (sample.kind "Rejection", R >= 3.6): a uniform integer in ``[0, dn)``.

        Random bits, 16 at a time from ``unif_rand()``, masked to the next
        power of two, rejected until below ``dn``.
        """
        if dn <= 0:
            return 0
        bits = int(np.ceil(np.log2(dn)))
        while True:
            v = 0
            for _ in range(0, bits + 1, 16):
                v = 65536 * v + int(np.floor(self.unif_rand(1)[0] * 65536))
            v &= (1 << bits) - 1
            if v < dn:
                return v

    def sample(self, n: int, size: int) -> np.ndarray:
        """R's ``sample.int(n, size)`` without replacement (1-based values, as R returns them).

        R's algorithm (``do_sample``): draw an index ``j`` below the number
        of values left, take ``x[j]``, move the last value into its place.
        """
        n, size = int(n), int(size)
        if not 0 <= size <= n:
            raise ValueError(f"cannot take a sample of size {size} from {n} values without replacement")
        x = np.arange(n)
        out = np.empty(size, dtype=np.int64)
        left = n
        for i in range(size):
            j = self.unif_index(left)
            out[i] = x[j] + 1
            left -= 1
            x[j] = x[left]
        return out

    def mvrnorm(self, n, mu, Sigma, tol=1e-6, empirical=False):
        """Multivariate normal draws as ``MASS::mvrnorm`` (MASS 7.3-58).

        With :math:`\\Sigma = V \\Lambda V^\\top` (eigenvalues decreasing) and
        :math:`X` the :math:`n \\times p` matrix filled column by column with
        ``rnorm(n * p)``, the draws are the rows of

        .. math:: \\mu^\\top + X \\Lambda^{1/2} V^\\top .

        With ``empirical=True``, :math:`X` is first centred, rotated to its
        principal components (:math:`X \\leftarrow X V_X`, from the SVD
        :math:`X = U D V_X^\\top`) and scaled to unit variance, so that the sample
        mean is exactly :math:`\\mu` and the sample covariance (divisor
        :math:`n - 1`) exactly :math:`\\Sigma`, up to rounding.

        Parameters
        ----------
        n : int
            Number of draws.
        mu : array_like, shape (p,)
            Mean vector.
        Sigma : array_like, shape (p, p)
            Symmetric, positive semi-definite covariance matrix.
        tol : float, optional
            Eigenvalues below ``-tol * |largest eigenvalue|`` are an error.
        empirical : bool, optional
            Make ``mu`` and ``Sigma`` the sample mean and covariance. Needs
            ``n >= max(2, p)``.

        Returns
        -------
        numpy.ndarray
            Shape ``(n, p)``; shape ``(p,)`` when ``n == 1``, as in R.

        Notes
        -----
        Bitwise agreement with R needs R's eigenvectors and singular vectors, which
        come from LAPACK (``dsyevr`` for ``eigen``, ``dgesdd`` for ``svd``).

        * ``eigen``: scipy calls the same ``dsyevr``; for small, well-separated
          problems (the document's 2 x 2 ``psi``) it returns R's vectors, signs
          and bits included.
        * ``svd`` (``empirical=True``): numpy's ``dgesdd`` runs on OpenBLAS, whose
          extended-precision ``dnrm2`` changes the last bits (about 1e-14 in the
          draws). For one or two columns the few scalar steps of R's ``dgesdd``
          (LAPACK 3.10 with reference BLAS) are replayed here instead, which gives
          R's draws bit for bit; three or more columns use numpy's ``svd`` and
          agree with R to rounding only.
        * When ``Sigma`` has a repeated eigenvalue (e.g. the document's 1000 x 1000
          marginal covariance ``Z psiBig Z' + I``, eigenvalue 1 with multiplicity
          800), the eigenvectors of that eigenvalue are any orthonormal basis of
          its eigenspace, and LAPACK's choice depends on the BLAS's rounding.
          The draws then have the right distribution and use R's normal deviates,
          but they are *not* R's numbers.
        """
        n = _count(n)
        mu = np.atleast_1d(np.asarray(mu, dtype=float))
        Sigma = np.asarray(Sigma, dtype=float)
        if mu.ndim != 1 or mu.size == 0:
            raise ValueError(f"mu must be a non-empty vector, got shape {mu.shape}")
        p = mu.size
        if Sigma.shape != (p, p):
            raise ValueError(f"Sigma must be a square {p} x {p} matrix to match mu (length {p}), "
                             f"got shape {Sigma.shape}")
        if not (np.all(np.isfinite(Sigma)) and np.all(np.isfinite(mu))):
            raise ValueError("mu and Sigma must be finite")
        asym = np.max(np.abs(Sigma - Sigma.T), initial=0.0)
        if asym > 100 * np.finfo(float).eps * np.max(np.abs(Sigma), initial=0.0):
            raise ValueError("Sigma must be symmetric")
        if empirical and n < max(2, p):
            raise ValueError(f"empirical=True needs n >= max(2, p) = {max(2, p)} draws, got {n}")
        # eigen(Sigma, symmetric = TRUE): dsyevr on the lower triangle, then decreasing
        ev, V = scipy.linalg.eigh(Sigma, lower=True, driver="evr")
        ev, V = ev[::-1], V[:, ::-1]
        if not np.all(ev >= -tol * abs(ev[0])):
            raise ValueError("'Sigma' is not positive definite")
        X = self.rnorm(p * n).reshape(p, n).T   # matrix(rnorm(p * n), n): column-major
        if empirical:
            X = X - _colmeans(X)                                    # scale(X, TRUE, FALSE)
            Vx = _svd_v(X)                                          # svd(X, nu = 0)$v
            X = _matmul_ref(X, Vx)
            X = X / _colrms(X)                                      # scale(X, FALSE, TRUE)
        A = V * np.sqrt(np.maximum(ev, 0.0))    # eS$vectors %*% diag(sqrt(pmax(ev, 0)), p)
        draws = mu + _matmul_ref(X, A.T)        # t(drop(mu) + A %*% t(X))
        return draws[0] if n == 1 else draws
