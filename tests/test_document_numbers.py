"""Every number the reference document prints for its two simulations, from mmbook's fits.

The data are regenerated with mmbook.rcompat.simulation (R's random numbers, bit for bit) and fitted
with mmbook.lmer; the chapters book/simulate.ipynb and book/appendix_slopes.ipynb print the same.

Sources, stated per test:
- the document: ``/work/shared/seed/000_aca01b1bc62ef554.txt`` (Clark 2016), section
  "Simulate a mixed model" (``summary(lmer(y ~ x + (1|clus)))``) and the Appendix
  (``head(data.frame(y, y2, y3))``, ``summary(lmer(y ~ x + (x|clus)))`` and the same for y4).
  Its printed blocks are copied below with the leading ``## `` removed; the copy in the document
  lost most of R's column alignment, so printed text is compared token by token.
- mmbook/reference/seed_sims.json: R 4.2.2, lme4 1.1-31, MASS 7.3-58.2 running the document's code,
  estimates at full precision (see tests/data/README.md).
- The document's fit to its marginal draw y5 is not tested: that draw depends on the
  eigenvectors LAPACK returns for a 1000 x 1000 matrix with an 800-fold eigenvalue, so neither
  mmbook nor R on another machine reproduces it (R 4.2.2 with reference BLAS/LAPACK 3.11 gives
  a REML criterion of 3294.1 instead of 3295.4).
"""

import json
from pathlib import Path

import numpy as np
import pytest

import mmbook
from conftest import reference_path
from mmbook.rcompat.simulation import simulate_random_intercepts, simulate_random_slopes

HERE = Path(__file__).parent

# the document, "Simulate a mixed model": summary(lmeMod) for y ~ x + (1|clus)
DOCUMENT_RI = """
Linear mixed model fit by REML ['lmerMod']
Formula: y ~ x + (1 | clus)
Data: d
REML criterion at convergence: 2939.6
Scaled residuals:
     Min       1Q   Median       3Q      Max
-3.4989 -0.6127  0.0124  0.5911  3.1352
Random effects:
Groups Name Variance Std.Dev.
clus (Intercept) 0.2247  0.4740
Residual 0.9756  0.9877
Number of obs: 1000, groups: clus, 100
Fixed effects:
Estimate Std. Error t value
(Intercept) 2.90087 0.05678 51.09
x 0.79944 0.03241 24.67
Correlation of Fixed Effects:
(Intr)
x -0.016
"""

# the document, Appendix: summary(lmeMod) for y ~ x + (x|clus) (the y4 fit prints the same)
DOCUMENT_RIS = """
Linear mixed model fit by REML ['lmerMod']
Formula: y ~ x + (x | clus)
Data: d
REML criterion at convergence: 3266.3
Scaled residuals:
     Min       1Q   Median       3Q      Max
-2.93509 -0.60853  0.01813  0.61857  3.05202
Random effects:
  Groups   Name                Variance Std.Dev. Corr
  clus      (Intercept)  1.0369    1.0183
          x              0.9562    0.9779  0.25
  Residual                0.9590    0.9793
Number of obs: 1000, groups:  clus, 100
Fixed effects:
              Estimate Std. Error t value
(Intercept)    2.9693     0.1069  27.772
x              0.7940     0.1039   7.641
Correlation of Fixed Effects:
  (Intr)
x 0.220
"""

# the document, Appendix: head(data.frame(y, y2, y3)), all three columns equal
DOCUMENT_RIS_HEAD = [0.9711509, 8.0852901, 4.8193544, 0.9435537, 5.4213943, 5.7076778]


@pytest.fixture(scope="module")
def ref():
    return json.loads(reference_path("seed_sims.json").read_text())


@pytest.fixture(scope="module")
def ri():
    return simulate_random_intercepts()


@pytest.fixture(scope="module")
def ris():
    return simulate_random_slopes()


@pytest.fixture(scope="module")
def fit_ri(ri):
    return mmbook.lmer("y ~ x + (1 | clus)", ri.data)


@pytest.fixture(scope="module")
def fit_ris(ris):
    return mmbook.lmer("y ~ x + (x | clus)", ris.data)


def tokens(text, drop_data_line=True):
    """Whitespace-separated tokens, without R's ``Data: d`` line (mmbook cannot know the name)."""
    lines = [ln for ln in text.strip().splitlines()
             if not (drop_data_line and ln.strip().startswith("Data:"))]
    return " ".join(lines).split()


def sd(fit, k):
    return np.sqrt(np.diag(fit.vcov))[k]


# --- printed summaries, token by token -------------------------------------------------

def test_ri_summary_prints_the_documents_numbers(fit_ri):
    # source: the document's printed summary (DOCUMENT_RI)
    assert tokens(str(fit_ri)) == tokens(DOCUMENT_RI)


def test_ris_summary_prints_the_documents_numbers(fit_ris):
    # source: the document's printed summary (DOCUMENT_RIS)
    assert tokens(str(fit_ris)) == tokens(DOCUMENT_RIS)


# --- random intercepts: each printed number ---------------------------------------------

def test_ri_reml_criterion(fit_ri, ref):
    assert round(fit_ri.objective, 1) == 2939.6                          # the document
    assert abs(fit_ri.objective - ref["sim_ri"]["REMLcrit"]) < 1e-6      # seed_sims.json


def test_ri_variance_components(fit_ri):
    # the document: clus (Intercept) 0.2247 (0.4740); Residual 0.9756 (0.9877)
    vc = fit_ri.varcorr
    assert f"{vc['vcov'][0]:.4f}" == "0.2247" and f"{vc['sdcor'][0]:.4f}" == "0.4740"
    assert f"{fit_ri.sigma**2:.4f}" == "0.9756" and f"{fit_ri.sigma:.4f}" == "0.9877"


