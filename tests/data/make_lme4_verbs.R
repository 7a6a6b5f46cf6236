# Reference numbers for tests/test_verbs.py and tests/test_profile.py (R 4.2.2, lme4 1.1-31,
# broom.mixed 0.2.9.4): the verbs around a fit.
# Run from the repository root: Rscript tests/data/make_lme4_verbs.R
# Writes tests/data/verbs.csv (a small simulated data set, read back with read.csv before fitting)
# and tests/data/lme4_verbs.json.
# Note: fb's criterion is flat in its slope variance, and where lme4 stops depends on bit-level
# noise: this script (which writes the CSV before reading it) and a session that only reads it give
# thetas up to 1.2e-4 apart (relative; deviances equal to 1e-7). The tests allow for it (tests/test_verbs.py).
suppressMessages({library(lme4); library(broom.mixed); library(jsonlite)})

# ---- data: x, z numeric; f a 3-level factor; g (20 levels) crossed with h (8 levels)
set.seed(1212)
ng <- 20; nh <- 8; n <- 240
g <- rep(sprintf("g%02d", 1:ng), each = 12)
h <- sample(sprintf("h%d", 1:nh), n, TRUE)
x <- round(runif(n, 0, 4), 3)
z <- round(rnorm(n), 3)
f <- sample(c("a", "b", "c"), n, TRUE)
gi <- match(g, sprintf("g%02d", 1:ng)); hi <- match(h, sprintf("h%d", 1:nh))
bg <- rnorm(ng, sd = 1); sg <- rnorm(ng, sd = 0.3); ch <- rnorm(nh, sd = 0.7)
y <- round(2 + 0.5 * x + c(a = 0, b = 0.8, c = -0.4)[f] + 0.3 * z + 0.25 * x * (f == "b") +
           bg[gi] + sg[gi] * x + ch[hi] + rnorm(n), 4)
write.csv(data.frame(y = y, x = x, z = z, f = f, g = g, h = h), "tests/data/verbs.csv", row.names = FALSE)
d <- read.csv("tests/data/verbs.csv", stringsAsFactors = TRUE)

sleep <- read.csv("mmbook/data/sleepstudy.csv")
sleep$Subject <- factor(sleep$Subject, levels = unique(sleep$Subject))

num <- function(x) unname(as.numeric(x))
mat <- function(m) { m <- as.matrix(m); list(nrow = nrow(m), ncol = ncol(m), values = num(m)) }  # column-major
tbl <- function(t) { t <- as.data.frame(t); lapply(t, function(col) if (is.factor(col)) as.character(col) else col) }

m1 <- lmer(Reaction ~ Days + (Days | Subject), sleep)            # REML
m0ml <- lmer(Reaction ~ Days + (1 | Subject), sleep, REML = FALSE)
fa <- lmer(y ~ x * f + z + (1 | g) + (1 | h), d)                 # REML, crossed
fb <- lmer(y ~ x + f + (x | g) + (1 | h), d, REML = FALSE)       # ML, slope term first

# ---- predict with re.form
nd <- data.frame(x = c(0.5, 2, 3.5), z = c(0, 1, -1), f = factor(c("a", "b", "c"), levels = c("a", "b", "c")),
                 g = factor(c("g03", "g11", "g20"), levels = levels(d$g)),
                 h = factor(c("h2", "h5", "h8"), levels = levels(d$h)))
predict_ref <- list(
  fa_g = num(predict(fa, re.form = ~(1 | g))),
  fa_h = num(predict(fa, re.form = ~(1 | h))),
  fa_gh = num(predict(fa, re.form = ~(1 | g) + (1 | h))),
  fa_na = num(predict(fa, re.form = NA)),
  fa_0 = num(predict(fa, re.form = ~0)),
  fb_g_int = num(predict(fb, re.form = ~(1 | g))),            # only the intercept part of (x | g)
  fb_g_slope = num(predict(fb, re.form = ~(0 + x | g))),      # only the slope part
  fb_g = num(predict(fb, re.form = ~(x | g))),
  nd = tbl(nd),
  fa_nd_h = num(predict(fa, newdata = nd, re.form = ~(1 | h))),
  fb_nd_g_int = num(predict(fb, newdata = nd, re.form = ~(1 | g))),
  m1_int = num(predict(m1, re.form = ~(1 | Subject)))
)

