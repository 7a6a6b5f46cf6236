"""Penalized regression splines as random effects: ``s(x, k = 10, bs = "cr")`` in a formula.

A smooth function of a covariate, ``f(x) = sum_j B_j(x) beta_j``, estimated with
a penalty ``lambda beta' S beta`` on its wiggliness, is a mixed model
(Wood 2017, section 5.8; mgcv's ``gamm`` and ``smooth2random``):

1. **basis and penalty**: mgcv's thin plate regression spline (``bs = "tp"``,
   its default; :class:`ThinPlateSpline`) or cubic regression spline
   (``bs = "cr"``, ``smooth.construct.cr.smooth.spec``;
   :class:`CubicRegressionSpline`: ``k`` knots at quantiles of the unique
   ``x`` values, parameterised by its values at the knots, ``S = D' B^{-1} D``
   the integrated squared second derivative). mgcv rescales ``S`` (its
   ``scale.penalty``) so that ``lambda`` is on the scale of ``X'X``; so does
   mmbook, so ``lambda`` is mgcv's ``sp``.
2. **identifiability** (mgcv's ``smoothCon``): the smooth sums to zero over
   the data, ``1' B beta = 0``; the constraint is absorbed by an orthonormal
   basis ``Q`` of its null space: ``B_c = B Q`` (``k - 1`` columns),
   ``S_c = Q' S Q``.
3. **mixed-model form** (mgcv's ``smooth2random``): with the eigen
   decomposition ``S_c = U diag(d) U'`` the penalized directions (``d > 0``,
   ``k - 2`` of them) give the random-effects columns
   ``Z_s = B_c U_+ diag(d_+)^{-1/2}``, and the unpenalized one (the linear
   trend) the fixed column ``X_s = B_c u_0``, named ``s(x)Fx1``. Then
   ``lambda beta_c' S_c beta_c = lambda ||b||^2``, so

   .. math:: f(x) = X_s \\beta_s + Z_s b, \\qquad b \\sim N(0, \\tau^2 I),
             \\qquad \\lambda = \\sigma^2 / \\tau^2 .

In mmbook's engine the smooth is a random-effects term with one level, ``q =
k - 2`` columns and ``T = theta I`` (:class:`SmoothTerm`, one ``theta``);
REML estimates ``theta = tau / sigma``, so ``lambda = 1 / theta^2``. The
REML criterion equals mgcv's: ``2 * gam(..., method = "REML")$gcv.ubre`` and
``-2 logLik`` of ``gamm(...)$lme`` (the null-space column has unit norm in
the coefficients, as mgcv's, so even the constant agrees).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.linalg as sla

from .design import RandomTerm
from .formula import BarTerm, split_top_level
from .modelmatrix import MatrixSpec, model_matrix
from .smooth_basis import CubicRegressionSpline, ThinPlateSpline

__all__ = ["SmoothSpec", "CubicRegressionSpline", "ThinPlateSpline", "MixedSmooth", "SmoothTerm", "SmoothXSpec", "parse_smooth",
           "split_smooths", "add_smooths", "is_smooth", "smooth_edf"]

_BASES = {"tp": "thin plate regression spline", "cr": "cubic regression spline"}


# ----------------------------------------------------------------------------- the formula term
@dataclass(frozen=True)
class SmoothSpec:
    """A smooth term ``s(x, k = 10, bs = "cr")`` as written in a formula.

    Attributes
    ----------
    variable : str
        The covariate ``x``.
    k : int
        Basis dimension (mgcv's ``k``; number of knots of a ``cr`` basis).
    bs : str
        Basis (mgcv's ``bs``): ``"tp"`` (the default, as mgcv's) or ``"cr"``.
    text : str
        The term as written (normalised spacing).
    """

    variable: str
    k: int = 10
    bs: str = "tp"
    text: str = ""

    @property
    def label(self) -> str:
        """mgcv's label, ``s(x)``."""
        return f"s({self.variable})"


def _literal(node, name: str, term: str):
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
        return -node.operand.value
    raise ValueError(f"smooth term {term}: {name} must be a literal value, like k = 10 or bs = \"cr\"")


def parse_smooth(piece: str) -> SmoothSpec | None:
    """The :class:`SmoothSpec` of a formula term ``s(...)``; None for any other term.

    Arguments as in mgcv: the covariate first, then ``k`` (basis dimension,
    default 10; also as the second positional argument) and ``bs`` (basis:
    ``"tp"``, mgcv's default thin plate regression spline, or ``"cr"``, the
    cubic regression spline).

    Raises
    ------
    ValueError
        A malformed call, an unknown or unsupported argument (``by``,
        ``m``, ``id``, ``fx``, several covariates), an unknown basis, or
        ``k < 3``.
    """
    text = piece.strip()
    if not re.match(r"s\s*\(", text):
        return None
    shown = re.sub(r"\s+", " ", text)
    src = text.replace("TRUE", "True").replace("FALSE", "False")
    try:
        call = ast.parse(src, mode="eval").body
    except SyntaxError:
        raise ValueError(f"malformed smooth term {shown}: write it as s(x, k = 10, bs = \"cr\")") from None
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "s"):
        return None
    if len(call.args) == 0 or not isinstance(call.args[0], ast.Name):
        raise ValueError(f"smooth term {shown}: its first argument must be the name of a covariate, as in s(x)")
    if len(call.args) > 2 or (len(call.args) == 2 and isinstance(call.args[1], ast.Name)):
        raise ValueError(f"smooth term {shown}: mmbook's smooths take one covariate (s(x)); "
                         "smooths of several variables (s(x, z), te()) are not supported")
    args: dict = {}
    if len(call.args) == 2:
        args["k"] = _literal(call.args[1], "k", shown)
    for kw in call.keywords:
        if kw.arg not in ("k", "bs"):
            raise ValueError(f"smooth term {shown}: argument {kw.arg!r} is not supported "
                             "(mmbook's s() takes the covariate, k and bs)")
        args[kw.arg] = _literal(kw.value, kw.arg, shown)
    k = args.get("k", 10)
    if isinstance(k, bool) or not isinstance(k, (int, float)) or float(k) != int(k):
        raise ValueError(f"smooth term {shown}: k must be a whole number, got {k!r}")
    k = int(k)
    if k == -1:
        k = 10  # mgcv's default
    if k < 3:
        raise ValueError(f"smooth term {shown}: k = {k} is too small; a cubic regression spline needs k >= 3")
    bs = args.get("bs", "tp")
    if not isinstance(bs, str):
        raise ValueError(f"smooth term {shown}: bs must be a string such as \"cr\"")
    if bs not in _BASES:
        raise ValueError(f"smooth term {shown}: basis bs = {bs!r} is not available in mmbook; "
                         f"available: {', '.join(repr(b) for b in _BASES)} ({', '.join(_BASES.values())})")
    return SmoothSpec(variable=call.args[0].id, k=k, bs=bs, text=shown)


