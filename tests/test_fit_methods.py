"""The fit's methods that mmbook.inference provides (lmerTest's on lme4's fits), through the engine's registry."""

import numpy as np
import pytest

import mmbook
from mmbook import inference


@pytest.fixture(scope="module")
def fit():
    return mmbook.lmer("Reaction ~ Days + (Days | Subject)", mmbook.load_sleepstudy())


def test_coef_table_ddf(fit):
    lme4 = fit.coef_table()
    assert list(lme4.columns) == ["Estimate", "Std. Error", "t value"]
    for ddf in ("Satterthwaite", "Kenward-Roger"):
        ours = fit.coef_table(ddf=ddf)
        theirs = inference.coef_table(fit, ddf=ddf)
        assert ours.equals(theirs)
        assert list(ours.columns) == ["Estimate", "Std. Error", "df", "t value", "Pr(>|t|)"]
    np.testing.assert_allclose(fit.coef_table(ddf="Satterthwaite")["Estimate"], lme4["Estimate"])


def test_anova_lme4_and_lmertest(fit):
    assert "DenDF" not in fit.anova().columns               # lme4's sequential table
    f = fit.anova(type=3)                                     # lmerTest's, Satterthwaite
    assert f.equals(inference.anova_table(fit, type=3, ddf="Satterthwaite"))
    assert "DenDF" in f.columns


def test_contest_and_r2(fit):
    L = np.array([[0.0, 1.0]])
    assert fit.contest(L).equals(inference.contest(fit, L))
    assert fit.r2() == inference.r2(fit)