# ---- simulate (R's RNG: set.seed(seed) inside simulate)
nds <- data.frame(Days = c(0, 3, 9, 2), Subject = factor(c("333", "308", "333", "372"), levels = levels(sleep$Subject)))
simulate_ref <- list(
  m1 = mat(simulate(m1, nsim = 3, seed = 101)),
  m1_use_u = mat(simulate(m1, nsim = 2, seed = 102, use.u = TRUE)),
  fa = mat(simulate(fa, nsim = 2, seed = 103)),
  fa_h = mat(simulate(fa, nsim = 2, seed = 104, re.form = ~(1 | h))),   # condition on h, simulate g
  fa_na = mat(simulate(fa, nsim = 1, seed = 105, re.form = NA)),
  nds = tbl(nds),
  m1_newdata = mat(simulate(m1, nsim = 2, seed = 106, newdata = nds)),
  m1_newdata_use_u = mat(simulate(m1, nsim = 2, seed = 107, newdata = nds, use.u = TRUE))
)

# lme4 1.1-31 draws a simulated term with the theta of the model's first terms when re.form
# conditions on an earlier term (mkNewReTrms sets Lambdat@x <- theta[Lind] with the sub-model's
# Lind). fa: condition on g (first term), simulate h: lme4's draw equals the one made with g's theta.
s_g <- simulate(fa, nsim = 1, seed = 5, re.form = ~(1 | g))[[1]]
set.seed(5)
u <- rnorm(nlevels(d$h)); e <- rnorm(nrow(d))
eta_g <- predict(fa, re.form = ~(1 | g))
Zh <- t(as.matrix(getME(fa, "Zt")))[, nlevels(d$g) + seq_len(nlevels(d$h))]
th <- getME(fa, "theta")
simulate_ref$fa_g_theta_check <- list(
  with_h_theta = max(abs(s_g - (eta_g + sigma(fa) * (Zh %*% (th[["h.(Intercept)"]] * u) + e)))),
  with_g_theta = max(abs(s_g - (eta_g + sigma(fa) * (Zh %*% (th[["g.(Intercept)"]] * u) + e)))))

# ---- bootMer
fx <- function(m) fixef(m)
b1 <- bootMer(m0ml, fx, nsim = 4, seed = 108)
b2 <- bootMer(m0ml, fx, nsim = 3, seed = 109, use.u = TRUE)
boot_ref <- list(t0 = num(b1$t0), t = mat(b1$t), t_use_u = mat(b2$t))

# ---- update
upd <- function(m) list(formula = deparse1(formula(m)), fixef = num(fixef(m)), names = names(fixef(m)),
                        crit = num(if (isREML(m)) REMLcrit(m) else deviance(m)), REML = isREML(m),
                        nobs = nobs(m), theta = num(getME(m, "theta")))
update_ref <- list(
  minus_z = upd(update(fa, . ~ . - z)),
  minus_xf = upd(update(fa, . ~ . - x:f)),
  plus_I = upd(update(fa, . ~ . + I(z^2))),
  minus_h = upd(update(fa, ~ . - (1 | h))),
  swap = upd(update(fa, . ~ . - (1 | g) + (x | g))),
  ml = upd(update(fa, REML = FALSE)),
  no_icpt = upd(update(fa, . ~ . - 1)),
  data = upd(update(fa, data = d[d$h != "h1", ])),
  log_resp = upd(update(fa, log(. + 10) ~ .)),
  m1_minus_days = upd(update(m1, . ~ . - Days))
)