def split_smooths(rhs: str) -> tuple[str, list[SmoothSpec]]:
    """Take the smooth terms out of a formula's right-hand side.

    Returns the right-hand side without them (``"1"`` when nothing else is
    left, so the model keeps its intercept) and the smooths in the order
    written.

    Raises
    ------
    ValueError
        A smooth term removed with ``-``, or the same covariate smoothed twice.
    """
    kept, smooths = [], []
    for sign, piece in split_top_level(rhs, "+-"):
        spec = parse_smooth(piece) if piece else None
        if spec is None:
            if piece or sign == "-":
                kept.append(piece if sign == "+" else f"- {piece}")
            continue
        if sign == "-":
            raise ValueError(f"a smooth term cannot be removed with '-': {spec.text}")
        if any(s.variable == spec.variable for s in smooths):
            raise ValueError(f"{spec.variable!r} is smoothed twice ({spec.text}); a covariate can have one smooth")
        smooths.append(spec)
    out = " + ".join(kept).replace("+ -", "-") if kept else "1"
    if kept and all(p.startswith("-") for p in kept):
        out = "1 " + " ".join(kept)
    return out, smooths


# ------------------------------------------------------------------------- mixed-model form
@dataclass
class MixedSmooth:
    """A smooth in mixed-model form: its fixed column(s) and its random-effects columns.

    Built by :meth:`of` from a :class:`SmoothSpec` and the covariate's
    values (see the module docstring for the steps). For new data,
    :meth:`fixed` and :meth:`random` evaluate the same basis and apply the
    same transformations.

    Attributes
    ----------
    spec : SmoothSpec
    spline : CubicRegressionSpline
    S_scale : float
        mgcv's penalty rescaling ``||S||_1 / ||B||_inf^2`` (``S`` is divided by it).
    Q : ndarray, shape (k, k - 1)
        Orthonormal basis of the sum-to-zero constraint's null space.
    U_fixed : ndarray, shape (k - 1, 1)
        Unpenalized direction (unit norm).
    U_random : ndarray, shape (k - 1, k - 2)
        Penalized directions divided by the square roots of their eigenvalues.
    eigenvalues : ndarray, shape (k - 2,)
    """

    spec: SmoothSpec
    spline: "CubicRegressionSpline | ThinPlateSpline"
    S_scale: float
    Q: np.ndarray
    U_fixed: np.ndarray
    U_random: np.ndarray
    eigenvalues: np.ndarray

    @classmethod
    def of(cls, spec: SmoothSpec, x) -> "MixedSmooth":
        """Basis, constraint and mixed-model transformation of ``spec`` on the covariate ``x``.

        Raises
        ------
        ValueError
            Too few unique values of ``x`` for ``k``; non-finite values.
        """
        x = np.asarray(x, dtype=float)
        if not np.all(np.isfinite(x)):
            raise ValueError(f"the covariate of {spec.text} has infinite values")
        spline = (CubicRegressionSpline if spec.bs == "cr" else ThinPlateSpline)(x, spec.k, name=spec.variable)
        B = spline.basis(x)
        # mgcv's scale.penalty: S / (||S||_1 / ||B||_inf^2)
        S_scale = float(np.abs(spline.S).sum(axis=0).max() / np.abs(B).sum(axis=1).max() ** 2)
        S = spline.S / S_scale
        # sum-to-zero constraint C beta = 0 with C = colMeans(B), absorbed by the QR of C'
        C = B.mean(axis=0)
        Qfull, _ = np.linalg.qr(C[:, None], mode="complete")
        Q = Qfull[:, 1:]
        Sc = Q.T @ S @ Q
        d, U = np.linalg.eigh((Sc + Sc.T) / 2.0)
        order = np.argsort(d)[::-1]
        d, U = d[order], U[:, order]
        rank = spec.k - 2  # null space of S: {1, x} (cr and tp); the constraint removes the constant
        u0 = U[:, rank:]
        # sign: the fixed column increases with x (mgcv's sign is LAPACK's choice)
        f0 = B @ (Q @ u0[:, 0])
        if np.polyfit(x, f0, 1)[0] < 0:
            u0 = -u0
        dp = d[:rank]
        if not np.all(dp > 0):
            raise ValueError(f"the penalty of {spec.text} is not of rank {rank}: are the knots distinct?")
        return cls(spec=spec, spline=spline, S_scale=S_scale, Q=Q, U_fixed=u0,
                   U_random=U[:, :rank] / np.sqrt(dp)[None, :], eigenvalues=dp)

    @property
    def fixed_names(self) -> list[str]:
        """Names of the fixed columns, as mgcv's ``gamm`` (without its ``X`` prefix): ``s(x)Fx1``."""
        return [f"{self.spec.label}Fx{i + 1}" for i in range(self.U_fixed.shape[1])]

    @property
    def random_names(self) -> list[str]:
        """Names of the random-effects columns, as mgcv's ``gamm``: ``Xr1``, ``Xr2``, ..."""
        return [f"Xr{i + 1}" for i in range(self.U_random.shape[1])]

    def constrained_basis(self, x) -> np.ndarray:
        """``B_c(x) = B(x) Q``: the basis with the sum-to-zero constraint absorbed (mgcv's ``X``)."""
        return self.spline.basis(x) @ self.Q

    def fixed(self, x) -> np.ndarray:
        """The fixed (unpenalized) columns at ``x``: ``B_c(x) u_0``."""
        return self.constrained_basis(x) @ self.U_fixed

    def random(self, x) -> np.ndarray:
        """The random-effects columns at ``x``: ``B_c(x) U_+ diag(d_+)^{-1/2}``."""
        return self.constrained_basis(x) @ self.U_random

    @staticmethod
    def covariate_of(spec: SmoothSpec, frame: pd.DataFrame) -> np.ndarray:
        """The covariate of ``spec`` in ``frame``.

        Raises
        ------
        KeyError, TypeError, ValueError
            The column is absent, not numeric, or has missing or infinite values.
        """
        var = spec.variable
        if var not in frame.columns:
            raise KeyError(f"the data have no column {var!r} (covariate of {spec.text})")
        col = frame[var]
        if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
            raise TypeError(f"the covariate {var!r} of {spec.text} must be numeric; it has dtype {col.dtype}")
        x = col.to_numpy(dtype=float)
        if not np.all(np.isfinite(x)):
            raise ValueError(f"the covariate {var!r} of {spec.text} has missing or infinite values")
        return x

    def covariate(self, frame: pd.DataFrame) -> np.ndarray:
        """The covariate's values in ``frame`` (see :meth:`covariate_of`)."""
        return self.covariate_of(self.spec, frame)

    def fixed_matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """:meth:`fixed` at the covariate's values in ``frame``."""
        return self.fixed(self.covariate(frame))

    def random_matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """:meth:`random` at the covariate's values in ``frame``."""
        return self.random(self.covariate(frame))

    def coefficients(self, beta_fixed, b) -> np.ndarray:
        """mgcv's coefficients ``beta_c`` (length ``k - 1``) of the constrained basis."""
        return self.U_fixed @ np.atleast_1d(beta_fixed) + self.U_random @ np.asarray(b)


