"""R's contrasts: how a factor becomes columns of a model matrix, with R's column names.

A factor with levels ``l_1, ..., l_k`` enters a model matrix through a
*coding matrix* ``C`` (``k x (k-1)``): the row of observation ``i`` is
``C[level(i), :]``. R's codings (``?contr.treatment``):

====================  ====================================================  ==========================
coding                ``C``                                                 R's column names
====================  ====================================================  ==========================
``contr.treatment``   identity without the base level's column              level labels (``fb``, ``fc``)
``contr.SAS``         treatment with the last level as base                level labels
``contr.sum``         identity on levels 1..k-1, ``-1`` in the last row     ``f1``, ``f2``, ...
``contr.helmert``     column j: ``-1`` on levels 1..j, ``j`` on level j+1   ``f1``, ``f2``, ...
``contr.poly``        orthonormal polynomials in 1..k (``.L``, ``.Q``, ...)  ``f.L``, ``f.Q``, ``f.C``, ``f^4``
a matrix              its columns                                           its column names, else 1..k-1
====================  ====================================================  ==========================

R's defaults are treatment coding for an unordered factor and ``contr.poly`` for
an ordered one (``options("contrasts")``). When a factor must span the
intercept (``0 + f``, or ``f`` inside an interaction without its main effect)
R uses one indicator column per level, named by the levels, whatever the
contrasts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["RContrast", "contr", "resolve_contrast", "contr_poly"]

_KINDS = ("treatment", "SAS", "sum", "helmert", "poly", "matrix")


@dataclass(frozen=True)
class RContrast:
    """One of R's contrast codings for a factor.

    Parameters
    ----------
    kind : {"treatment", "SAS", "sum", "helmert", "poly", "matrix"}
    base : str, optional
        For ``"treatment"``: the level (its label) whose column is left out;
        default the first level.
    matrix : ndarray, shape (k, m), optional
        For ``"matrix"``: the coding matrix, one row per level.
    colnames : tuple of str, optional
        For ``"matrix"``: names of its columns (default ``"1"``, ``"2"``, ...).
    """

    kind: str
    base: object = None
    matrix: np.ndarray | None = field(default=None, compare=False)
    colnames: tuple | None = None

    def __post_init__(self):
        if self.kind not in _KINDS:
            raise ValueError(f"unknown contrast {self.kind!r}; use one of contr.treatment, contr.sum, "
                             "contr.helmert, contr.poly, contr.SAS or a matrix")

    @property
    def name(self) -> str:
        """R's name for the coding (``"contr.sum"``)."""
        return "a matrix" if self.kind == "matrix" else f"contr.{self.kind}"

    def coding(self, levels: list[str], what: str) -> tuple[np.ndarray, list[str]]:
        """The coding matrix ``C`` (``k x m``) for these levels and R's names of its columns.

        Raises
        ------
        ValueError
            A treatment base that is not a level, or a matrix of the wrong size.
        """
        k = len(levels)
        if self.kind == "treatment" or self.kind == "SAS":
            if self.kind == "SAS":
                b = k - 1
            elif self.base is None:
                b = 0
            else:
                labels = [str(v) for v in levels]
                if str(self.base) not in labels:
                    raise ValueError(f"contr.treatment base {self.base!r} is not a level of {what} "
                                     f"(levels: {', '.join(labels)})")
                b = labels.index(str(self.base))
            keep = [j for j in range(k) if j != b]
            return np.eye(k)[:, keep], [levels[j] for j in keep]
        if self.kind == "sum":
            C = np.vstack([np.eye(k - 1), -np.ones((1, k - 1))]) if k > 1 else np.zeros((k, 0))
            return C, [str(j + 1) for j in range(k - 1)]
        if self.kind == "helmert":
            C = np.zeros((k, k - 1))
            for j in range(k - 1):
                C[: j + 1, j] = -1.0
                C[j + 1, j] = j + 1.0
            return C, [str(j + 1) for j in range(k - 1)]
        if self.kind == "poly":
            return contr_poly(k), _poly_names(k)
        M = np.asarray(self.matrix, dtype=float)
        if M.ndim != 2 or M.shape[0] != k or not 1 <= M.shape[1] <= k - 1:
            raise ValueError(f"the contrast matrix for {what} must have {k} rows (one per level) and "
                             f"between 1 and {k - 1} columns; it has shape {M.shape}")
        if not np.all(np.isfinite(M)):
            raise ValueError(f"the contrast matrix for {what} has missing or infinite values")
        names = list(self.colnames) if self.colnames is not None else [str(j + 1) for j in range(M.shape[1])]
        return M, names