def test_ri_fixed_effects(fit_ri):
    # the document: 2.90087 (0.05678, t 51.09) and 0.79944 (0.03241, t 24.67); corr -0.016
    b = fit_ri.fixef
    assert f"{b['(Intercept)']:.5f}" == "2.90087" and f"{sd(fit_ri, 0):.5f}" == "0.05678"
    assert f"{b['x']:.5f}" == "0.79944" and f"{sd(fit_ri, 1):.5f}" == "0.03241"
    assert f"{b['(Intercept)'] / sd(fit_ri, 0):.2f}" == "51.09"
    assert f"{b['x'] / sd(fit_ri, 1):.2f}" == "24.67"
    V = fit_ri.vcov.to_numpy()
    assert f"{V[0, 1] / np.sqrt(V[0, 0] * V[1, 1]):.3f}" == "-0.016"


def test_ri_estimates_equal_r_full_precision(fit_ri, ref):
    # seed_sims.json (R 4.2.2, lme4 1.1-31): relative 1e-5 or better
    r = ref["sim_ri"]
    got = [fit_ri.psi(0)[0, 0], fit_ri.sigma, fit_ri.fixef["(Intercept)"], fit_ri.fixef["x"],
           sd(fit_ri, 0), sd(fit_ri, 1), fit_ri.theta[0], fit_ri.loglik]
    want = [r["re_var"][0], r["sigma"], r["fixef"]["(Intercept)"], r["fixef"]["x"],
            r["fixef_se"]["(Intercept)"], r["fixef_se"]["x"], r["theta"]["clus.(Intercept)"], r["logLik"]]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=0)


def test_ri_first_rows_of_data(ri, ref):
    # seed_sims.json: head(d) from R, all 17 digits
    assert ri.y[:6].tolist() == ref["sim_ri"]["data_head6"]["y"]
    assert ri.x[:6].tolist() == ref["sim_ri"]["data_head6"]["x"]


# --- random intercepts and slopes: each printed number ----------------------------------

def test_ris_first_rows_of_y_four_ways(ris, ref):
    # the document: head(data.frame(y, y2, y3)) at 7 decimals; seed_sims.json: y at 17 digits
    for y in (ris.y, ris.y_rowsum, ris.y_blockdiag, ris.y_bycluster):
        assert [f"{v:.7f}" for v in y[:6]] == [f"{v:.7f}" for v in DOCUMENT_RIS_HEAD]
    assert ris.y[:6].tolist() == ref["sim_ris"]["data_head6"]["y"]


def test_ris_reml_criterion(fit_ris, ref):
    assert round(fit_ris.objective, 1) == 3266.3                         # the document
    assert abs(fit_ris.objective - ref["sim_ris"]["REMLcrit"]) < 1e-6    # seed_sims.json


def test_ris_variance_components(fit_ris):
    # the document: (Intercept) 1.0369 (1.0183), x 0.9562 (0.9779), corr 0.25; Residual 0.9590 (0.9793)
    vc = fit_ris.varcorr
    assert [f"{v:.4f}" for v in vc["vcov"][:2]] == ["1.0369", "0.9562"]
    assert [f"{v:.4f}" for v in vc["sdcor"][:2]] == ["1.0183", "0.9779"]
    assert f"{vc['sdcor'][2]:.2f}" == "0.25"
    assert f"{fit_ris.sigma**2:.4f}" == "0.9590" and f"{fit_ris.sigma:.4f}" == "0.9793"


def test_ris_fixed_effects(fit_ris):
    # the document: 2.9693 (0.1069, t 27.772) and 0.7940 (0.1039, t 7.641); corr 0.220
    b = fit_ris.fixef
    assert f"{b['(Intercept)']:.4f}" == "2.9693" and f"{sd(fit_ris, 0):.4f}" == "0.1069"
    assert f"{b['x']:.4f}" == "0.7940" and f"{sd(fit_ris, 1):.4f}" == "0.1039"
    assert f"{b['(Intercept)'] / sd(fit_ris, 0):.3f}" == "27.772"
    assert f"{b['x'] / sd(fit_ris, 1):.3f}" == "7.641"
    V = fit_ris.vcov.to_numpy()
    assert f"{V[0, 1] / np.sqrt(V[0, 0] * V[1, 1]):.3f}" == "0.220"


def test_ris_estimates_equal_r_full_precision(fit_ris, ref):
    # seed_sims.json (R 4.2.2, lme4 1.1-31): relative 1e-5 or better
    r = ref["sim_ris"]
    vc = fit_ris.varcorr
    got = [*vc["vcov"][:2], *vc["sdcor"][:3], fit_ris.sigma, fit_ris.fixef["(Intercept)"],
           fit_ris.fixef["x"], sd(fit_ris, 0), sd(fit_ris, 1), *fit_ris.theta, fit_ris.loglik]
    want = [*r["re_var"], *r["re_sd"], r["re_corr"], r["sigma"], r["fixef"]["(Intercept)"],
            r["fixef"]["x"], r["fixef_se"]["(Intercept)"], r["fixef_se"]["x"],
            r["theta"]["clus.(Intercept)"], r["theta"]["clus.x.(Intercept)"], r["theta"]["clus.x"],
            r["logLik"]]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=0)


def test_ris_cluster_loop_response_gives_the_same_fit(ris, fit_ris):
    # the document: lmer(y4 ~ x + (x|clus)) prints the same summary as for y
    fit4 = mmbook.lmer("y4 ~ x + (x | clus)", ris.data.assign(y4=ris.y_bycluster))
    assert abs(fit4.objective - fit_ris.objective) < 1e-6
    assert tokens(str(fit4)) == tokens(DOCUMENT_RIS.replace("Formula: y ~", "Formula: y4 ~"))