class SmoothBasisSpec(MatrixSpec):
    """Builds a smooth's columns for new data (the ``spec`` of its random-effects term, or of ``X``'s part).

    ``part`` is ``"fixed"`` or ``"random"``; the covariate is read as a number.
    """

    def __init__(self, smooth: MixedSmooth, part: str):
        names = smooth.fixed_names if part == "fixed" else smooth.random_names
        super().__init__(spec=None, column_names=list(names), variables=[smooth.spec.variable],
                         classes={smooth.spec.variable: "numeric"})
        self.smooth, self.part = smooth, part

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        return self.smooth.fixed_matrix(frame) if self.part == "fixed" else self.smooth.random_matrix(frame)

    def __repr__(self) -> str:
        return f"the {self.part} columns of {self.smooth.spec.text}"


class SmoothXSpec(MatrixSpec):
    """Builds ``X`` for new data: the parametric columns (their own spec), then each smooth's fixed columns."""

    def __init__(self, inner, smooths: list):
        self.inner, self.smooths = inner, list(smooths)
        names = list(inner.column_names) + [nm for ms in self.smooths for nm in ms.fixed_names]
        variables = list(dict.fromkeys(list(getattr(inner, "variables", []))
                                       + [ms.spec.variable for ms in self.smooths]))
        super().__init__(spec=getattr(inner, "spec", None), column_names=names,
                         contrasts=dict(getattr(inner, "contrasts", {}) or {}), variables=variables,
                         classes=dict(getattr(inner, "classes", {}) or {}))

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        X = model_matrix(self.inner, frame, "fixed-effects model matrix")[0]
        return np.column_stack([X] + [ms.fixed_matrix(frame) for ms in self.smooths])

    def __repr__(self) -> str:
        return "the fixed part with " + ", ".join(ms.spec.text for ms in self.smooths)


