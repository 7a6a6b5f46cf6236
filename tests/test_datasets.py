"""mmbook.datasets against R.

References:
- mmbook/datasets/catalogue.json, written by mmbook/datasets/make_datasets.R from R 4.2.2 with
  lme4 1.1-31 and nlme 3.1-162: each data set's column types, factor levels (in R's order, and
  whether the factor is ordered), row count, and R's checksums of every column (sum and sum of
  squares of a numeric column at 17 digits, rows per level of a factor).
- mmbook/reference/sim_ri.csv, sim_ris.csv: R's draws of the document's simulations (see
  tests/data/README.md), for the two simulated data sets.
- a few values and level orders typed from R's `str()` and `head()` output (stated per test).
"""

import math

import numpy as np
import pandas as pd
import pytest

from mmbook import datasets
from conftest import reference_path

NAMES = datasets.names()
R_NAMES = ["sleepstudy", "Dyestuff", "Dyestuff2", "Penicillin", "Pastes", "cake", "cbpp", "grouseticks",
           "VerbAgg", "InstEval", "Orthodont", "Machines", "ergoStool", "Rail", "Oats"]


def test_the_issue_lists_them_all():
    assert NAMES == R_NAMES + ["sim_ri", "sim_ris"]


@pytest.mark.parametrize("name", NAMES)
def test_columns_dtypes_levels_rows(name):
    info = datasets.info(name)
    d = datasets.load(name)
    assert d.shape == (info.rows, len(info.columns))
    assert list(d.columns) == list(info.columns)
    assert d.index.equals(pd.RangeIndex(info.rows))
    for col, dtype in info.dtypes.items():
        if dtype == "category":
            assert isinstance(d[col].dtype, pd.CategoricalDtype), col
            assert list(d[col].cat.categories) == info.levels[col], col
            assert d[col].cat.ordered is info.ordered[col], col
            assert d[col].notna().all()
        else:
            assert d[col].dtype == np.dtype(dtype), col


@pytest.mark.parametrize("name", NAMES)
def test_checksums_against_R(name):
    """Sums and sums of squares of numeric columns, rows per level of factors, as R computed them."""
    info = datasets.info(name)
    d = datasets.load(name)
    for col, ref in info.checksum.items():
        if "counts" in ref:
            counts = d[col].value_counts(sort=False).reindex(info.levels[col]).to_numpy()
            assert counts.tolist() == ref["counts"], col
        else:
            x = d[col].to_numpy(dtype=float)
            # math.fsum is exact; R's sum accumulates in long double: agreement to 1e-14 relative
            for key, value in (("sum", math.fsum(x)), ("sumsq", math.fsum(x * x))):
                r = float(ref[key])
                assert abs(value - r) <= 1e-14 * max(1.0, abs(r)), (col, key, value, r)


@pytest.mark.parametrize("name,column,levels,ordered", [
    # from R: levels(nlme::Orthodont$Subject)[1:4]; levels(lme4::cake$temperature); ...
    ("Orthodont", "Subject", ["M16", "M05", "M02", "M11"], True),
    ("Machines", "Worker", ["6", "2", "4", "1", "3", "5"], True),
    ("Rail", "Rail", ["2", "5", "1", "6", "3", "4"], True),
    ("Oats", "Block", ["VI", "V", "III", "IV", "II", "I"], True),
    ("cake", "temperature", ["175", "185", "195", "205", "215", "225"], True),
    ("InstEval", "studage", ["2", "4", "6", "8"], True),
    ("InstEval", "dept", ["15", "5", "10", "12", "6", "7", "4", "8", "9", "14", "1", "3", "11", "2"], False),
    ("VerbAgg", "resp", ["no", "perhaps", "yes"], True),
    ("Pastes", "sample", ["A:a", "A:b", "A:c", "B:a"], False),
])
def test_level_orders_typed_from_R(name, column, levels, ordered):
    col = datasets.load(name)[column]
    assert list(col.cat.categories[:len(levels)]) == levels and col.cat.ordered is ordered


def test_first_rows_typed_from_R():
    # head(lme4::Penicillin, 2); head(nlme::Oats, 1); head(lme4::InstEval, 1)
    pen = datasets.load("Penicillin")
    assert pen.iloc[:2].astype(object).values.tolist() == [[27.0, "a", "A"], [23.0, "a", "B"]]
    assert datasets.load("Oats").iloc[0].tolist() == ["I", "Victory", 0.0, 111.0]
    assert datasets.load("InstEval").iloc[0].tolist() == ["1", "1002", "2", "2", "0", "2", 5]


@pytest.mark.parametrize("name", ["sim_ri", "sim_ris"])
def test_simulations_bit_for_bit(name):
    ref = pd.read_csv(reference_path(f"{name}.csv"), dtype={"clus": str})
    d = datasets.load(name)
    np.testing.assert_array_equal(d["x"].to_numpy(), ref["x"].to_numpy())
    np.testing.assert_array_equal(d["y"].to_numpy(), ref["y"].to_numpy())
    assert d["clus"].astype(str).tolist() == ref["clus"].tolist()


def test_list_names_rows_columns_source():
    lst = datasets.list()
    assert list(lst.index) == NAMES
    assert list(lst.columns) == ["rows", "ncol", "columns", "origin", "source"]
    assert lst.loc["InstEval", "rows"] == 73421 and lst.loc["Penicillin", "columns"] == "diameter, plate, sample"
    assert set(lst.origin) == {"lme4", "nlme", "document"}
    assert all(len(datasets.info(n).description) > 100 for n in NAMES)


def test_each_call_is_a_fresh_frame():
    d = datasets.load("Rail")
    d.loc[0, "travel"] = -1.0
    assert datasets.load("Rail").loc[0, "travel"] == 55.0


def test_names_are_checked():
    assert datasets.load("penicillin").shape == (144, 3)  # the one case-insensitive match
    with pytest.raises(KeyError, match=r"no data set named 'Penicilin'; mmbook.datasets has: sleepstudy, "):
        datasets.load("Penicilin")
    with pytest.raises(TypeError, match="must be a string"):
        datasets.load(3)


def test_package_stays_small():
    from importlib import resources

    total = sum(p.stat().st_size for p in (resources.files("mmbook.datasets") / "data").iterdir())
    assert total < 400_000
