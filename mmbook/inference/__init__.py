"""Small-sample inference for linear mixed models, built on the engine's seams.

As lmerTest and pbkrtest sit outside lme4, this package sits outside
:mod:`mmbook.engine`: it uses a fit's penalized least squares problem
(``fit.pls``), its model frame (``fit.mf``) and its estimates, and changes
nothing in them.

* :mod:`~mmbook.inference.satterthwaite` - Satterthwaite's df (lmerTest);
* :mod:`~mmbook.inference.kenward_roger` - Kenward-Roger's adjusted
  covariance and df (pbkrtest);
* :mod:`~mmbook.inference.contrasts` - type I, II, III hypotheses of the
  fixed-effect terms (lmerTest);
* :mod:`~mmbook.inference.ftests` - :func:`coef_table`, :func:`anova_table`,
  :func:`contest`;
* :mod:`~mmbook.inference.emmeans` - estimated marginal means and their
  pairwise comparisons (emmeans);
* :mod:`~mmbook.inference.r2` - Nakagawa & Schielzeth's R² and the
  adjusted ICC (performance).
"""

# the functions named like their modules (emmeans, r2) are bound here, after the modules load
from .emmeans import EMMeans, emmeans  # noqa: E402
from .ftests import anova_table, coef_table, contest  # noqa: E402
from .r2 import icc, r2  # noqa: E402

from ..engine.extensions import register  # noqa: E402

__all__ = ["coef_table", "anova_table", "contest", "emmeans", "EMMeans", "r2", "icc"]

# the fit's methods coef_table(ddf=...), anova(type=..., ddf=...), contest, emmeans, r2 (mmbook.engine.extensions)
for _name, _function in (("coef_table", coef_table), ("anova_table", anova_table), ("contest", contest),
                         ("emmeans", emmeans), ("r2", r2)):
    register(_name, _function)
