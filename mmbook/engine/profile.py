"""Profile likelihood of a fit's parameters (lme4's ``profile.merMod``).

For one parameter :math:`\\phi_j` held at a value :math:`v`, the ML deviance is
minimised over all the others; the *signed square root* of its rise above the
minimum,

.. math:: \\zeta(v) = \\operatorname{sign}(v - \\hat\\phi_j)
          \\sqrt{\\min_{\\phi_{-j}} d(v, \\phi_{-j}) - d(\\hat\\phi)},

is the profile: a straight line of slope ``1 / se`` when the likelihood is
quadratic, bent where it is not. The confidence interval at level ``1 - a``
is where ``zeta`` crosses ``-/+ z_{1 - a/2}`` (lme4's ``confint.thpr``).

The parameters are lme4's: the standard deviations and correlations of each
random-effects term in ``theta``'s order, ``sigma``, then the fixed effects.
As lme4, a REML fit is profiled on the ML deviance of its ML refit. For a
variance parameter the deviance is minimised over the other variance
parameters (``beta`` is profiled out by the penalized least squares); for a
fixed effect ``beta_j = v`` the penalized residual sum of squares is
``r^2(theta) + (v - beta_j(theta))^2 / [(R_X R_X')^{-1}]_{jj}`` and the
deviance is minimised over ``theta``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.linalg as sla
from scipy import interpolate, optimize, stats

from .optimize import minimize_theta
from .pls import PLS

__all__ = ["Profile", "Profiler", "profile", "param_names", "sdcor", "select_parms", "ci_columns", "check_level",
           "lower_entries", "sdcor_of_cov", "sd_and_corr"]

_FAIL = (np.linalg.LinAlgError, sla.LinAlgError, ValueError, FloatingPointError, ZeroDivisionError)


# ------------------------------------------------------------------ parameters
def lower_entries(q: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of a q x q lower triangle in column-major order.

    The order of a term's ``theta`` (the entries of ``T``) and of its sd/cor
    parameters in lme4: ``(0, 0), (1, 0), ..., (q-1, 0), (1, 1), ...``.
    """
    cols, rows = np.triu_indices(q)
    return rows, cols


def sdcor_of_cov(S: np.ndarray, rows, cols) -> list[float]:
    """One term's sd/cor parameters from its covariance ``S`` (q x q), at the entries ``(rows, cols)``.

    :math:`\\sqrt{S_{rr}}` where ``r == c``, else the correlation
    :math:`S_{rc} / \\sqrt{S_{rr} S_{cc}}` (0 where a standard deviation is 0).
    """
    sd = np.sqrt(np.diag(S))
    return [sd[r] if r == c else (S[r, c] / (sd[r] * sd[c]) if sd[r] * sd[c] > 0 else 0.0)
            for r, c in zip(rows, cols)]


def sd_and_corr(vals, rows, cols, q: int) -> tuple[np.ndarray, np.ndarray]:
    """The inverse of :func:`sdcor_of_cov`: standard deviations, shape (q,), and correlation matrix
    (q, q) from one term's sd/cor parameters ``vals`` at the entries ``(rows, cols)``."""
    sd, R = np.zeros(q), np.eye(q)
    for v, r, c in zip(vals, rows, cols):
        if r == c:
            sd[r] = v
        else:
            R[r, c] = R[c, r] = v
    return sd, R


def _entries(t):
    """Rows and columns of a term's sd/cor parameters: the lower triangle, or one sd for ``T = theta I``."""
    if t.structure == "identity":
        return np.zeros(1, dtype=int), np.zeros(1, dtype=int)
    return lower_entries(t.q)


def param_names(fit, old_names: bool = True) -> list[str]:
    """lme4's names of the variance parameters (``profnames``).

    ``old_names=True`` (lme4's default, ``signames``): ``.sig01``, ``.sig02``,
    ..., ``.sigma``. ``old_names=False``: ``sd_(Intercept)|Subject``,
    ``cor_Days.(Intercept)|Subject``, ..., ``sigma``. A residual correlation
    parameter comes before sigma: ``.phi``/``.rho`` (``phi``/``rho``).
    """
    corr = fit.mf.residual
    extra = [] if corr is None else [("." if old_names else "") + corr.parameter]
    if old_names:
        k = sum(t.ntheta for t in fit.terms)
        return [f".sig{i + 1:02d}" for i in range(k)] + extra + [".sigma"]
    out = []
    for t in fit.terms:
        for r, c in zip(*_entries(t)):
            if r == c:
                out.append(f"sd_{t.cnames[r] if t.structure != 'identity' else t.bar.text.split(' |')[0]}|{t.group}")
            else:
                out.append(f"cor_{t.cnames[r]}.{t.cnames[c]}|{t.group}")
    return out + extra + ["sigma"]


