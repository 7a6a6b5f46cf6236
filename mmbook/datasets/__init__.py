"""The classic mixed-model data sets, as R has them, without the network.

``load(name)`` returns a data set as a tidy :class:`pandas.DataFrame` with R's
column types: R's doubles as ``float64``, integers as ``int64``, factors as
:class:`pandas.Categorical` with R's level order (ordered factors as ordered
Categoricals); ``list()`` names them all with their size and source, and
``info(name)`` gives the source and a one-paragraph description.

The data sets of lme4 1.1-31 (``sleepstudy``, ``Dyestuff``, ``Dyestuff2``,
``Penicillin``, ``Pastes``, ``cake``, ``cbpp``, ``grouseticks``, ``VerbAgg``,
``InstEval``) and nlme 3.1-162 (``Orthodont``, ``Machines``, ``ergoStool``,
``Rail``, ``Oats``) are stored in the package as xz-compressed CSV files,
written by ``mmbook/datasets/make_datasets.R`` together with
``catalogue.json`` (column types, level orders, row counts and R's checksums
of every column). The reference document's two simulations (``sim_ri``,
``sim_ris``) are regenerated bit for bit from R's random numbers by
:mod:`mmbook.rcompat.simulation`.

Examples
--------
>>> from mmbook import datasets
>>> pen = datasets.load("Penicillin")
>>> pen.shape, list(pen["sample"].cat.categories)
((144, 3), ['A', 'B', 'C', 'D', 'E', 'F'])
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np
import pandas as pd

from ..rcompat.simulation import simulate_random_intercepts, simulate_random_slopes
from .descriptions import DESCRIPTIONS, SOURCES

__all__ = ["load", "list", "info", "names", "DatasetInfo"]

_SIMULATIONS = {"sim_ri": simulate_random_intercepts, "sim_ris": simulate_random_slopes}


@dataclass(frozen=True)
class DatasetInfo:
    """What :func:`info` returns about a data set.

    Attributes
    ----------
    name : str
    origin : str
        ``"lme4"``, ``"nlme"`` or ``"document"`` (the reference document's simulations).
    rows : int
    columns : tuple of str
    dtypes : dict
        Column -> ``"float64"``, ``"int64"`` or ``"category"``.
    levels : dict
        Factor column -> its levels in R's order.
    ordered : dict
        Factor column -> True for an ordered factor.
    checksum : dict
        R's checksum of each column: ``{"sum", "sumsq"}`` of a numeric column,
        ``{"counts"}`` (rows per level) of a factor.
    source : str
    description : str
    """

    name: str
    origin: str
    rows: int
    columns: tuple
    dtypes: dict
    levels: dict
    ordered: dict
    checksum: dict
    source: str
    description: str

    def __str__(self) -> str:
        cols = ", ".join(f"{c} ({self.dtypes[c]}{', ordered' if self.ordered.get(c) else ''})"
                         for c in self.columns)
        return (f"{self.name}: {self.rows} rows; {cols}\nsource: {self.source}\n{self.description}")


@lru_cache(maxsize=1)
def _catalogue() -> dict:
    text = resources.files(__name__).joinpath("catalogue.json").read_text()
    return json.loads(text)["datasets"]


def names() -> list:
    """The data sets' names, in the order :func:`list` shows them."""
    return [*_catalogue()]


def _resolve(name: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"a data set's name must be a string, got {type(name).__name__}")
    cat = _catalogue()
    if name in cat:
        return name
    hits = [n for n in cat if n.lower() == name.lower()]
    if len(hits) == 1:
        return hits[0]
    raise KeyError(f"no data set named {name!r}; mmbook.datasets has: {', '.join(cat)}")


def info(name: str) -> DatasetInfo:
    """Source, description, size, column types and R's checksums of a data set.

    Raises
    ------
    KeyError
        No data set of that name (the message lists them).
    """
    name = _resolve(name)
    c = _catalogue()[name]
    cols = c["columns"]
    return DatasetInfo(
        name=name, origin=c["package"], rows=int(c["rows"]), columns=tuple(col["name"] for col in cols),
        dtypes={col["name"]: col["dtype"] for col in cols},
        levels={col["name"]: [str(v) for v in col["levels"]] for col in cols if col["dtype"] == "category"},
        ordered={col["name"]: bool(col["ordered"]) for col in cols if col["dtype"] == "category"},
        checksum=c["checksum"], source=SOURCES[name], description=DESCRIPTIONS[name])


@lru_cache(maxsize=None)
def _read(name: str) -> pd.DataFrame:
    meta = info(name)
    if name in _SIMULATIONS:
        frame = _SIMULATIONS[name]().data
    else:
        with resources.files(__name__).joinpath(f"data/{name}.csv.xz").open("rb") as fh:
            frame = pd.read_csv(fh, compression="xz", keep_default_na=False,
                                dtype={c: (str if t == "category" else t) for c, t in meta.dtypes.items()})
    if [*frame.columns] != [*meta.columns] or len(frame) != meta.rows:
        raise RuntimeError(f"the stored data set {name!r} does not match its catalogue entry "
                           "(re-run mmbook/datasets/make_datasets.R)")
    for col, levels in meta.levels.items():
        values = frame[col].astype(str)
        cat = pd.Categorical(values, categories=levels, ordered=meta.ordered[col])
        if np.any(cat.codes < 0):
            raise RuntimeError(f"{name}.{col} has values outside its levels (re-run make_datasets.R)")
        frame[col] = cat
    return frame


def load(name: str) -> pd.DataFrame:
    """A data set as R has it: a fresh :class:`pandas.DataFrame` on every call.

    Parameters
    ----------
    name : str
        One of :func:`names` (exact, or the only case-insensitive match).

    Returns
    -------
    pandas.DataFrame
        R's columns in R's order and row order; doubles as ``float64``,
        integers as ``int64``, factors as Categoricals with R's levels
        (ordered where R's factor is ordered).

    Raises
    ------
    KeyError
        No data set of that name (the message lists them).
    TypeError
        ``name`` is not a string.
    """
    return _read(_resolve(name)).copy()


def list() -> pd.DataFrame:  # noqa: A001 - the name the issue asks for, as R's data(package = ...)
    """Every data set: rows, columns, where it comes from (a DataFrame indexed by name)."""
    rows = []
    for n in names():
        i = info(n)
        rows.append((n, i.rows, len(i.columns), ", ".join(i.columns), i.origin, i.source))
    return pd.DataFrame(rows, columns=["name", "rows", "ncol", "columns", "origin", "source"]).set_index("name")
