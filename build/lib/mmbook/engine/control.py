"""How a fit is made: the settings object and the BLAS thread limit.

lme4 takes its policies as one object (``lmerControl``); so does mmbook:
:class:`LmerControl` holds the optimizer's tolerances and the checks, and is
stored on every fit.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

__all__ = ["LmerControl", "SingularFitWarning", "ConvergenceWarning", "blas_threads"]


@contextmanager
def blas_threads(n: int | None):
    """Limit the BLAS thread pools to ``n`` threads inside the block (no-op for None)."""
    if n is None:
        yield
        return
    global _CONTROLLER
    if _CONTROLLER is None:  # scanning the loaded libraries costs ~0.3 ms: do it once
        from threadpoolctl import ThreadpoolController

        _CONTROLLER = ThreadpoolController()
    with _CONTROLLER.limit(limits=n, user_api="blas"):
        yield


_CONTROLLER = None


class SingularFitWarning(UserWarning):
    """The estimated random-effects covariance is singular (a variance or a correlation at its bound)."""


class ConvergenceWarning(RuntimeWarning):
    """The optimizer did not reach a point that passes the convergence checks (lme4's ``checkConv``)."""


@dataclass(frozen=True)
class LmerControl:
    """How ``lmer`` fits: optimizer settings and checks (lme4's ``lmerControl``).

    Attributes
    ----------
    ftol, gtol : float
        L-BFGS-B stopping tolerances on the criterion and the projected gradient.
    grad_step : float
        Relative step of the finite-difference gradient.
    central : bool
        Central instead of forward differences (twice the evaluations).
    polish : bool
        Newton steps after L-BFGS-B so that ``theta`` is accurate to many
        digits, not just the criterion.
    singular_tol : float
        A diagonal element of ``theta`` below this is "on the boundary"
        (lme4's ``isSingular(tol = 1e-4)``).
    check_singular : bool
        Warn about a singular fit, as lme4's message does.
    blas_threads : int or None
        BLAS threads during the fit (None: leave as is). The criterion works
        on small matrices, where OpenBLAS's threads cost more than they give
        (4x slower on a 2-core machine), so the default is 1.
    """

    ftol: float = 1e-12
    gtol: float = 1e-6
    grad_step: float = 1e-6
    central: bool = False
    polish: bool = True
    singular_tol: float = 1e-4
    check_singular: bool = True
    blas_threads: int | None = 1


