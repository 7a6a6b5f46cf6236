"""The sleepstudy loader: shape, dtypes, factor levels and values.

Reference: the CSV shipped in the package, mmbook/data/sleepstudy.csv (lme4's
sleepstudy, Belenky et al. 2003), read here independently with the csv module.
"""

import csv
from importlib import resources

import numpy as np
import pandas as pd
import pytest

import mmbook


@pytest.fixture(scope="module")
def sleep():
    return mmbook.load_sleepstudy()


@pytest.fixture(scope="module")
def raw_rows():
    with resources.files("mmbook").joinpath("data/sleepstudy.csv").open("r", newline="") as fh:
        return list(csv.DictReader(fh))


def test_shape_and_columns(sleep):
    assert sleep.shape == (180, 3)
    assert list(sleep.columns) == ["Reaction", "Days", "Subject"]


def test_dtypes(sleep):
    assert sleep["Reaction"].dtype == np.float64
    assert sleep["Days"].dtype == np.int64
    assert isinstance(sleep["Subject"].dtype, pd.CategoricalDtype)


def test_subject_levels_in_original_order(sleep):
    levels = list(sleep["Subject"].cat.categories)
    # R's factor levels of lme4::sleepstudy$Subject
    assert levels == ["308", "309", "310", "330", "331", "332", "333", "334", "335",
                      "337", "349", "350", "351", "352", "369", "370", "371", "372"]
    assert not sleep["Subject"].cat.ordered
    assert (sleep["Subject"].value_counts() == 10).all()


def test_days_are_zero_to_nine_for_everyone(sleep):
    days = sleep.groupby("Subject", observed=True)["Days"].apply(list)
    assert all(d == list(range(10)) for d in days)


def test_values_match_csv(sleep, raw_rows):
    assert len(raw_rows) == 180
    np.testing.assert_array_equal(sleep["Reaction"].to_numpy(),
                                  [float(r["Reaction"]) for r in raw_rows])
    np.testing.assert_array_equal(sleep["Days"].to_numpy(), [int(r["Days"]) for r in raw_rows])
    assert sleep["Subject"].astype(str).tolist() == [r["Subject"] for r in raw_rows]


def test_known_values(sleep):
    # first and last rows of lme4's sleepstudy
    assert sleep.iloc[0].tolist() == [249.56, 0, "308"]
    assert sleep.iloc[-1].tolist() == [364.1236, 9, "372"]


def test_each_call_returns_a_fresh_frame(sleep):
    other = mmbook.load_sleepstudy()
    other.loc[0, "Reaction"] = -1.0
    assert mmbook.load_sleepstudy().loc[0, "Reaction"] == 249.56