formula_cases <- list(
  c("y ~ a*b + x + (1|g) + (x||h)", ". ~ . - a:b"),
  c("y ~ a*b + x + (1|g) + (x||h)", ". ~ . - x"),
  c("y ~ a*b + x + (1|g) + (x||h)", ". ~ . + z"),
  c("y ~ a*b + x + (1|g) + (x||h)", "~ . + (1|k)"),
  c("y ~ a*b + x + (1|g) + (x||h)", ". ~ . - (1|g)"),
  c("y ~ a*b + x + (1|g) + (x||h)", "log(.) ~ ."),
  c("y ~ x + (1|g)", ". ~ . - 1"),
  c("y ~ 0 + x + (1|g)", ". ~ . + 1"),
  c("y ~ x + (x|g)", ". ~ . - (x|g) + (1|g)"),
  c("y ~ x + (1|g/h)", ". ~ . + w"),
  c("y ~ x + I(x^2) + (1|g)", ". ~ . - I(x^2)"),
  c("y ~ poly(x, 2) + (1|g)", "z ~ ."),
  c("y ~ a:b + x + (1|g)", ". ~ ."),
  c("y ~ x + (1|g)", "~ . - x + w"),
  c("y ~ (a + b + c)^2 + (1|g)", ". ~ . - a:c"),
  c("y ~ a/b + (1|g)", ". ~ . + c"))
update_formula_ref <- lapply(formula_cases, function(cs)
  list(old = cs[1], new = cs[2], result = deparse1(update(as.formula(cs[1]), as.formula(cs[2])))))

# ---- anova on one model, drop1
an <- function(a) c(list(rows = rownames(a)), tbl(a))
anova_ref <- list(fa = an(anova(fa)), fb = an(anova(fb)), m1 = an(anova(m1)))
drop1_ref <- list(fa = an(drop1(fa, test = "Chisq")), fb = an(drop1(fb, test = "Chisq")),
                  m1 = an(drop1(m1, test = "Chisq")), fa_none = an(drop1(fa)))

# ---- confint / profile
ci <- function(x) list(rows = rownames(x), lower = num(x[, 1]), upper = num(x[, 2]), cols = colnames(x))
q <- function(e) suppressMessages(e)
pm1 <- q(profile(m1))
confint_ref <- list(
  m1_default = ci(q(confint(m1))),
  m1_parm_names = ci(q(confint(m1, parm = c(".sig01", "Days")))),
  m1_theta = ci(q(confint(m1, parm = "theta_"))),
  m1_beta = ci(q(confint(m1, parm = "beta_"))),
  m1_index = ci(q(confint(m1, parm = c(1, 5)))),
  m1_newnames = ci(q(confint(m1, oldNames = FALSE))),
  m1_level90 = ci(q(confint(pm1, level = 0.9))),
  m1_wald_beta = ci(confint(m1, method = "Wald", parm = "beta_")),
  fa_default = ci(q(confint(fa))),
  fb_newnames_wald = ci(confint(fb, method = "Wald", oldNames = FALSE))
)
profile_ref <- list(m1 = tbl(as.data.frame(pm1)), m1_dens = tbl(lme4:::dens(pm1)))

# ---- extractors
dev_ref <- list(
  m1_deviance = num(suppressWarnings(deviance(m1))), m1_deviance_ml = num(deviance(m1, REML = FALSE)),
  m1_REMLcrit = num(REMLcrit(m1)), m1_df_residual = num(df.residual(m1)),
  fb_deviance = num(deviance(fb)), fb_df_residual = num(df.residual(fb)),
  fb_REMLcrit = num(REMLcrit(fb)),
  m1_coef_summary = list(rows = rownames(coef(summary(m1))), cols = colnames(coef(summary(m1))), values = mat(coef(summary(m1)))),
  fa_coef_summary = list(rows = rownames(coef(summary(fa))), values = mat(coef(summary(fa))))
)
getme <- function(m) {
  L <- getME(m, "L")
  list(X = mat(getME(m, "X")), Z = mat(getME(m, "Z")), Zt = mat(getME(m, "Zt")), Lambda = mat(getME(m, "Lambda")),
       Lambdat = mat(getME(m, "Lambdat")), L = mat(as(L, "sparseMatrix")), L_perm = num(L@perm),
       RX = mat(getME(m, "RX")), u = num(getME(m, "u")), b = num(getME(m, "b")), theta = num(getME(m, "theta")),
       beta = num(getME(m, "beta")), Lind = num(getME(m, "Lind")), y = num(getME(m, "y")),
       cnms = lapply(getME(m, "cnms"), as.character), cnms_names = names(getME(m, "cnms")),
       flist = lapply(getME(m, "flist"), function(f) as.character(f)), flist_levels = lapply(getME(m, "flist"), levels),
       n = num(getME(m, "n")), p = num(getME(m, "p")), q = num(getME(m, "q")), lower = num(getME(m, "lower")),
       sigma = num(getME(m, "sigma")), REML = num(getME(m, "REML")))
}
getme_ref <- list(m1 = getme(m1), fb = getme(fb))

