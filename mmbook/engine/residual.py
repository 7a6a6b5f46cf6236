"""Correlated residuals within clusters: AR(1) in time and compound symmetry.

The model's residuals are correlated within residual clusters ``c``:

.. math::  e_c \\sim N(0, \\sigma^2 R_c(\\phi)), \\qquad
           \\mathrm{AR(1)}: (R_c)_{ij} = \\phi^{|t_i - t_j|}, \\qquad
           \\mathrm{CS}: (R_c)_{ij} = \\rho \\ (i \\ne j),

(nlme's ``corAR1(form = ~ t | g)``, ``corCAR1`` when the times are not whole
numbers, and ``corCompSymm(form = ~ 1 | g)``). Multiplying the rows of the
model by a *whitening* matrix ``W`` with ``W' W = R^{-1}`` gives a model with
independent residuals, ``W y = W X beta + W Z b + W e`` with
``Var(W e) = sigma^2 I``, to which the penalized least squares machinery
applies unchanged, and the likelihood changes only by the Jacobian:

.. math::  -2\\ell(\\theta, \\phi) = -2\\ell_W(\\theta) + \\log|R(\\phi)| .

``W`` is block diagonal by cluster:

* AR(1), rows sorted by time within the cluster (gaps ``d_t = t_t - t_{t-1}``):
  the first row stays, row ``t`` becomes
  ``(e_t - phi^{d_t} e_{t-1}) / sqrt(1 - phi^{2 d_t})``, and
  ``log|R_c| = sum_t log(1 - phi^{2 d_t})`` (an AR(1) observed at any times
  is Markov: given the past, ``e_t`` depends on ``e_{t-1}`` alone);
* compound symmetry, ``R_c = (1 - rho) (I - P) + (1 + (n_c - 1) rho) P`` with
  ``P`` the averaging matrix:
  ``W e = (e - (1 - a_c) ebar) / sqrt(1 - rho)``,
  ``a_c = sqrt((1 - rho) / (1 + (n_c - 1) rho))``, and
  ``log|R_c| = (n_c - 1) log(1 - rho) + log(1 + (n_c - 1) rho)``.

Whitening mixes rows *within* a residual cluster; a random-effects term keeps
its form (each row in one level of its grouping factor) only when every
cluster lies within one level. :func:`check_nesting` enforces that for the
first term (the one factored level by level); the other terms' ``Z`` is
whitened as a sparse matrix and needs no such condition.

The correlation parameter is optimised on nlme's unconstrained scale:
``phi = tanh(eta / 2)`` (AR(1) with whole-number times),
``phi = 1 / (1 + exp(-eta))`` (continuous times, ``phi`` in (0, 1)),
``rho = (exp(eta) + r0) / (exp(eta) + 1)`` with ``r0 = -1 / (max n_c - 1)``
(compound symmetry).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from .design import factor_codes

__all__ = ["ResidualSpec", "parse_residual", "ResidualCorrelation", "AR1", "CompoundSymmetry",
           "residual_correlation", "check_nesting"]

_NAME = r"[A-Za-z_.][A-Za-z0-9_.]*"


@dataclass(frozen=True)
class ResidualSpec:
    """A residual correlation structure as written: ``ar1(Days | Subject)``, ``cs(1 | g)``.

    Attributes
    ----------
    kind : {"ar1", "cs"}
    time : str or None
        The time covariate of an AR(1) (None: the rows' order within the cluster).
    group : str or None
        The cluster variable (``a:b`` for an interaction); None: one cluster.
    text : str
    """

    kind: str
    time: str | None
    group: str | None
    text: str

    @property
    def variables(self) -> list[str]:
        out = [self.time] if self.time else []
        if self.group:
            out += [g.strip("() ") for g in self.group.split(":")]
        return out


def parse_residual(spec) -> ResidualSpec:
    """Parse ``"ar1(t | g)"``, ``"ar1(t)"``, ``"ar1(1 | g)"``, ``"cs(1 | g)"`` (a ``~`` after the bracket is allowed).

    Raises
    ------
    TypeError
        ``spec`` is not a string.
    ValueError
        Anything else than these forms.
    """
    if isinstance(spec, ResidualSpec):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"residual must be a string such as 'ar1(Days | Subject)' or 'cs(1 | g)', "
                        f"got {type(spec).__name__}")
    text = re.sub(r"\s+", " ", spec.strip())
    m = re.fullmatch(r"(ar1|cs)\s*\(\s*~?\s*(.*?)\s*\)", text, flags=re.I)
    if m is None:
        raise ValueError(f"residual={spec!r}: write 'ar1(time | cluster)' (AR(1) over a time covariate) or "
                         "'cs(1 | cluster)' (compound symmetry)")
    kind, inner = m.group(1).lower(), m.group(2)
    lhs, _, rhs = inner.partition("|")
    lhs, rhs = lhs.strip(), rhs.strip()
    group = None
    if "|" in inner:
        group = re.sub(r"\s+", "", rhs)
        if not all(re.fullmatch(_NAME, v) for v in group.split(":")):
            raise ValueError(f"residual={spec!r}: the cluster after '|' must be a column name (or a:b)")
    time = None if lhs in ("1", "") else lhs
    if time is not None and not re.fullmatch(_NAME, time):
        raise ValueError(f"residual={spec!r}: the time covariate must be a column name, got {time!r}")
    if kind == "cs" and time is not None:
        raise ValueError(f"residual={spec!r}: compound symmetry has no time covariate; write 'cs(1 | {group or 'g'})'")
    return ResidualSpec(kind=kind, time=time, group=group,
                        text=f"{kind}({lhs or '1'}{' | ' + group if group else ''})")


class ResidualCorrelation:
    """Base class: a correlation structure evaluated on a model frame's rows.

    Subclasses define ``value`` (the correlation parameter from ``eta``),
    ``eta_of``, ``whiten``, ``logdet`` and ``color``.

    Attributes
    ----------
    spec : ResidualSpec
    codes : ndarray of int, shape (n,)
        Residual cluster of each row.
    labels : list of str
        Cluster labels.
    """

    name = ""
    parameter = ""

    def __init__(self, spec: ResidualSpec, frame: pd.DataFrame):
        self.spec = spec
        missing = [v for v in spec.variables if v not in frame.columns]
        if missing:
            raise KeyError(f"residual={spec.text!r}: variable {missing[0]!r} not found in data")
        if spec.group:
            self.codes, self.labels = factor_codes(frame, spec.group)
        else:
            self.codes, self.labels = np.zeros(len(frame), dtype=np.int64), ["1"]
        self.n = len(frame)
        self.sizes = np.bincount(self.codes, minlength=len(self.labels))

    @property
    def start_values(self) -> list[float]:
        """Values of the parameter from which the optimizer may start (the best one is used)."""
        return [0.0]

    def whiten_columns(self, eta: float, M):
        """``W M`` for a dense array (1-D or 2-D) or a sparse matrix with ``n`` rows."""
        raise NotImplementedError

    def matrix(self, eta: float, cluster=0) -> np.ndarray:
        """``R_c``: the correlation matrix of one cluster's rows (in the data's order)."""
        raise NotImplementedError

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """All ordered pairs of rows ``(i, j)`` in the same cluster (both orders, and ``i == j``)."""
        order = np.argsort(self.codes, kind="stable")
        sz = self.sizes[self.codes[order]]
        start = np.repeat(np.concatenate([[0], np.cumsum(self.sizes)[:-1]]), self.sizes)
        i = np.repeat(np.arange(self.n), sz)
        first = np.repeat(np.cumsum(sz) - sz, sz)
        j = start[i] + (np.arange(len(i)) - first)
        return order[i], order[j]

    def full_matrix(self, eta: float) -> sp.csr_matrix:
        """``R``: the ``n x n`` correlation matrix of all residuals (block diagonal by cluster), sparse."""
        i, j = self.pairs()
        return sp.csr_matrix((self.pair_values(eta, i, j), (i, j)), shape=(self.n, self.n))

    def summary_line(self, eta: float) -> str:
        return f"Correlation structure: {self.name} ({self.spec.text}), {self.parameter} = {self.value(eta):.4f}"


class AR1(ResidualCorrelation):
    """AR(1) in time within clusters: ``corr(e_i, e_j) = phi^|t_i - t_j|`` (nlme's ``corAR1``/``corCAR1``)."""

    name = "AR(1)"
    parameter = "phi"

    def __init__(self, spec: ResidualSpec, frame: pd.DataFrame):
        super().__init__(spec, frame)
        n = self.n
        if spec.time is None:  # positions within the cluster, in the data's order
            t = np.empty(n)
            order0 = np.argsort(self.codes, kind="stable")
            start = np.concatenate([[0], np.cumsum(self.sizes)[:-1]])
            t[order0] = np.arange(n) - np.repeat(start, self.sizes)
        else:
            col = frame[spec.time]
            if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
                raise TypeError(f"residual={spec.text!r}: the time covariate {spec.time!r} must be numeric")
            t = col.to_numpy(dtype=float)
            if not np.all(np.isfinite(t)):
                raise ValueError(f"residual={spec.text!r}: the time covariate {spec.time!r} has missing or "
                                 "infinite values")
        self.time = t
        order = np.lexsort((t, self.codes))
        cs, ts = self.codes[order], t[order]
        first = np.ones(n, dtype=bool)
        first[1:] = cs[1:] != cs[:-1]
        dup = ~first & (np.diff(ts, prepend=np.nan) == 0)
        if dup.any():
            i = order[np.flatnonzero(dup)[0]]
            raise ValueError(f"residual={spec.text!r}: times must be unique within each cluster; "
                             f"cluster {self.labels[self.codes[i]]!r} has {spec.time} = {t[i]:g} twice")
        later = np.flatnonzero(~first)
        self.rows = order[later]          # rows that have a predecessor
        self.prev = order[later - 1]      # ... and that predecessor
        self.gaps = ts[later] - ts[later - 1]
        self.integer = bool(np.all(self.gaps == np.round(self.gaps)))
        if not self.integer:
            self.name = "continuous AR(1)"

    # parameter maps: nlme's unconstrained scales (corAR1, corCAR1)
    def value(self, eta: float) -> float:
        if self.integer:
            return float(np.tanh(eta / 2.0))
        return float(1.0 / (1.0 + np.exp(-eta)))

    def eta_of(self, phi: float) -> float:
        if self.integer:
            if not -1.0 < phi < 1.0:
                raise ValueError(f"phi must be in (-1, 1), got {phi}")
            return float(np.log((1.0 + phi) / (1.0 - phi)))
        if not 0.0 < phi < 1.0:
            raise ValueError(f"phi of a continuous-time AR(1) must be in (0, 1), got {phi}")
        return float(np.log(phi / (1.0 - phi)))

    @property
    def bounds(self) -> tuple[float, float]:
        """The range of ``phi``: (-1, 1), or (0, 1) for continuous times."""
        return (-1.0, 1.0) if self.integer else (0.0, 1.0)

    @property
    def start_values(self) -> list[float]:
        phis = [0.0, 0.3, 0.6, 0.9, -0.3] if self.integer else [0.2, 0.5, 0.8]
        return [self.eta_of(p) for p in phis]

    def _coefficients(self, eta):
        phi = self.value(eta)
        a = np.power(phi, self.gaps)
        s = np.sqrt(1.0 - a * a)
        return a, s

    def logdet(self, eta: float) -> float:
        """``log|R| = sum_t log(1 - phi^{2 d_t})``."""
        a, _ = self._coefficients(eta)
        return float(np.log1p(-a * a).sum())

    def W(self, eta: float) -> sp.csr_matrix:
        """The whitening matrix (sparse, two entries per row)."""
        a, s = self._coefficients(eta)
        n = self.n
        d = np.ones(n)
        d[self.rows] = 1.0 / s
        rows = np.concatenate([np.arange(n), self.rows])
        cols = np.concatenate([np.arange(n), self.prev])
        vals = np.concatenate([d, -a / s])
        return sp.csr_matrix((vals, (rows, cols)), shape=(n, n))

    def whiten_columns(self, eta: float, M):
        if sp.issparse(M):
            return (self.W(eta) @ M).tocsc()
        M = np.asarray(M, dtype=float)
        a, s = self._coefficients(eta)
        out = M.copy()
        if M.ndim == 1:
            out[self.rows] = (M[self.rows] - a * M[self.prev]) / s
        else:
            out[self.rows] = (M[self.rows] - a[:, None] * M[self.prev]) / s[:, None]
        return out

    def color(self, eta: float, E: np.ndarray) -> np.ndarray:
        """``W^{-1} E``: draws with covariance ``R`` from independent standard draws ``E`` (n or n x k)."""
        out = spla.spsolve(self.W(eta).tocsc(), np.asarray(E, dtype=float))
        return out.reshape(np.shape(E))

    def pair_values(self, eta: float, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """``R_ij = phi^|t_i - t_j|`` for rows ``i``, ``j`` of one cluster."""
        return np.power(self.value(eta), np.abs(self.time[i] - self.time[j]))

    def matrix(self, eta: float, cluster=0) -> np.ndarray:
        c = self.labels.index(str(cluster)) if not isinstance(cluster, (int, np.integer)) else int(cluster)
        t = self.time[self.codes == c]
        return np.power(self.value(eta), np.abs(t[:, None] - t[None, :]))


class CompoundSymmetry(ResidualCorrelation):
    """Equal correlation ``rho`` between any two residuals of a cluster (nlme's ``corCompSymm``)."""

    name = "compound symmetry"
    parameter = "rho"

    def __init__(self, spec: ResidualSpec, frame: pd.DataFrame, estimate: bool = True):
        super().__init__(spec, frame)
        self.maxn = int(self.sizes.max())
        if self.maxn < 2 and estimate:
            raise ValueError(f"residual={spec.text!r}: every cluster has one row; there is no correlation to estimate")
        self.lower = -1.0 / (self.maxn - 1) if self.maxn > 1 else -1.0
        self.row_sizes = self.sizes[self.codes].astype(float)
        self.C = sp.csr_matrix((np.ones(self.n), (np.arange(self.n), self.codes)),
                               shape=(self.n, len(self.labels)))

    def value(self, eta: float) -> float:
        e = np.exp(-abs(eta))  # stable for either sign
        frac = 1.0 / (1.0 + e) if eta >= 0 else e / (1.0 + e)
        return float(self.lower + (1.0 - self.lower) * frac)

    def eta_of(self, rho: float) -> float:
        if not self.lower < rho < 1.0:
            raise ValueError(f"rho must be in ({self.lower:.4g}, 1), got {rho}")
        return float(np.log((rho - self.lower) / (1.0 - rho)))

    @property
    def bounds(self) -> tuple[float, float]:
        """The range of ``rho``: (-1 / (max n_c - 1), 1)."""
        return (self.lower, 1.0)

    @property
    def start_values(self) -> list[float]:
        return [self.eta_of(r) for r in (0.0, 0.3, 0.6)]

    def logdet(self, eta: float) -> float:
        rho = self.value(eta)
        m = self.sizes
        return float(((m - 1) * np.log1p(-rho) + np.log1p((m - 1) * rho)).sum())

    def _a(self, rho):
        return np.sqrt((1.0 - rho) / (1.0 + (self.row_sizes - 1.0) * rho))

    def _mean(self, M):
        """Cluster means of the columns of ``M``, per row."""
        inv = 1.0 / self.sizes
        if sp.issparse(M):
            return self.C @ (sp.diags(inv) @ (self.C.T @ M))
        return (self.C @ ((self.C.T @ M) * (inv if M.ndim == 1 else inv[:, None])))

    def whiten_columns(self, eta: float, M):
        rho = self.value(eta)
        f = 1.0 - self._a(rho)
        if sp.issparse(M):
            return ((M - sp.diags(f) @ self._mean(M)) / np.sqrt(1.0 - rho)).tocsc()
        M = np.asarray(M, dtype=float)
        mean = self._mean(M)
        return (M - (f * mean if M.ndim == 1 else f[:, None] * mean)) / np.sqrt(1.0 - rho)

    def color(self, eta: float, E: np.ndarray) -> np.ndarray:
        rho = self.value(eta)
        E = np.asarray(E, dtype=float)
        g = 1.0 - 1.0 / self._a(rho)
        mean = self._mean(E)
        return np.sqrt(1.0 - rho) * (E - (g * mean if E.ndim == 1 else g[:, None] * mean))

    def pair_values(self, eta: float, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """``R_ij = rho`` for rows ``i != j`` of one cluster, 1 on the diagonal."""
        return np.where(i == j, 1.0, self.value(eta))

    def matrix(self, eta: float, cluster=0) -> np.ndarray:
        c = self.labels.index(str(cluster)) if not isinstance(cluster, (int, np.integer)) else int(cluster)
        m = int(self.sizes[c])
        rho = self.value(eta)
        return (1.0 - rho) * np.eye(m) + rho


def residual_correlation(spec, frame: pd.DataFrame, estimate: bool = True) -> ResidualCorrelation:
    """The correlation structure ``spec`` (a string or :class:`ResidualSpec`) on ``frame``'s rows.

    ``estimate=False``: only to apply a known correlation (simulating new
    data), where clusters of one row are no error.
    """
    spec = parse_residual(spec)
    return AR1(spec, frame) if spec.kind == "ar1" else CompoundSymmetry(spec, frame, estimate=estimate)


def check_nesting(corr: ResidualCorrelation, term) -> None:
    """Every residual cluster must lie within one level of ``term``'s grouping factor.

    Raises
    ------
    ValueError
        A cluster spans several levels (whitening would mix the levels'
        rows, and the term would no longer have one level per row).
    """
    codes, refs = corr.codes, term.refs
    m = len(corr.labels)
    lo = np.full(m, np.iinfo(np.int64).max)
    hi = np.full(m, -1)
    np.minimum.at(lo, codes, refs)
    np.maximum.at(hi, codes, refs)
    bad = np.flatnonzero(lo != hi)
    if bad.size:
        raise ValueError(
            f"residual={corr.spec.text!r}: the residual clusters must be nested in the grouping factor "
            f"{term.group!r} of the random-effects term ({term.bar.text}), but cluster "
            f"{corr.labels[bad[0]]!r} has rows in several of its levels (and {bad.size - 1} more clusters). "
            "Use clusters within the levels of that factor (e.g. the same factor).")