def _phi(terms, theta, sigma, offsets, corr=None) -> np.ndarray:
    """sd/cor parameters (then a residual correlation, then sigma) from ``theta`` and ``sigma``."""
    out = []
    for k, t in enumerate(terms):
        T = t.T(theta[offsets[k]:offsets[k + 1]])
        out += sdcor_of_cov(sigma ** 2 * (T @ T.T), *_entries(t))
    if corr is not None:
        out.append(corr.value(float(theta[offsets[len(terms)]])))
    out.append(sigma)
    return np.array(out)


def sdcor(fit) -> np.ndarray:
    """Variance parameters on lme4's sd/cor scale, in ``theta``'s order, then sigma."""
    return _phi(fit.terms, fit.opt.theta, fit.sigma, fit.pls.theta_offsets, fit.mf.residual)


def _theta_sigma(terms, phi: np.ndarray, corr=None):
    """Map sd/cor parameters (a residual correlation, and sigma, last) to ``(theta, sigma)``; None if invalid."""
    sigma = phi[-1]
    if not sigma > 0:
        return None
    theta, pos = [], 0
    for t in terms:
        rows, cols = lower_entries(t.q)
        vals = phi[pos:pos + t.ntheta]
        pos += t.ntheta
        if t.structure == "identity":
            if vals[0] < 0:
                return None
            theta.append(vals[0] / sigma)
            continue
        sd, R = sd_and_corr(vals, rows, cols, t.q)
        if np.any(sd < 0):
            return None
        Lr = _psd_cholesky(R)
        if Lr is None:
            return None
        T = (sd / sigma)[:, None] * Lr
        theta.extend(T[rows, cols])
    if corr is not None:
        lo, hi = corr.bounds
        if not lo < phi[pos] < hi:
            return None
        theta.append(corr.eta_of(float(phi[pos])))
    return np.array(theta), sigma


def _psd_cholesky(R: np.ndarray, tol: float = 1e-12):
    """Lower Cholesky factor of a correlation matrix that may be singular (a correlation of -/+1).

    Column by column; a pivot that is 0 (to ``tol``) leaves its column below 0. None if ``R``
    is not positive semi-definite. ``R`` is a term's q x q correlation matrix (q is small).
    """
    q = len(R)
    L = np.zeros_like(R)
    for j in range(q):
        d = R[j, j] - L[j, :j] @ L[j, :j]
        if d < -tol:
            return None
        if d <= tol:
            rest = R[j + 1:, j] - L[j + 1:, :j] @ L[j, :j]
            if np.any(np.abs(rest) > 1e-8):
                return None
            continue
        L[j, j] = np.sqrt(d)
        L[j + 1:, j] = (R[j + 1:, j] - L[j + 1:, :j] @ L[j, :j]) / L[j, j]
    return L


def select_parms(parm, names: list[str], nvar: int) -> list[int]:
    """Positions of the parameters ``parm`` selects (lme4's ``get.which``).

    Parameters
    ----------
    parm : None, str, int or a list of them
        None: all. ``"theta_"``: the variance parameters; ``"beta_"``: the
        fixed effects; a name (``".sig01"``, ``"Days"``); an integer position
        (0-based, in the order of ``names``). Names select in the parameters'
        order (as lme4); positions in the order given.

    Raises
    ------
    KeyError
        A name that is not a parameter; TypeError for other types.
    """
    if parm is None:
        return list(range(len(names)))
    items = [parm] if isinstance(parm, (str, int, np.integer)) else list(parm)
    if not items:
        raise ValueError("parm selects no parameter")
    if all(isinstance(p, (int, np.integer)) and not isinstance(p, bool) for p in items):
        bad = [p for p in items if not -len(names) <= p < len(names)]
        if bad:
            raise KeyError(f"parm position {bad[0]} out of range: there are {len(names)} parameters "
                           f"({', '.join(names)}); positions are 0-based")
        return [int(p) % len(names) for p in items]
    if not all(isinstance(p, str) for p in items):
        raise TypeError("parm must be parameter names (or 'theta_', 'beta_') or 0-based positions, not a mix")
    chosen = set()
    for p in items:
        if p == "theta_":
            chosen.update(range(nvar))
        elif p == "beta_":
            chosen.update(range(nvar, len(names)))
        elif p in names:
            chosen.add(names.index(p))
        else:
            raise KeyError(f"parm {p!r} is not a parameter of this model; its parameters are "
                           f"{', '.join(names)} (or 'theta_', 'beta_')")
    return sorted(chosen)