# ---- broom.mixed
tidy_ref <- list(
  m1 = tbl(tidy(m1)),
  m1_ci = tbl(tidy(m1, conf.int = TRUE)),
  m1_ci_profile = tbl(q(tidy(m1, conf.int = TRUE, conf.method = "profile"))),
  m1_ci90 = tbl(tidy(m1, conf.int = TRUE, conf.level = 0.9)),
  m1_vcov = tbl(tidy(m1, scales = c("vcov", NA))),
  m1_ran_vals = tbl(tidy(m1, effects = "ran_vals", conf.int = TRUE)),
  m1_ran_coefs = tbl(tidy(m1, effects = "ran_coefs")),
  fa = tbl(tidy(fa)),
  fb = tbl(tidy(fb, effects = "fixed")),
  glance_m1 = tbl(glance(m1)),
  glance_fb = tbl(glance(fb))
)

# ---- other designs of tests/data/designs (make_lme4_designs.R): rank deficiency, (x || g), a singular fit
rd <- read.csv("tests/data/designs/rankdef.csv", stringsAsFactors = TRUE)
r <- suppressWarnings(suppressMessages(lmer(y ~ x + x2 + f * h + (1 | g), rd)))
sl <- read.csv("tests/data/designs/slopes.csv", stringsAsFactors = TRUE)
u <- lmer(y ~ x + (x || g), sl)
sing <- read.csv("tests/data/designs/singular.csv", stringsAsFactors = TRUE)
s1 <- suppressMessages(lmer(y ~ x + (1 | g), sing, REML = FALSE))
designs_ref <- list(
  rankdef_fixef = names(fixef(r)), rankdef_anova = an(anova(r)),
  rankdef_drop1 = an(suppressWarnings(suppressMessages(drop1(r)))),
  uncorr_tidy = tbl(tidy(u)), uncorr_formula = deparse1(formula(u)),
  uncorr_update = deparse1(formula(update(u, . ~ . - (0 + x | g)))),
  singular_confint = ci(q(confint(s1))))

out <- list(
  source = paste(R.version.string, "lme4", packageVersion("lme4"), "Matrix", packageVersion("Matrix"),
                 "broom.mixed", packageVersion("broom.mixed"),
                 "- tests/data/make_lme4_verbs.R on tests/data/verbs.csv and mmbook/data/sleepstudy.csv"),
  models = list(m1 = "Reaction ~ Days + (Days | Subject), sleepstudy, REML",
                m0ml = "Reaction ~ Days + (1 | Subject), sleepstudy, ML",
                fa = "y ~ x * f + z + (1 | g) + (1 | h), verbs.csv, REML",
                fb = "y ~ x + f + (x | g) + (1 | h), verbs.csv, ML"),
  predict = predict_ref, simulate = simulate_ref, boot = boot_ref, update = update_ref,
  update_formula = update_formula_ref, anova = anova_ref, drop1 = drop1_ref, confint = confint_ref, profile = profile_ref,
  deviance = dev_ref, getME = getme_ref, tidy = tidy_ref, designs = designs_ref)
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, na = "null", null = "null"), "tests/data/lme4_verbs.json")