@dataclass
class SmoothTerm(RandomTerm):
    """A smooth's penalized part as a random-effects term: one level, ``T = theta I``.

    ``gamma = theta u`` with ``u ~ N(0, sigma^2 I)``: the ``q = k - 2``
    random effects are independent with one variance ``tau^2 = sigma^2
    theta^2``, and ``lambda = 1 / theta^2``. The "grouping factor" has a
    single level, so lme4's checks on grouping factors do not apply to it.
    """

    smooth: MixedSmooth | None = field(default=None)

    @property
    def ntheta(self) -> int:
        return 1

    @property
    def structure(self) -> str:
        return "identity"

    def T(self, theta_k: np.ndarray) -> np.ndarray:
        return float(np.asarray(theta_k).ravel()[0]) * np.eye(self.q)

    def theta_lower(self) -> np.ndarray:
        return np.zeros(1)

    def theta_start(self) -> np.ndarray:
        return np.ones(1)

    def lambda_entries(self):
        """Non-zeros of ``T`` within one level: the diagonal, all from ``theta_k[0]``."""
        i = np.arange(self.q)
        return i, i, np.zeros(self.q, dtype=np.int64)

    @classmethod
    def of(cls, smooth: MixedSmooth, x) -> "SmoothTerm":
        z = np.ascontiguousarray(smooth.random(x))
        label = smooth.spec.label
        bar = BarTerm(expr="0 + " + " + ".join(smooth.random_names), group=label, text=f"Xr | {label}")
        return cls(bar=bar, group=label, refs=np.zeros(len(z), dtype=np.int64), levels=["1"], z=z,
                   cnames=smooth.random_names, spec=SmoothBasisSpec(smooth, "random"), smooth=smooth)


