"""The book's data set, from :mod:`mmbook.datasets`."""

import pandas as pd

from importlib import resources

from .datasets import load

__all__ = ["load_sleepstudy", "load_cbpp"]


def load_sleepstudy() -> pd.DataFrame:
    """Reaction times in a sleep-deprivation study (lme4's ``sleepstudy``).

    Average reaction time (ms) per day for 18 subjects who, from day 0 on,
    were allowed only 3 hours of sleep per night. Day 0 follows a normal
    night's sleep. The data come from Belenky et al. (2003), *Journal of
    Sleep Research* 12, 1-12, as distributed with the R package lme4 (Bates,
    Maechler, Bolker and Walker): ``mmbook.datasets.load("sleepstudy")``,
    with ``Days`` as integers.

    Returns
    -------
    pandas.DataFrame
        180 rows and the columns ``Reaction`` (float, ms), ``Days`` (int64,
        0-9: R stores whole numbers of days as doubles; the book counts them)
        and ``Subject`` (categorical with R's 18 levels in R's order: 308,
        309, ...). A fresh frame on every call.
    """
    df = load("sleepstudy")
    days = df["Days"].to_numpy()
    if not (days == days.round()).all():  # cannot happen with lme4's data; guards the conversion
        raise RuntimeError("sleepstudy's Days are not whole numbers: the stored data set is corrupt")
    df["Days"] = days.astype("int64")
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
