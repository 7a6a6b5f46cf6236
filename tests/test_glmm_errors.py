"""glmer's handling of bad input: a clear error naming the problem, or a warning saying what was done.

Each case is an input lme4/R's glm refuse or warn about (R's ``binomial()$initialize``,
``poisson()$initialize``, lme4's ``checkResponse``), or an argument mmbook cannot use.
"""

import warnings

import numpy as np
import pandas as pd
import pytest

import mmbook
from mmbook.engine.control import SingularFitWarning
from mmbook.engine.glmm_control import GlmerControl


def binary_data(seed=1, n_groups=15, size=12):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), size)
    x = rng.normal(size=g.size)
    b = rng.normal(0, 0.8, n_groups)
    y = (rng.random(g.size) < 1 / (1 + np.exp(-(0.3 + x + b[g])))).astype(float)
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{i:02d}" for i in g], "n": rng.integers(1, 6, g.size)})


def count_data(seed=2):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(12), 10)
    x = rng.normal(size=g.size)
    y = rng.poisson(np.exp(0.5 + 0.3 * x + rng.normal(0, 0.5, 12)[g]))
    return pd.DataFrame({"y": y.astype(float), "x": x, "g": [f"h{i}" for i in g], "t": rng.uniform(0.5, 2, g.size)})


def test_negative_counts():
    d = count_data()
    d.loc[3, "y"] = -1
    with pytest.raises(ValueError, match="negative values"):
        mmbook.glmer("y ~ x + (1 | g)", d, family="poisson")


def test_fractional_counts():
    d = count_data()
    d.loc[3, "y"] = 2.5
    with pytest.raises(ValueError, match="whole numbers"):
        mmbook.glmer("y ~ x + (1 | g)", d, family="poisson")


def test_proportions_without_weights():
    d = binary_data()
    d["p"] = d["y"] * 0.5 + 0.25
    with pytest.raises(ValueError, match="no weights"):
        mmbook.glmer("p ~ x + (1 | g)", d, family="binomial")


def test_binomial_response_outside_unit_interval():
    d = binary_data()
    d.loc[0, "y"] = 2.0
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        mmbook.glmer("y ~ x + (1 | g)", d, family="binomial")


def test_three_level_factor():
    d = binary_data()
    d["f"] = np.array(["a", "b", "c"])[np.arange(len(d)) % 3]
    with pytest.raises(ValueError, match="3 levels"):
        mmbook.glmer("f ~ x + (1 | g)", d, family="binomial")


def test_factor_response_for_poisson():
    d = binary_data()
    d["f"] = np.where(d["y"] > 0, "yes", "no")
    with pytest.raises(TypeError, match="factor"):
        mmbook.glmer("f ~ x + (1 | g)", d, family="poisson")


def test_cbind_needs_binomial_and_non_negative_counts():
    d = binary_data()
    d["s"] = d["y"] * d["n"]
    with pytest.raises(ValueError, match="binomial family"):
        mmbook.glmer("cbind(s, n - s) ~ x + (1 | g)", d, family="poisson")
    d.loc[0, "s"] = d.loc[0, "n"] + 1
    with pytest.raises(ValueError, match="non-negative"):
        mmbook.glmer("cbind(s, n - s) ~ x + (1 | g)", d, family="binomial")
    with pytest.raises(ValueError, match="two arguments"):
        mmbook.glmer("cbind(s) ~ x + (1 | g)", d, family="binomial")


def test_constant_response():
    d = binary_data()
    d["y"] = 1.0
    with pytest.raises(ValueError, match="constant"):
        mmbook.glmer("y ~ x + (1 | g)", d, family="binomial")