def add_smooths(mf, specs: list[SmoothSpec], stacklevel: int = 2):
    """A model frame with the smooths of ``specs`` added: fixed columns to ``X``, one term each.

    The smooths' covariates are read from ``mf.frame``. Their fixed
    columns follow the parametric ones (named ``s(x)Fx1``, as mgcv's
    ``gamm``); one that duplicates a parametric column (``y ~ x + s(x)``)
    is dropped with lme4's rank-deficiency warning. The terms follow the
    other random-effects terms, in the order written.
    """
    from dataclasses import replace
    import warnings

    from .design import drop_rank_deficient

    built, xs = [], []
    for sp_ in specs:
        x = MixedSmooth.covariate_of(sp_, mf.frame)
        built.append(MixedSmooth.of(sp_, x))
        xs.append(x)
    X = np.column_stack([mf.X] + [ms.fixed(x) for ms, x in zip(built, xs)])
    names = list(mf.xnames) + [nm for ms in built for nm in ms.fixed_names]
    X, names, dropped = drop_rank_deficient(X, names)
    if dropped:
        k = len(dropped)
        warnings.warn(f"fixed-effect model matrix is rank deficient so dropping {k} column"
                      f"{'s' if k > 1 else ''} / coefficient{'s' if k > 1 else ''} ({', '.join(dropped)})",
                      UserWarning, stacklevel=stacklevel + 1)
    terms = list(mf.terms) + [SmoothTerm.of(ms, x) for ms, x in zip(built, xs)]
    return replace(mf, X=np.ascontiguousarray(X), xnames=names, terms=terms, smooths=built,
                   x_spec=SmoothXSpec(mf.x_spec, built),
                   dropped_columns=list(mf.dropped_columns) + dropped)


def newdata_smooth(mf, term: "SmoothTerm", newdata: pd.DataFrame) -> np.ndarray:
    """A smooth term's random-effects columns for new data (NaN rows where its covariate is missing).

    Raises
    ------
    KeyError, TypeError
        The covariate is not a column of ``newdata``, or not numeric.
    """
    from .newdata import check_newdata

    var = term.smooth.spec.variable
    ok = check_newdata(mf, newdata, [var], f"smooth {term.smooth.spec.text}")
    out = np.full((len(newdata), term.q), np.nan)
    if ok.any():
        out[ok] = term.smooth.random_matrix(newdata.loc[ok] if newdata.index.is_unique else newdata.iloc[np.flatnonzero(ok)])
    return out


def is_smooth(term) -> bool:
    """True for a smooth's random-effects term."""
    return isinstance(term, SmoothTerm)


# ------------------------------------------------------------------------------ what a fit shows
def smooth_edf(pls, theta: np.ndarray) -> list[float]:
    """Effective degrees of freedom of each smooth term, in the order of ``pls.terms``' smooths.

    The trace of the smooth's block of the influence matrix
    ``F = (C'C + P)^{-1} C'C`` with ``C = [X Z]`` and the penalty ``P``
    (mgcv's ``sum(edf)`` over the smooth's coefficients): in the spherical
    parameterisation ``M = [Lambda'Z'Z Lambda + I, Lambda'Z'X; X'Z Lambda, X'X]``,

    .. math:: \\mathrm{EDF}_s = n_{F,s} + q_s - \\operatorname{tr}\\,[M^{-1}]_{u_s u_s},

    with ``n_{F,s}`` the smooth's fixed columns (1 for ``cr``) and ``q_s``
    its random effects. ``[M^{-1}]`` is read from the blocked factor.
    """
    F = pls.factor(theta)
    terms = pls.terms
    p, Qr = pls.p, pls.Qr
    dim = Qr + p
    Ld = F.Ld[:dim, :dim]
    Linv = sla.solve_triangular(Ld, np.eye(dim), lower=True) if dim else np.zeros((0, 0))
    out = []
    off = 0
    for k, t in enumerate(terms):
        if k == 0:
            if is_smooth(t):
                # [M^{-1}]_11 = L11^{-T} L11^{-1} + G'G with G = Ld^{-1} [Lr1; W1_X'] L11^{-1} (one level)
                L11 = F.L11[:, :, 0]
                L11inv = sla.solve_triangular(L11, np.eye(t.q), lower=True)
                L21 = F.W1[:, :p, 0].T
                if Qr:
                    Lr1 = F.Lr1.toarray() if hasattr(F.Lr1, "toarray") else np.asarray(F.Lr1)
                    L21 = np.vstack([Lr1, L21])
                G = Linv @ L21 @ L11inv if dim else np.zeros((0, t.q))
                tr = float((L11inv ** 2).sum() + (G ** 2).sum())
                out.append(t.smooth.U_fixed.shape[1] + t.q - tr)
            continue
        width = t.nlevels * t.q
        if is_smooth(t):
            idx = slice(off, off + width)
            tr = float((Linv[:, idx] ** 2).sum())  # diag of (Ld Ld')^{-1} = column norms of Ld^{-1}
            out.append(t.smooth.U_fixed.shape[1] + t.q - tr)
        off += width
    return out