# -------------------------------------------------------------------- profiler
class Profiler:
    """The profiled ML deviance of a fit as a function of one parameter at a time.

    Parameters
    ----------
    fit : LmerFit
        A REML fit is refitted by ML first (as lme4's ``profile``).

    Attributes
    ----------
    mfit : LmerFit
        The ML fit that is profiled.
    estimates : ndarray
        Its parameters: sd/cor, sigma, then beta.
    nvar : int
        Number of variance parameters (sigma included).
    """

    def __init__(self, fit):
        self.mfit = mfit = fit.refit_ml(warn=False) if fit.REML else fit
        self.pls = PLS(mfit.mf, REML=False)
        self.n = mfit.nobs
        self.terms = mfit.terms
        self.corr = mfit.mf.residual
        self.offsets = self.pls.theta_offsets
        self.dev_min = mfit.objective
        phi = sdcor(mfit)
        self.nvar = len(phi)
        self.p = mfit.mf.p
        self.estimates = np.concatenate([phi, mfit.beta])
        bounds = []
        for t in self.terms:
            for r, c in zip(*_entries(t)):
                bounds.append((0.0, np.inf) if r == c else (-1.0, 1.0))
        if self.corr is not None:
            bounds.append(self.corr.bounds)
        bounds.append((1e-12 * max(phi[-1], 1.0), np.inf))
        bounds += [(-np.inf, np.inf)] * self.p
        self.bounds = np.array(bounds, dtype=float)
        self.se_beta = np.sqrt(np.diag(mfit.vcov.to_numpy()))

    # ------------------------------------------------------------ deviances
    def _dev_phi(self, phi):
        ts = _theta_sigma(self.terms, phi, self.corr)
        if ts is None:
            return np.inf
        theta, sigma = ts
        F = self._factor(theta)
        if F is None:
            return np.inf
        # weights included; correlated residuals add log|R| (the Jacobian of the whitening)
        return self.pls.response.deviance_at(F.logdet_L, F.pwrss, sigma) + self.pls.logdet_R

    def _beta_pieces(self, theta):
        s = self.pls.solve(theta)
        RXinv = sla.solve_triangular(s.RX, np.eye(self.p), lower=True)
        V = RXinv.T @ RXinv  # (R_X R_X')^{-1}
        return s, V

    def _factor(self, theta):
        """The factor at ``theta`` (without the parts the criterion does not need); None where it fails."""
        try:
            F = self.pls.factor(theta, full=False)
        except _FAIL:
            return None
        return F if F.is_valid() else None

    def _dev_beta(self, theta, j, v):
        F = self._factor(theta)
        if F is None:
            return np.inf
        p, RX = self.p, F.RX
        lxy = F.Ld[F.Qr + p, F.Qr:F.Qr + p]
        beta = sla.solve_triangular(RX, lxy, trans="T", lower=True, check_finite=False)
        e = np.zeros(p)
        e[j] = 1.0
        w = sla.solve_triangular(RX, e, lower=True, check_finite=False)  # V_jj = |R_X^{-1} e_j|^2
        r2 = F.pwrss + (v - beta[j]) ** 2 / float(w @ w)
        return self.pls.response.objective(F.logdet_L, 0.0, r2) + self.pls.logdet_R  # ML, profiled over sigma

    # --------------------------------------------------------------- points
    def point(self, j: int, v: float, start=None):
        """Profile at ``phi_j = v``: ``(zeta, parameters at the conditional optimum, start for the next point)``."""
        est = self.estimates
        if j < self.nvar:
            phi0 = est[:self.nvar].copy() if start is None else np.array(start, dtype=float)
            free = np.array([i for i in range(self.nvar) if i != j], dtype=int)
            phi0[j] = v
            if free.size:
                lo, hi = self.bounds[free, 0], self.bounds[free, 1]

                def f(z):
                    phi = phi0.copy()
                    phi[free] = z
                    return self._dev_phi(phi)

                res = minimize_theta(f, np.clip(phi0[free], lo, hi), lo, upper=hi, polish=False)
                phi0[free] = res.theta
                dev = res.fun
            else:
                dev = self._dev_phi(phi0)
            ts = _theta_sigma(self.terms, phi0, self.corr)
            beta = self.pls.solve(ts[0]).beta if ts is not None and np.isfinite(dev) else np.full(self.p, np.nan)
            params = np.concatenate([phi0, beta])
            nxt = phi0
        else:
            jb = j - self.nvar
            theta0 = self.mfit.opt.theta if start is None else np.asarray(start, dtype=float)
            res = minimize_theta(lambda th: self._dev_beta(th, jb, v), theta0, self.pls.lower, polish=False)
            dev = res.fun
            s, V = self._beta_pieces(res.theta)
            beta = s.beta + V[:, jb] / V[jb, jb] * (v - s.beta[jb])
            beta[jb] = v
            r2 = s.pwrss + (v - s.beta[jb]) ** 2 / V[jb, jb]
            sigma = self.pls.response.sigma(r2)
            params = np.concatenate([_phi(self.terms, res.theta, sigma, self.offsets, self.corr), beta])
            nxt = res.theta
        zeta = np.sign(v - est[j]) * np.sqrt(max(dev - self.dev_min, 0.0)) if np.isfinite(dev) else np.nan
        return zeta, params, nxt

    def zeta(self, j: int, v: float) -> float:
        """``zeta`` of parameter ``j`` at ``v`` (an independent optimisation from the estimates)."""
        return self.point(j, v)[0]

    # ----------------------------------------------------------------- walks
    def walk(self, j: int, side: int, target: float, delta: float, maxpts: int = 100, maxmult: float = 10.0):
        """Points from the estimate outwards until ``|zeta| >= target`` or a bound (lme4's stepping).

        Steps aim at a change of ``delta`` in ``zeta``, extrapolating from the
        last two points; a step grows by at most ``maxmult``.

        Returns
        -------
        list of (value, zeta, parameters, start)
        """
        est = self.estimates[j]
        lo, hi = self.bounds[j]
        pts = [(est, 0.0, self.estimates.copy(), None)]
        if j < self.nvar:
            step = 0.05 * abs(est) if est != 0 else 0.01 * max(self.estimates[self.nvar - 1], 1e-3)
            if j == self.nvar - 1 or est == 0:
                step = max(step, 1e-3 * max(abs(self.estimates[self.nvar - 1]), 1e-8))
        else:
            step = delta * self.se_beta[j - self.nvar]
        start = None
        for _ in range(maxpts):
            v = pts[-1][0] + side * step
            at_bound = False
            if v <= lo:
                v, at_bound = lo, True
            elif v >= hi:
                v, at_bound = hi, True
            z, params, start = self.point(j, v, start)
            if not np.isfinite(z):
                break
            pts.append((v, z, params, start))
            if side * z >= target or at_bound:
                break
            (v0, z0), (v1, z1) = pts[-2][:2], pts[-1][:2]
            slope = (z1 - z0) / (v1 - v0) if v1 != v0 else 0.0
            new = delta / abs(slope) if slope != 0 and np.isfinite(slope) else 2 * step
            step = float(np.clip(new, step / maxmult, step * maxmult))
        return pts

    def limit(self, j: int, side: int, zcrit: float, pts=None) -> float:
        """Where ``zeta`` of parameter ``j`` crosses ``side * zcrit`` (a bound if it never does; nan if it fails).

        Without profile points ``pts``, the walk aims straight at the crossing.
        """
        pts = pts if pts is not None else self.walk(j, side, zcrit, delta=zcrit)
        pts = sorted(pts, key=lambda p: side * p[0])
        for a, b in zip(pts[:-1], pts[1:]):
            if side * a[1] <= zcrit <= side * b[1]:
                warm = {"start": a[3]}  # each evaluation starts where the previous one ended

                def g(x):
                    for end in (a, b):  # the ends are known: no second, differently started optimisation
                        if x == end[0]:
                            return end[1] - side * zcrit
                    z, _, warm["start"] = self.point(j, x, warm["start"])
                    return z - side * zcrit

                if b[1] == side * zcrit:
                    return b[0]
                return optimize.brentq(g, min(a[0], b[0]), max(a[0], b[0]), xtol=1e-9, rtol=1e-12)
        last = pts[-1][0]
        lo, hi = self.bounds[j]
        if last in (lo, hi):
            return 0.0 if last == lo and lo < 1e-6 and j < self.nvar else last
        return np.nan


