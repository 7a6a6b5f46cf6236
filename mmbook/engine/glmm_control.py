"""How ``glmer`` fits: one settings object (lme4's ``glmerControl``).

:class:`GlmerControl` extends :class:`~mmbook.engine.control.LmerControl`
(the optimizer's tolerances, the singular-fit check, the BLAS threads) with
the settings of the inner loop, penalized iteratively reweighted least
squares (PIRLS), and of the two optimisation stages.
"""

from __future__ import annotations

from dataclasses import dataclass

from .control import LmerControl

__all__ = ["GlmerControl", "PIRLSError", "check_glmer_control"]


class PIRLSError(RuntimeError):
    """PIRLS could not find the conditional modes: no decrease of the penalized deviance, or no convergence."""


@dataclass(frozen=True)
class GlmerControl(LmerControl):
    """Settings of ``glmer`` (lme4's ``glmerControl``), on top of :class:`LmerControl`'s.

    Attributes
    ----------
    tol_pirls : float
        PIRLS has converged when a full Newton step changes no linear
        predictor by more than this (then the conditional modes are exact to
        about its square). lme4 stops when the penalized deviance changes by
        less than ``tolPwrss = 1e-7`` relatively, which leaves the Laplace
        deviance uncertain in about its fifth decimal; this tolerance makes it
        exact to rounding.
    maxit_pirls : int
        Most PIRLS iterations per evaluation (lme4: 100).
    max_step_halvings : int
        Most halvings of a PIRLS step that fails to decrease the penalized
        deviance before PIRLS gives up and raises (lme4: ``maxstephalfit = 20``).
    nAGQ0_init_step : bool
        Optimise ``theta`` alone first, with ``beta`` at the joint conditional
        mode (the nAGQ = 0 criterion), then ``theta`` and ``beta`` together
        (lme4's ``nAGQ0initStep``).
    boundary_tol : float
        After the optimisation a variance parameter below this is tried at
        exactly zero and kept there if that does not raise the deviance
        (lme4's ``boundary.tol``).
    use_hessian : bool
        ``vcov`` from the finite-difference Hessian of the deviance in
        ``(theta, beta)`` (lme4's default for GLMMs), else from ``R_X``
        (``vcov(fit, use.hessian = FALSE)``).
    hessian_step : float
        Step of the central differences of that Hessian (lme4's ``deriv12``: 1e-4).
    grad_tol : float
        Convergence check: warn when a component of the gradient at the
        optimum, scaled by the Hessian, exceeds this (lme4's
        ``check.conv.grad`` tolerance 0.002).
    """

    tol_pirls: float = 1e-10
    maxit_pirls: int = 100
    max_step_halvings: int = 20
    nAGQ0_init_step: bool = True
    boundary_tol: float = 1e-5
    use_hessian: bool = True
    hessian_step: float = 1e-4
    grad_tol: float = 2e-3


def check_glmer_control(control) -> GlmerControl:
    """``control`` as a :class:`GlmerControl` (None: the defaults).

    Raises
    ------
    TypeError
        ``control`` is not a GlmerControl.
    """
    if control is None:
        return GlmerControl()
    if not isinstance(control, GlmerControl):
        raise TypeError(f"control must be an mmbook.GlmerControl, got {type(control).__name__}")
    return control