def test_non_integer_successes_warn():
    d = binary_data()
    d["p"] = np.where(d["y"] > 0, 0.4, 0.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mmbook.glmer("p ~ x + (1 | g)", d, family="binomial", weights=np.ones(len(d)))
    assert any("non-integer numbers of successes" in str(w.message) for w in caught)


def test_bad_weights_and_offsets():
    d = count_data()
    with pytest.raises(ValueError, match="non-negative"):
        mmbook.glmer("y ~ x + (1 | g)", d, family="poisson", weights=-np.ones(len(d)))
    with pytest.raises(ValueError, match="one value per row"):
        mmbook.glmer("y ~ x + (1 | g)", d, family="poisson", offset=np.zeros(3))
    d.loc[0, "t"] = 0.0
    with pytest.raises(ValueError, match="infinite"):
        mmbook.glmer("y ~ x + offset(log(t)) + (1 | g)", d, family="poisson")
    with pytest.raises(KeyError, match="'nope'"):
        mmbook.glmer("y ~ x + (1 | g)", d, family="poisson", offset="log(nope)")
    with pytest.raises(ValueError, match="cannot be removed"):
        mmbook.glmer("y ~ x - offset(t) + (1 | g)", d, family="poisson")


def test_missing_values_dropped_with_one_warning():
    """A missing response, weight or offset drops the row; one warning gives the count."""
    d = count_data()
    d.loc[0, "y"] = np.nan
    d.loc[1, "t"] = np.nan
    w = np.ones(len(d))
    w[2] = np.nan
    with pytest.warns(UserWarning, match="3 rows with missing values removed"):
        f = mmbook.glmer("y ~ x + (1 | g)", d, family="poisson", offset="log(t)", weights=w)
    assert f.nobs == len(d) - 3
    assert list(f.fitted.index) == list(d.index[3:])


def test_arguments():
    d = binary_data()
    with pytest.raises(ValueError, match="nAGQ"):
        mmbook.glmer("y ~ x + (1 | g)", d, family="binomial", nAGQ=26)
    with pytest.raises(ValueError, match="nAGQ"):
        mmbook.glmer("y ~ x + (1 | g)", d, family="binomial", nAGQ=1.5)
    with pytest.raises(ValueError, match="single, scalar"):
        mmbook.glmer("y ~ x + (x | g)", d, family="binomial", nAGQ=5)
    with pytest.raises(ValueError, match="link 'log' is not available"):
        mmbook.binomial("log")
    with pytest.raises(ValueError, match="lmer"):
        mmbook.glmer("y ~ x + (1 | g)", d, family="gaussian")
    with pytest.raises(ValueError, match="not available"):
        mmbook.glmer("y ~ x + (1 | g)", d, family="gamma")
    with pytest.raises(TypeError, match="family"):
        mmbook.glmer("y ~ x + (1 | g)", d, family=3)
    with pytest.raises(ValueError, match="no random-effects terms"):
        mmbook.glmer("y ~ x", d, family="binomial")
    with pytest.raises(TypeError, match="GlmerControl"):
        mmbook.glmer("y ~ x + (1 | g)", d, family="binomial", control=mmbook.LmerControl())
    with pytest.raises(KeyError, match="nope"):
        mmbook.glmer("y ~ nope + (1 | g)", d, family="binomial")
    with pytest.raises(TypeError, match="DataFrame"):
        mmbook.glmer("y ~ x + (1 | g)", d.to_numpy(), family="binomial")
    with pytest.raises(ValueError, match="start"):
        mmbook.glmer("y ~ x + (1 | g)", d, family="binomial", start=[1.0, 2.0])
    with pytest.raises(ValueError, match="keys"):
        mmbook.glmer("y ~ x + (1 | g)", d, family="binomial", start={"beta": [0, 0]})


def test_start_values_reach_the_same_optimum():
    d = binary_data()
    a = mmbook.glmer("y ~ x + (1 | g)", d, family="binomial")
    b = mmbook.glmer("y ~ x + (1 | g)", d, family="binomial", start={"theta": [0.3], "fixef": [1.0, -1.0]})
    assert abs(a.loglik - b.loglik) < 1e-8


def test_complete_separation_is_an_error():
    """x > 0 gives y = 1: no finite maximum likelihood estimate; lme4 stops too ("pwrssUpdate did not converge")."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=200)
    d = pd.DataFrame({"y": (x > 0).astype(float), "x": x, "g": np.repeat(np.arange(20), 10).astype(str)})
    with pytest.raises(RuntimeError, match="separation"):
        mmbook.glmer("y ~ x + (1 | g)", d, family="binomial")


def test_quasi_separation_warns():
    """One group all successes and a fixed effect for it: its estimate runs off (lme4: 32, here larger)."""
    d = binary_data(seed=3)
    d["f"] = (d["g"] == "g03").astype(float)
    d.loc[d["f"] > 0, "y"] = 1.0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        f = mmbook.glmer("y ~ x + f + (1 | g)", d, family="binomial")
    assert any("numerically 0 or 1" in str(w.message) for w in caught)
    assert f.fixef["f"] > 15


def test_pirls_that_cannot_converge_is_reported():
    """PIRLS limited to one iteration cannot find the modes: the fit fails loudly, it does not carry on."""
    d = binary_data()
    with pytest.raises(RuntimeError, match="PIRLS did not converge in 1 iterations"):
        mmbook.glmer("y ~ x + (1 | g)", d, family="binomial", control=GlmerControl(maxit_pirls=1))


def test_singular_fit_warns():
    rng = np.random.default_rng(5)
    d = pd.DataFrame({"x": rng.normal(size=120), "g": np.repeat(np.arange(12), 10).astype(str)})
    d["y"] = np.tile([0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0], 12)  # every group alike
    with pytest.warns(SingularFitWarning):
        f = mmbook.glmer("y ~ 1 + (1 | g)", d, family="binomial")
    assert f.is_singular and f.theta[0] == 0.0
    assert "boundary (singular) fit" in str(f)


def test_observation_level_random_effect_allowed():
    """As many levels as observations (overdispersion): allowed for glmer (lme4's allow.n = TRUE)."""
    d = count_data()
    rng = np.random.default_rng(7)
    b = rng.normal(0, 0.7, 12)[np.repeat(np.arange(12), 10)]
    d["y"] = rng.poisson(np.exp(1.0 + 0.3 * d["x"] + b + rng.normal(0, 0.6, len(d)))).astype(float)
    d["obs"] = np.arange(len(d)).astype(str)
    f = mmbook.glmer("y ~ x + (1 | g) + (1 | obs)", d, family="poisson")
    assert f.ngroups["obs"] == len(d)
    assert not f.is_singular


def test_lmer_verbs_route_or_refuse():
    """mmbook.confint dispatches to the GLMM intervals; refit/bootstrap refuse a GLMM clearly."""
    d = binary_data()
    f = mmbook.glmer("y ~ x + (1 | g)", d, family="binomial")
    ci = mmbook.confint(f)
    assert list(ci.index) == [".sig01", "(Intercept)", "x"]
    with pytest.raises(NotImplementedError, match="GLMM"):
        mmbook.refit(f, d["y"].to_numpy())