# ---------------------------------------------------------------------- result
class Profile:
    """A profile of a fit's parameters: lme4's ``profile(fit)`` (class ``thpr``).

    Attributes
    ----------
    frame : DataFrame
        lme4's ``as.data.frame(profile(fit))``: one row per profile point,
        columns ``.zeta``, every parameter (its value at the conditional
        optimum), ``.par`` (the parameter held fixed, categorical) and
        ``.focal`` (its value).
    estimates : Series
        The parameters at the ML optimum.
    names : list of str
        The profiled parameters, in order.
    cutoff : float
        ``sqrt(chi2_{1 - alphamax}(number of parameters))``: the profile extends
        at least this far in ``|zeta|`` on each side (unless a bound stops it).
    """

    def __init__(self, profiler: Profiler, which: list[int], names: list[str], frame: pd.DataFrame,
                 points: dict, cutoff: float):
        self._profiler = profiler
        self._which = which
        self._all_names = names
        self._points = points
        self.names = [names[j] for j in which]
        self.frame = frame
        self.cutoff = cutoff
        self.estimates = pd.Series(profiler.estimates, index=names, name="estimate")

    def __repr__(self) -> str:
        return f"<Profile of {len(self.names)} parameters ({', '.join(self.names)}), {len(self.frame)} points>"

    def _index(self, parm) -> int:
        if parm not in self.names:
            raise KeyError(f"{parm!r} was not profiled; the profile has {', '.join(self.names)}")
        return self._all_names.index(parm)

    def zeta(self, parm: str, values) -> np.ndarray:
        """The exact profile ``zeta`` of ``parm`` at ``values`` (each an independent optimisation)."""
        j = self._index(parm)
        return np.array([self._profiler.zeta(j, float(v)) for v in np.atleast_1d(values)])

    def confint(self, parm=None, level: float = 0.95) -> pd.DataFrame:
        """Profile intervals (lme4's ``confint(profile(fit))``): where ``zeta`` crosses ``-/+ z``.

        The crossing is solved exactly (root of the profile between the two
        profile points that bracket it), not read from a spline. A bound that
        the profile reaches first (0 for a standard deviation) is the limit.
        """
        check_level(level)
        sel = self.names if parm is None else [self._all_names[j] for j in
                                                select_parms(parm, self._all_names, self._profiler.nvar)]
        zcrit = stats.norm.ppf(0.5 + level / 2)
        rows = []
        for nm in sel:
            j = self._index(nm)
            row = []
            for side in (-1, 1):
                pts = self._points[(j, side)]
                if max(side * p[1] for p in pts) < zcrit and pts[-1][0] not in self._profiler.bounds[j]:
                    pts = self._profiler.walk(j, side, zcrit, delta=self.cutoff / 8)
                    self._points[(j, side)] = pts
                row.append(self._profiler.limit(j, side, zcrit, pts))
            rows.append(row)
        return pd.DataFrame(rows, index=sel, columns=ci_columns(level))

    def splines(self, parm: str):
        """``zeta`` as a natural cubic spline of the parameter (lme4's forward spline) and its range."""
        sub = self.frame[self.frame[".par"] == parm]
        x, z = sub[".focal"].to_numpy(), sub[".zeta"].to_numpy()
        ok = np.isfinite(z)
        x, z = x[ok], z[ok]
        order = np.argsort(x)
        x, z = x[order], z[order]
        keep = np.concatenate([[True], np.diff(x) > 0])
        return interpolate.CubicSpline(x[keep], z[keep], bc_type="natural"), (x[keep][0], x[keep][-1])

    def density(self, npts: int = 201, upper: float = 0.999) -> pd.DataFrame:
        """Profile-based densities of the parameters (lme4's ``densityplot(profile(fit))`` data).

        On ``npts`` values from where the spline of ``zeta`` is
        ``-z_upper`` to where it is ``+z_upper`` (or the end of the profile),
        ``density = phi(zeta(v)) zeta'(v)``: the density the profile implies
        if ``zeta`` were exactly normal.

        Returns
        -------
        DataFrame with columns ``pval``, ``pnm`` (parameter), ``density``.
        """
        zq = stats.norm.ppf(upper)
        out = []
        for nm in self.names:
            spl, (a, b) = self.splines(nm)
            ends = []
            for target, edge in ((-zq, a), (zq, b)):
                fa, fb = spl(a) - target, spl(b) - target
                if fa * fb < 0:
                    ends.append(optimize.brentq(lambda x: spl(x) - target, a, b))
                else:
                    ends.append(edge)
            v = np.linspace(ends[0], ends[1], npts)
            out.append(pd.DataFrame({"pval": v, "pnm": nm, "density": stats.norm.pdf(spl(v)) * spl(v, 1)}))
        df = pd.concat(out, ignore_index=True)
        df["pnm"] = pd.Categorical(df["pnm"], categories=self.names)
        return df


