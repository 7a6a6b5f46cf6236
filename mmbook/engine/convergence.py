"""Checking the optimum, as lme4's ``checkConv`` does.

At the optimum ``theta^`` of the profiled criterion ``d(theta)``, with the
finite-difference gradient ``g`` and Hessian ``H`` (lme4's ``deriv12``,
central differences with step ``1e-4``; mmbook's step is ``1e-4`` relative
for a parameter beyond 1, each parameter its own):

* **singular fit** (a diagonal element of ``T`` below ``singular_tol``):
  lme4 skips the other checks; mmbook checks the gradient over the
  parameters that are not on the boundary, and skips the Hessian checks.
* **gradient** (``check.conv.grad``, tolerance ``2e-3``): the scaled
  gradient ``U^{-T} g`` with ``H = U'U`` (R's ``solve(chol(H), g)``); the
  check fails when ``max_i min(|scaled_i|, |g_i|)`` exceeds the tolerance:
  "Model failed to converge with max|grad| = ...".
* **Hessian** (``check.conv.hess``, tolerance ``1e-6``), from its
  eigenvalues: negative ones ("degenerate Hessian"), zero ones ("numerically
  singular"), a largest one above ``1/tol`` ("very large eigenvalue") or a
  ratio below ``tol`` ("large eigenvalue ratio"): "Model is nearly
  unidentifiable".

**Where mmbook differs from lme4.** An eigenvalue counts as negative or
zero against ``max(tol, 10 eps |d| / h^2)``, the rounding noise of a central
second difference (lme4's fixed ``1e-6`` is below that noise once the
criterion exceeds ~50, so it calls a flat direction "negative" at random).
The derivatives are taken in the
conditioned parameterisation the optimizer works in
(:mod:`mmbook.engine.conditioning`: centred, unit-scale columns), not in
lme4's ``theta``. The checks then measure the optimum, not the units of the
data: lme4's "very large eigenvalue - Rescale variables?" cannot be caused
by a covariate in millions. The derivatives are those of the optimizer's
Newton polish at the optimum when it computed them (no extra evaluations),
else ``2k^2`` evaluations; with more than ``max_params`` parameters only the
Hessian's diagonal is used (``2k`` evaluations), and :attr:`Convergence.note`
says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .optimize import deriv12

__all__ = ["Convergence", "check_conv"]


@dataclass
class Convergence:
    """The figures of the convergence checks at the optimum (lme4's ``optinfo$derivs`` and ``conv$lme4``).

    Attributes
    ----------
    code : int
        lme4's code: 0 (OK), -1 (gradient), -3 (negative eigenvalues), -4
        (singular Hessian), -5 (gradient with NaN), -6 (Hessian not finite),
        2 / 3 (nearly unidentifiable: very large eigenvalue / eigenvalue ratio).
    messages : list of str
        lme4's messages for the failed checks.
    singular : bool
        The fit is on the boundary (decided in the conditioned parameterisation).
    index : ndarray of int
        The parameters the derivatives cover (all, or those off the boundary).
    gradient, scaled_gradient : ndarray or None
        ``g`` and ``U^{-T} g`` (``H = U'U``) over ``index``.
    max_grad : float
        ``max_i min(|scaled_i|, |g_i|)``: what is compared with ``grad_tol``.
    hessian : ndarray or None
        ``H`` over ``index`` (None when only its diagonal was computed).
    hessian_eigenvalues : ndarray or None
    grad_tol, hess_tol : float
    note : str
        How the derivatives were obtained, and any check that was skipped.
    """

    code: int = 0
    messages: list = field(default_factory=list)
    singular: bool = False
    index: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    gradient: np.ndarray | None = None
    scaled_gradient: np.ndarray | None = None
    max_grad: float = 0.0
    hessian: np.ndarray | None = None
    hessian_eigenvalues: np.ndarray | None = None
    grad_tol: float = 2e-3
    hess_tol: float = 1e-6
    note: str = ""

    @property
    def converged(self) -> bool:
        """No check says the optimizer failed (codes 2 and 3 are identifiability warnings)."""
        return self.code >= 0

    def __str__(self) -> str:
        lines = [f"convergence code {self.code}" + (" (OK)" if not self.messages else "")]
        lines += self.messages
        if self.gradient is not None:
            lines.append(f"max|grad| = {self.max_grad:.3g} (tol = {self.grad_tol:g})")
        if self.hessian_eigenvalues is not None and len(self.hessian_eigenvalues):
            ev = self.hessian_eigenvalues
            lines.append(f"Hessian eigenvalues: {ev.min():.4g} .. {ev.max():.4g}")
        if self.note:
            lines.append(self.note)
        return "\n".join(lines)


def _deriv_diag(f, x, h, f0):
    """Central-difference gradient and the Hessian's diagonal, ``2k`` evaluations (``h``: one step per coordinate)."""
    k = len(x)
    h = np.broadcast_to(np.asarray(h, dtype=float), (k,))
    g, d = np.empty(k), np.empty(k)
    for i in range(k):
        e = np.zeros(k)
        e[i] = h[i]
        fp, fm = f(x + e), f(x - e)
        g[i] = (fp - fm) / (2 * h[i])
        d[i] = (fp - 2 * f0 + fm) / h[i] ** 2
    return g, d


def check_conv(f, par, lower, *, fun=None, derivs=None, upper=None, singular_tol: float = 1e-4,
               grad_tol: float = 2e-3, hess_tol: float = 1e-6, check_grad: bool = True,
               check_hess: bool = True, max_params: int = 20) -> Convergence:
    """lme4's ``checkConv`` at the optimum ``par`` of ``f``.

    Parameters
    ----------
    f : callable
        The criterion the optimizer minimised (conditioned parameters).
    par, lower : ndarray
        The optimum and the lower bounds (0 for the diagonal of ``T``).
    fun : float, optional
        ``f(par)`` (evaluated if not given).
    derivs : dict, optional
        ``{"x", "index", "gradient", "hessian", "step"}`` computed at ``par``
        (the optimizer's :attr:`~mmbook.engine.optimize.OptimizeResult.derivs`);
        used when it covers the parameters to check.
    singular_tol, grad_tol, hess_tol : float
        lme4's ``check.conv.singular``, ``check.conv.grad`` and
        ``check.conv.hess`` tolerances.
    check_grad, check_hess : bool
        Run the gradient and the Hessian checks.
    max_params : int
        Beyond this many parameters, use the Hessian's diagonal only.

    Returns
    -------
    Convergence

    Notes
    -----
    Follows lme4 1.1-31's ``checkConv``, ``checkHess`` and ``deriv12``; see
    the module docstring for where mmbook differs.
    """
    par = np.asarray(par, dtype=float)
    lower = np.asarray(lower, dtype=float)
    upper = np.full_like(par, np.inf) if upper is None else np.asarray(upper, dtype=float)
    out = Convergence(grad_tol=grad_tol, hess_tol=hess_tol)
    on_bound = (lower == 0) & (par < singular_tol)
    out.singular = bool(on_bound.any())
    idx = np.flatnonzero(~on_bound)
    out.index = idx
    if not (check_grad or check_hess) or not idx.size:
        out.note = "no parameter off the boundary: nothing to check" if not idx.size else "checks switched off"
        return out

    if derivs is not None and np.array_equal(derivs["x"], par) and np.array_equal(derivs["index"], idx):
        g, H, diag = derivs["gradient"], derivs["hessian"], None
        h = derivs["step"]
        out.note = "derivatives from the optimizer's Newton polish at the optimum"
    else:
        f0 = f(par) if fun is None else fun
        z = par[idx]
        # one step per parameter, lme4's 1e-4 (relative beyond 1), kept inside the bounds: a step set
        # by the largest parameter would be most of a small one, and the differences would measure
        # the criterion's curvature across it rather than its slope
        room = np.minimum(z - lower[idx], upper[idx] - z)
        h = np.maximum(np.minimum(1e-4 * np.maximum(1.0, np.abs(z)), room), 1e-8)

        def fsub(v):
            x = par.copy()
            x[idx] = v
            return f(x)

        if len(idx) <= max_params:
            with np.errstate(all="ignore"):
                g, H = deriv12(fsub, z, h, f0)
            diag = None
            steps = f"{h.min():.1e}" if h.min() == h.max() else f"{h.min():.1e} to {h.max():.1e}"
            out.note = f"central differences (step {steps}), {2 * len(idx) ** 2} evaluations"
        else:
            with np.errstate(all="ignore"):
                g, diag = _deriv_diag(fsub, z, h, f0)
            H = None
            out.note = (f"{len(idx)} parameters > max_hessian_params = {max_params}: the Hessian's diagonal "
                        "only (scaled gradient g / sqrt(diag H); the eigenvalue checks are skipped)")
    out.gradient = np.asarray(g, dtype=float)
    out.hessian = None if H is None else np.asarray(H, dtype=float)

    if not np.all(np.isfinite(out.gradient)):
        out.code = -5
        out.messages.append("Gradient contains NAs")
        return out
    if check_grad:
        scgrad = None
        if H is not None and np.all(np.isfinite(H)):
            try:
                L = np.linalg.cholesky(H)  # H = L L' = U'U with U = L'
                scgrad = np.linalg.solve(L.T, out.gradient)  # R's solve(chol(H), g)
            except np.linalg.LinAlgError:
                scgrad = None
        elif diag is not None and np.all(np.isfinite(diag)) and np.all(diag > 0):
            scgrad = out.gradient / np.sqrt(diag)
        if scgrad is None or not np.all(np.isfinite(scgrad)):
            out.code = -1
            out.messages.append("unable to evaluate scaled gradient")
        else:
            out.scaled_gradient = scgrad
            mingrad = np.minimum(np.abs(scgrad), np.abs(out.gradient))
            out.max_grad = float(mingrad.max())
            if out.max_grad > grad_tol:
                out.code = -1
                out.messages.append(f"Model failed to converge with max|grad| = {out.max_grad:.6g} "
                                    f"(tol = {grad_tol:g}, component {int(np.argmax(mingrad)) + 1})")
    if check_hess and not out.singular and H is not None:
        # a central second difference with step h carries rounding noise of ~eps |f| / h^2 per
        # entry; an eigenvalue within (10 times) that of zero is zero, not negative
        f0 = fun if fun is not None else f(par)
        # (per entry H_ij with steps h_i, h_j: the smallest step gives the largest noise)
        noise = 10.0 * np.finfo(float).eps * max(1.0, abs(f0)) / float(np.min(h)) ** 2 if np.isfinite(f0) else 0.0
        code, messages, ev = _check_hess(H, hess_tol, zero_tol=max(hess_tol, noise))
        out.hessian_eigenvalues = ev
        if code != 0:
            out.code = code if out.code == 0 or code < 0 else out.code
            out.messages += messages
    elif check_hess and out.singular:
        out.note += "; singular fit: the Hessian checks are skipped (as lme4)"
    return out


def _check_hess(H, tol, zero_tol=None):
    """lme4's ``checkHess``: ``(code, messages, eigenvalues)``; ``zero_tol`` (default ``tol``) decides
    which eigenvalues are negative or zero."""
    zero_tol = tol if zero_tol is None else zero_tol
    if not np.all(np.isfinite(H)):
        return -6, ["Problem with Hessian check (infinite or missing values?)"], None
    try:
        ev = np.linalg.eigvalsh(H)[::-1]
    except np.linalg.LinAlgError:
        return -6, ["Problem with Hessian check (infinite or missing values?)"], None
    negative = int(np.sum(ev < -zero_tol))
    if negative:
        return -3, [f"Model failed to converge: degenerate  Hessian with {negative} negative eigenvalues"], ev
    try:
        np.linalg.cholesky(H)
        chol_ok = True
    except np.linalg.LinAlgError:
        chol_ok = False
    if np.any(np.abs(ev) < zero_tol) or not chol_ok:
        return -4, ["Hessian is numerically singular: parameters are not uniquely determined"], ev
    code, messages = 0, []
    if ev.max() * tol > 1:
        code = 2
        messages.append("Model is nearly unidentifiable: very large eigenvalue\n - Rescale variables?")
    if ev.min() / ev.max() < tol:
        code = code or 3
        messages.append("Model is nearly unidentifiable: large eigenvalue ratio\n - Rescale variables?")
    return code, messages, ev
