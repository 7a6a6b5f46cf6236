"""Profile likelihood and confidence intervals: mmbook.profile, confint (profile by default, as
lme4), parm selection, lme4's parameter names, and the profile figures.

Reference numbers: tests/data/lme4_verbs.json, written by tests/data/make_lme4_verbs.R (R 4.2.2,
lme4 1.1-31): confint.merMod with several parm/oldNames/level settings, as.data.frame(profile(m1))
and lme4's profile densities (lme4:::dens). m1 = Reaction ~ Days + (Days | Subject) by REML on
sleepstudy; fa = y ~ x * f + z + (1 | g) + (1 | h) by REML and fb = y ~ x + f + (x | g) + (1 | h) by
ML on tests/data/verbs.csv.

Tolerances. lme4 reads its limits off an interpolating spline through its profile points; mmbook
solves for the crossing exactly, so the two agree to about 5e-5 relative (the correlation's upper
limit, where the profile bends most, differs most). At lme4's own profile points, zeta agrees to
1e-3 where |zeta| < 3; further out lme4's inner optimisations stop early, and mmbook's profiled
deviance is never higher than lme4's (it minimises at least as well).
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

import mmbook
from mmbook.plots import profile_density, profile_zeta

DATA = Path(__file__).parent / "data"
REF = json.loads((DATA / "lme4_verbs.json").read_text())
CI = REF["confint"]


@pytest.fixture(scope="module")
def m1():
    return mmbook.lmer("Reaction ~ Days + (Days | Subject)", mmbook.load_sleepstudy())


@pytest.fixture(scope="module")
def d():
    return pd.read_csv(DATA / "verbs.csv")


@pytest.fixture(scope="module")
def prof(m1):
    return mmbook.profile(m1)


def check_ci(ci, ref, rtol=1e-4):
    rows = list(np.atleast_1d(ref["rows"]))
    assert list(ci.index) == rows
    assert list(ci.columns) == ref["cols"]
    expected = np.column_stack([np.atleast_1d(ref["lower"]), np.atleast_1d(ref["upper"])]).astype(float)
    np.testing.assert_allclose(ci.to_numpy(), expected, rtol=rtol, equal_nan=True)


def test_confint_default_is_profile(m1):
    check_ci(mmbook.confint(m1), CI["m1_default"])


@pytest.mark.parametrize("key, kwargs", [
    ("m1_parm_names", {"parm": [".sig01", "Days"]}),
    ("m1_parm_names", {"parm": ["Days", ".sig01"]}),  # names select in the parameters' order, as lme4
    ("m1_theta", {"parm": "theta_"}),
    ("m1_beta", {"parm": "beta_"}),
    ("m1_index", {"parm": [0, 4]}),  # R's c(1, 5): Python positions count from 0
])
def test_confint_parm_and_names(m1, key, kwargs):
    check_ci(m1.confint(**kwargs), CI[key])


def test_confint_new_names(m1):
    ref = CI["m1_newnames"]
    assert list(m1.confint("Wald", old_names=False).index) == ref["rows"]
    sigma = m1.confint(parm="sigma", old_names=False)
    np.testing.assert_allclose(sigma.to_numpy()[0], [ref["lower"][3], ref["upper"][3]], rtol=1e-4)
    corr = m1.confint(parm="cor_Days.(Intercept)|Subject", old_names=False)
    np.testing.assert_allclose(corr.to_numpy()[0], [ref["lower"][1], ref["upper"][1]], rtol=1e-4)


def test_confint_wald(m1, d):
    check_ci(m1.confint("Wald", parm="beta_"), CI["m1_wald_beta"], rtol=1e-6)
    fb = mmbook.lmer("y ~ x + f + (x | g) + (1 | h)", d, REML=False)
    check_ci(fb.confint("Wald", old_names=False), CI["fb_newnames_wald"], rtol=3e-5)


def test_confint_two_grouping_factors(d):
    fa = mmbook.lmer("y ~ x * f + z + (1 | g) + (1 | h)", d)
    check_ci(fa.confint(), CI["fa_default"])


def test_confint_bad_input(m1):
    with pytest.raises(KeyError, match="'.sig09' is not a parameter"):
        m1.confint(parm=".sig09")
    with pytest.raises(KeyError, match="out of range"):
        m1.confint("Wald", parm=6)
    with pytest.raises(TypeError, match="not a mix"):
        m1.confint("Wald", parm=[0, "Days"])
    with pytest.raises(ValueError, match="method"):
        m1.confint("bogus")
    with pytest.raises(ValueError, match="level"):
        m1.confint("Wald", level=1.5)


def test_profile_frame_layout(prof):
    ref = pd.DataFrame(REF["profile"]["m1"])
    assert list(prof.frame.columns) == list(ref.columns)
    assert list(prof.frame[".par"].cat.categories) == list(dict.fromkeys(ref[".par"]))
    for nm, sub in prof.frame.groupby(".par", observed=True):
        assert sub[".focal"].is_monotonic_increasing
        np.testing.assert_array_equal(sub[".focal"], sub[nm])  # the focal parameter's own column
        z = sub[".zeta"].to_numpy()
        assert np.all(np.diff(z) > 0)  # zeta increases with the parameter
        assert z.min() < -2.5 or sub[".focal"].min() == 0.0
        assert z.max() > 2.5 or nm == ".sig02"  # the correlation's profile stops at its bound 1


def test_profile_zeta_at_lme4_points(prof):
    ref = pd.DataFrame(REF["profile"]["m1"])
    names = [c for c in ref.columns if c not in (".zeta", ".par", ".focal")]
    for _, row in ref.iterrows():
        z = prof.zeta(row[".par"], row[".focal"])[0]
        if abs(row[".zeta"]) < 3:
            assert z == pytest.approx(row[".zeta"], abs=1e-3), (row[".par"], row[".focal"])
        else:
            assert abs(z) <= abs(row[".zeta"]) + 1e-4  # mmbook's profiled deviance is never higher
    assert names == list(prof.estimates.index)


def test_profile_other_parameters_at_lme4_points(prof):
    """At a profile point the other parameters are at their conditional optimum, as lme4 reports."""
    ref = pd.DataFrame(REF["profile"]["m1"])
    names = [c for c in ref.columns if c not in (".zeta", ".par", ".focal")]
    inner = ref[ref[".zeta"].abs() < 2]
    for _, row in inner.iterrows():
        j = names.index(row[".par"])
        _, params, _ = prof._profiler.point(j, row[".focal"])
        np.testing.assert_allclose(params, row[names].to_numpy(float), rtol=2e-3, atol=2e-3)


def test_profile_confint_levels(prof):
    check_ci(prof.confint(level=0.9), CI["m1_level90"], rtol=3e-4)
    check_ci(prof.confint(), CI["m1_default"])
    wide = prof.confint(parm="Days", level=0.9999)  # beyond the profile's cutoff: it walks further
    assert wide.iloc[0, 0] < CI["m1_default"]["lower"][5] and np.isfinite(wide.to_numpy()).all()


def test_profile_density_matches_lme4(prof):
    ours = prof.density()
    ref = pd.DataFrame(REF["profile"]["m1_dens"])
    assert list(ours.columns) == ["pval", "pnm", "density"]
    for nm in prof.names:
        a, b = ours[ours["pnm"] == nm], ref[ref["pnm"] == nm]
        assert len(a) == len(b) == 201
        inside = (b["pval"] >= a["pval"].min()) & (b["pval"] <= a["pval"].max())
        dens = np.interp(b["pval"][inside], a["pval"], a["density"])
        np.testing.assert_allclose(dens, b["density"][inside], atol=5e-3 * b["density"].max())
        # a density: it integrates to about the probability between -/+ z_0.999
        assert np.trapezoid(a["density"], a["pval"]) == pytest.approx(0.998, abs=0.01)


def test_profile_which_and_names(m1):
    p = mmbook.profile(m1, which="beta_", old_names=False)
    assert p.names == ["(Intercept)", "Days"]
    assert "sd_(Intercept)|Subject" in p.frame.columns
    with pytest.raises(KeyError, match="was not profiled"):
        p.zeta(".sig01", 10.0)
    with pytest.raises(ValueError, match="alphamax"):
        mmbook.profile(m1, alphamax=2)


def test_profile_figures(prof):
    for fig in (profile_zeta(prof), profile_zeta(prof, absolute=True), profile_density(prof)):
        assert isinstance(fig, Figure)
        assert sum(ax.get_visible() for ax in fig.axes) == len(prof.names)
        assert [ax.get_title() for ax in fig.axes if ax.get_visible()] == prof.names
    with pytest.raises(TypeError, match="profile"):
        profile_zeta(prof.frame)
