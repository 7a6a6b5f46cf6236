"""How a fit is made: the settings object and the BLAS thread limit.

lme4 takes its policies as one object (``lmerControl``); so does mmbook:
:class:`LmerControl` holds the optimizer's tolerances and the checks, and is
stored on every fit.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

from .optimize import OPTIMIZERS

__all__ = ["LmerControl", "SingularFitWarning", "ConvergenceWarning", "PredictorScaleWarning", "ConvergenceError",
           "blas_threads"]


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


class PredictorScaleWarning(UserWarning):
    """Information only: the predictors are on very different scales (lme4's ``check.scaleX``).

    mmbook optimises in a centred and scaled parameterisation
    (:mod:`mmbook.engine.conditioning`), so the fit is not affected; the
    message is kept because the coefficients of such predictors are hard
    to read.
    """


_ACTIONS = ("warning", "stop", "ignore")


@dataclass(frozen=True)
class LmerControl:
    """How ``lmer`` fits: optimizer settings and checks (lme4's ``lmerControl``).

    Attributes
    ----------
    optimizer : {"L-BFGS-B", "bobyqa", "Nelder-Mead"}
        ``"L-BFGS-B"`` (default; scipy, finite-difference gradients),
        ``"bobyqa"`` (NLopt's ``NLOPT_LN_BOBYQA``, lme4's default through
        ``nloptwrap``; needs the ``nlopt`` package) or ``"Nelder-Mead"``
        (scipy, bounded). See :mod:`mmbook.engine.optimize`.
    maxfun : int
        Evaluation budget of each optimizer run (lme4's ``maxfun`` /
        ``maxeval``).
    ftol, gtol : float
        L-BFGS-B stopping tolerances on the criterion and the projected gradient.
    grad_step : float
        Relative step of the finite-difference gradient.
    central : bool
        Central instead of forward differences (twice the evaluations).
    polish : bool
        Newton steps after the optimizer so that ``theta`` is accurate to many
        digits, not just the criterion.
    condition : bool
        Optimise in the centred and scaled parameterisation of
        :mod:`mmbook.engine.conditioning` (default), which reaches the
        optimum whatever the units of the data. False optimises lme4's
        ``theta`` directly.
    singular_tol : float
        A diagonal element of the conditioned ``T`` below this is "on the
        boundary" (lme4's ``isSingular(tol = 1e-4)``, which looks at ``T``
        in the data's units; see :attr:`mmbook.engine.fit.LmerFit.is_singular`).
    check_singular : bool
        Warn about a singular fit, as lme4's message does.
    check_conv_grad, check_conv_grad_tol : str, float
        lme4's ``check.conv.grad``: the scaled gradient at the optimum
        must be below the tolerance; ``"warning"``, ``"stop"`` (raise
        :class:`ConvergenceError`) or ``"ignore"``.
    check_conv_hess, check_conv_hess_tol : str, float
        lme4's ``check.conv.hess``: the Hessian's eigenvalues (negative:
        not a minimum; tiny relative to the largest: nearly unidentifiable).
    max_hessian_params : int
        With more parameters the convergence check uses the diagonal of
        the Hessian only (``2k`` instead of ``2k^2`` evaluations) and says so.
    check_nobs_vs_nRE : str
        lme4's ``check.nobs.vs.nRE``: what to do when a term has at least
        as many random effects as there are observations.
    check_scaleX : str
        lme4's ``check.scaleX``: the message about predictors on very
        different scales (``"warning"``: as information, a
        :class:`PredictorScaleWarning`; ``"stop"``; ``"ignore"``).
    blas_threads : int or None
        BLAS threads during the fit (None: leave as is). The criterion works
        on small matrices, where OpenBLAS's threads cost more than they give
        (4x slower on a 2-core machine), so the default is 1.

    Raises
    ------
    ValueError
        An unknown optimizer or check action, or a non-positive tolerance.
    """

    optimizer: str = "L-BFGS-B"
    maxfun: int = 100_000
    ftol: float = 1e-12
    gtol: float = 1e-6
    grad_step: float = 1e-6
    central: bool = False
    polish: bool = True
    condition: bool = True
    singular_tol: float = 1e-4
    check_singular: bool = True
    check_conv_grad: str = "warning"
    check_conv_grad_tol: float = 2e-3
    check_conv_hess: str = "warning"
    check_conv_hess_tol: float = 1e-6
    max_hessian_params: int = 20
    check_nobs_vs_nRE: str = "stop"
    check_scaleX: str = "warning"
    blas_threads: int | None = 1

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(map(repr, OPTIMIZERS))}, got {self.optimizer!r}")
        for name in ("check_conv_grad", "check_conv_hess", "check_nobs_vs_nRE", "check_scaleX"):
            if getattr(self, name) not in _ACTIONS:
                raise ValueError(f"{name} must be one of {', '.join(map(repr, _ACTIONS))}, "
                                 f"got {getattr(self, name)!r}")
        for name in ("ftol", "gtol", "grad_step", "singular_tol", "check_conv_grad_tol", "check_conv_hess_tol"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and v > 0):
                raise ValueError(f"{name} must be a positive number, got {v!r}")
        if not (isinstance(self.maxfun, int) and self.maxfun > 0):
            raise ValueError(f"maxfun must be a positive integer, got {self.maxfun!r}")


class ConvergenceError(RuntimeError):
    """A convergence check set to ``"stop"`` failed."""