def check_level(level):
    """Raise ValueError unless ``level`` is a number in (0, 1)."""
    if isinstance(level, bool) or not (isinstance(level, (float, int, np.floating)) and 0 < level < 1):
        raise ValueError(f"level must be a number between 0 and 1, got {level!r}")


def ci_columns(level: float) -> list[str]:
    """R's ``format.perc``: ``"2.5 %"``, ``"97.5 %"``."""
    a = (1 - level) / 2
    return [f"{100 * a:.3g} %", f"{100 * (1 - a):.3g} %"]


def profile(fit, which=None, alphamax: float = 0.01, delta_cutoff: float = 1 / 8, maxpts: int = 100,
            old_names: bool = True) -> Profile:
    """Profile the ML deviance over each parameter (lme4's ``profile.merMod``).

    Parameters
    ----------
    fit : LmerFit
        A REML fit is refitted by ML first, as lme4 does.
    which : None, str, int or list
        Parameters to profile (see :func:`select_parms`): names, ``"theta_"``,
        ``"beta_"``, or 0-based positions; default all.
    alphamax : float
        The profile extends on each side until ``|zeta|`` exceeds
        ``sqrt(chi2_{1 - alphamax}(k))``, ``k`` the number of parameters
        (lme4's cutoff), or a bound stops it.
    delta_cutoff : float
        Target step in ``zeta`` between points, as a fraction of the cutoff.
    maxpts : int
        At most this many points on each side.
    old_names : bool
        lme4's ``signames``: ``.sig01``-style names (True) or
        ``sd_(Intercept)|Subject``-style (False).

    Returns
    -------
    Profile
    """
    if not 0 < alphamax < 1:
        raise ValueError(f"alphamax must be between 0 and 1, got {alphamax!r}")
    prof = Profiler(fit)
    names = param_names(prof.mfit, old_names) + list(prof.mfit.fixef.index)
    which = select_parms(which, names, prof.nvar)
    cutoff = float(np.sqrt(stats.chi2.ppf(1 - alphamax, len(names))))
    delta = cutoff * delta_cutoff
    rows, points = [], {}
    for j in which:
        block = [(prof.estimates[j], 0.0, prof.estimates)]
        for side in (-1, 1):
            pts = prof.walk(j, side, cutoff, delta, maxpts=maxpts)
            points[(j, side)] = pts
            block += [(v, z, par) for v, z, par, _ in pts[1:]]
        block.sort(key=lambda r: r[0])
        for v, z, par in block:
            rows.append([z, *par, names[j], v])
    frame = pd.DataFrame(rows, columns=[".zeta", *names, ".par", ".focal"])
    frame[".par"] = pd.Categorical(frame[".par"], categories=[names[j] for j in which])
    return Profile(prof, which, names, frame, points, cutoff)