def contr_poly(k: int) -> np.ndarray:
    """R's ``contr.poly(k)``: orthonormal polynomial contrasts in the scores ``1..k``, ``k x (k-1)``.

    R (``make.poly``) takes the QR decomposition of the Vandermonde matrix of the
    centred scores and rescales ``Q`` by the diagonal of ``R``; that product does
    not depend on the sign convention of the QR routine, so neither does the result.
    """
    if k < 2:
        return np.zeros((k, 0))
    if k > 95:
        raise ValueError(f"contr.poly is defined for at most 95 levels (R's limit); the factor has {k}")
    x = np.arange(1, k + 1) - (k + 1) / 2.0
    V = np.vander(x, k, increasing=True)
    Q, R = np.linalg.qr(V)
    Z = Q * np.diag(R)
    Z = Z / np.linalg.norm(Z, axis=0)
    return Z[:, 1:]


def _poly_names(k: int) -> list[str]:
    return [".L", ".Q", ".C"][: k - 1] + [f"^{j}" for j in range(4, k)]


class _Registry:
    """R-like constructors: ``contr.treatment(base="b")``, ``contr.sum()``, ``contr.helmert()``, ``contr.poly()``."""

    @staticmethod
    def treatment(base=None) -> RContrast:
        """Treatment coding; ``base`` is the level (label) left out (default: the first)."""
        return RContrast("treatment", base=base)

    @staticmethod
    def SAS() -> RContrast:
        """Treatment coding with the last level as base (R's ``contr.SAS``)."""
        return RContrast("SAS")

    @staticmethod
    def sum() -> RContrast:
        """Sum-to-zero coding (R's ``contr.sum``): columns ``1..k-1``."""
        return RContrast("sum")

    @staticmethod
    def helmert() -> RContrast:
        """Helmert coding (R's ``contr.helmert``): columns ``1..k-1``."""
        return RContrast("helmert")

    @staticmethod
    def poly() -> RContrast:
        """Orthonormal polynomial coding (R's ``contr.poly``): ``.L``, ``.Q``, ``.C``, ``^4``, ..."""
        return RContrast("poly")


contr = _Registry()

_BY_NAME = {"contr.treatment": "treatment", "treatment": "treatment", "contr.sum": "sum", "sum": "sum",
            "contr.helmert": "helmert", "helmert": "helmert", "contr.poly": "poly", "poly": "poly",
            "contr.SAS": "SAS", "SAS": "SAS"}


def resolve_contrast(value, what: str) -> RContrast:
    """A user's contrast specification as an :class:`RContrast`.

    Accepts R's names (``"contr.sum"``; ``"sum"``), the constructors of
    :data:`contr`, formulaic's contrasts (``contr.sum`` inside ``C()``), a coding
    matrix (ndarray, or a DataFrame whose columns name the coefficients).

    Raises
    ------
    ValueError, TypeError
        An unknown name or an object that is not a contrast specification.
    """
    if isinstance(value, RContrast):
        return value
    if isinstance(value, str):
        kind = _BY_NAME.get(value.strip())
        if kind is None:
            raise ValueError(f"unknown contrast {value!r} for {what}; use 'contr.treatment', 'contr.sum', "
                             "'contr.helmert', 'contr.poly', 'contr.SAS', mmbook.contr.treatment(base=...) "
                             "or a coding matrix")
        return RContrast(kind)
    if isinstance(value, pd.DataFrame):
        return RContrast("matrix", matrix=value.to_numpy(dtype=float), colnames=tuple(map(str, value.columns)))
    if isinstance(value, (np.ndarray, list, tuple)):
        try:
            M = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            raise TypeError(f"the contrast matrix for {what} must be numeric") from None
        if M.ndim == 1:
            M = M[:, None]
        return RContrast("matrix", matrix=M)
    return _from_formulaic(value, what)


def _from_formulaic(value, what: str) -> RContrast:
    """formulaic's contrasts classes/instances (``contr.sum``, ``contr.treatment(base=...)``) as RContrast."""
    import inspect

    from formulaic.transforms import contrasts as fc
    from formulaic.utils.sentinels import UNSET

    obj = value() if inspect.isclass(value) and issubclass(value, fc.Contrasts) else value
    if isinstance(obj, fc.SASContrasts):
        return RContrast("SAS")
    if isinstance(obj, fc.TreatmentContrasts):
        return RContrast("treatment", base=None if obj.base is UNSET else obj.base)
    if isinstance(obj, fc.SumContrasts):
        return RContrast("sum")
    if isinstance(obj, fc.HelmertContrasts):
        return RContrast("helmert")
    if isinstance(obj, fc.PolyContrasts):
        return RContrast("poly")
    raise TypeError(f"contrast for {what} must be one of R's names ('contr.sum', ...), "
                    f"mmbook.contr.<name>(...) or a coding matrix; got {type(value).__name__}")
