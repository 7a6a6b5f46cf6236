"""Data sets shipped with mmbook."""

from importlib import resources

import pandas as pd

__all__ = ["load_sleepstudy", "load_cbpp"]


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


def load_cbpp() -> pd.DataFrame:
    """Contagious bovine pleuropneumonia in 15 herds of zebu cattle (lme4's ``cbpp``).

    Serological incidence of CBPP in herds in Ethiopia, followed over four
    periods: the number of new cases (``incidence``) among the animals of a
    herd at risk (``size``). From Lesnoff et al. (2004), *Preventive
    Veterinary Medicine* 64, 27-40, as distributed with the R package lme4.

    Returns
    -------
    pandas.DataFrame
        56 rows and the columns ``herd`` (categorical, levels ``1``-``15``),
        ``incidence`` (int), ``size`` (int) and ``period`` (categorical,
        levels ``1``-``4``), as R's factors have them.
    """
    with resources.files("mmbook").joinpath("data/cbpp.csv").open("r") as fh:
        df = pd.read_csv(fh)
    df["herd"] = pd.Categorical(df["herd"], categories=sorted(df["herd"].unique()))
    df["period"] = pd.Categorical(df["period"], categories=sorted(df["period"].unique()))
    df["incidence"] = df["incidence"].astype("int64")
    df["size"] = df["size"].astype("int64")
    return df
