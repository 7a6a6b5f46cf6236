"""Data sets shipped with mmbook."""

from importlib import resources

import pandas as pd

__all__ = ["load_sleepstudy"]


def load_sleepstudy() -> pd.DataFrame:
    """Reaction times in a sleep-deprivation study (lme4's ``sleepstudy``).

    Average reaction time (ms) per day for 18 subjects who, from day 0 on,
    were allowed only 3 hours of sleep per night. Day 0 follows a normal
    night's sleep. The data come from Belenky et al. (2003), *Journal of
    Sleep Research* 12, 1-12, as distributed with the R package lme4 (Bates,
    Maechler, Bolker and Walker); the CSV shipped here is the project's copy
    of ``shared/data/sleepstudy.csv``.

    Returns
    -------
    pandas.DataFrame
        180 rows and the columns ``Reaction`` (float, ms), ``Days`` (int,
        0-9) and ``Subject`` (categorical with the 18 subject labels in the
        order they appear in the data, as R's factor has them: 308, 309, ...).
    """
    with resources.files("mmbook").joinpath("data/sleepstudy.csv").open("r") as fh:
        df = pd.read_csv(fh, dtype={"Subject": str})
    labels = list(dict.fromkeys(df["Subject"]))
    df["Subject"] = pd.Categorical(df["Subject"], categories=labels)
    df["Days"] = df["Days"].astype("int64")
    df["Reaction"] = df["Reaction"].astype("float64")
    return df
