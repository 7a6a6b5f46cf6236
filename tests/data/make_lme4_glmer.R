# Reference numbers for tests/test_glmm_*.py (R 4.2.2, lme4 1.1-31, Matrix 1.5-3).
# Run from the repository root:  Rscript tests/data/make_lme4_glmer.R
#
# Writes tests/data/glmm/*.csv (the data, read back with read.csv before fitting, so R fits
# exactly the numbers the tests read) and tests/data/lme4_glmer.json.
#
# Every model is fitted three times:
#   default  glmer() as a user calls it (lme4's default glmerControl());
#   tight    two tight optimizers, and the better optimum is kept:
#              bobyqa   (rhobeg = 0.02, rhoend = 1e-10, maxfun = 1e5) and
#              nloptwrap (BOBYQA, xtol_abs = ftol_abs = 1e-12, xtol_rel = ftol_rel = 0, maxeval = 1e5),
#            both with tolPwrss = 1e-14 (PIRLS iterated to a 1e-14 relative change of the
#            penalized deviance). lme4 evaluates the Laplace deviance with the Cholesky factor
#            of the next-to-last PIRLS iteration, so its value carries an error of the order of
#            the last PIRLS step: at tolPwrss = 1e-12 grouseticks' logLik is still 2.3e-5 low
#            (-890.27135349 against -890.27133009 at 1e-13 and 1e-14).
#            `tight_spread` is |logLik(bobyqa) - logLik(nloptwrap)|, a measure of how well the
#            optimum is determined by the optimizers.
# All extracted numbers (fixef, theta, vcov, ranef, ...) come from the tight fit.
suppressMessages(library(lme4))
set.seed(20240611)
dir <- "tests/data/glmm"
dir.create(dir, showWarnings = FALSE, recursive = TRUE)

roundtrip <- function(d, name) {
  write.csv(d, file.path(dir, paste0(name, ".csv")), row.names = FALSE)
  read.csv(file.path(dir, paste0(name, ".csv")), stringsAsFactors = TRUE)
}

# ------------------------------------------------------------------ data
cb <- roundtrip(cbpp, "cbpp")
cb$herd <- factor(cb$herd); cb$period <- factor(cb$period)

gt <- grouseticks[, c("INDEX", "TICKS", "BROOD", "HEIGHT", "YEAR", "LOCATION")]
gt <- roundtrip(gt, "grouseticks")
for (v in c("INDEX", "BROOD", "YEAR", "LOCATION")) gt[[v]] <- factor(gt[[v]])
gt$cHEIGHT <- gt$HEIGHT - mean(gt$HEIGHT)

# crossed binary: 60 subjects x 30 items, about 70 % of the pairs observed
ns <- 60; ni <- 30
cr <- expand.grid(subj = sprintf("s%02d", 1:ns), item = sprintf("i%02d", 1:ni))
cr <- cr[runif(nrow(cr)) < 0.7, ]
cr$x <- round(rnorm(nrow(cr)), 4)
cr$cond <- ifelse(as.integer(substr(cr$item, 2, 3)) %% 2 == 0, "b", "a")
bs <- rnorm(ns, 0, 1.0); bi <- rnorm(ni, 0, 0.6)
eta <- -0.3 + 0.8 * cr$x + 0.5 * (cr$cond == "b") + bs[as.integer(cr$subj)] + bi[as.integer(cr$item)]
cr$y <- rbinom(nrow(cr), 1, plogis(eta))
cr <- roundtrip(cr, "crossed_binary")

# random slopes: 50 groups of 10 to 30 binary responses, (x | g)
ng <- 50
sizes <- sample(10:30, ng, replace = TRUE)
sl <- data.frame(g = rep(sprintf("g%02d", 1:ng), sizes))
sl$x <- round(runif(nrow(sl), -1, 1), 4)
b0 <- rnorm(ng, 0, 1.0); b1 <- 0.3 * b0 + rnorm(ng, 0, 0.6)
gi <- as.integer(factor(sl$g))
sl$y <- rbinom(nrow(sl), 1, plogis(0.2 + 1.1 * sl$x + b0[gi] + b1[gi] * sl$x))
sl$yf <- ifelse(sl$y == 1, "yes", "no")
sl <- roundtrip(sl, "slopes_binary")

# Poisson counts with an exposure: 40 groups of 8
np_ <- 40
po <- data.frame(g = rep(sprintf("h%02d", 1:np_), each = 8))
po$x <- round(rnorm(nrow(po)), 4)
po$t <- round(runif(nrow(po), 0.5, 4), 3)
bp <- rnorm(np_, 0, 0.5)
po$y <- rpois(nrow(po), po$t * exp(0.4 + 0.3 * po$x + bp[as.integer(factor(po$g))]))
po <- roundtrip(po, "poisson_offset")

# a binary design whose random-intercept variance is estimated as zero (a singular fit)
# (no group effect is simulated; the first seed from 1 whose default fit is singular is used)
for (k in 1:100) {
  set.seed(k)
  sg <- data.frame(g = rep(sprintf("c%02d", 1:12), each = 15))
  sg$x <- round(rnorm(nrow(sg)), 4)
  sg$y <- rbinom(nrow(sg), 1, plogis(-0.2 + 0.7 * sg$x))
  if (isSingular(suppressMessages(glmer(y ~ x + (1 | g), data = sg, family = binomial)))) break
}
sg <- roundtrip(sg, "singular_binary")

# ------------------------------------------------------------------ fits
tight_ctrl <- list(
  bobyqa = glmerControl(optimizer = "bobyqa", tolPwrss = 1e-14,
                        optCtrl = list(rhobeg = 0.02, rhoend = 1e-10, maxfun = 1e5)),
  nloptwrap = glmerControl(optimizer = "nloptwrap", tolPwrss = 1e-14,
                           optCtrl = list(algorithm = "NLOPT_LN_BOBYQA", xtol_abs = 1e-12,
                                          ftol_abs = 1e-12, xtol_rel = 0, ftol_rel = 0,
                                          maxeval = 1e5)))
quiet <- function(expr) suppressWarnings(suppressMessages(expr))
num <- function(x) unname(as.numeric(x))
mat <- function(m) lapply(seq_len(nrow(m)), function(i) num(m[i, ]))

fit_all <- function(call_fun) {
  default <- quiet(call_fun(glmerControl()))
  tb <- quiet(call_fun(tight_ctrl$bobyqa))
  tn <- quiet(call_fun(tight_ctrl$nloptwrap))
  best <- if (logLik(tb) >= logLik(tn)) tb else tn
  list(default = default, tight = best,
       spread = abs(as.numeric(logLik(tb)) - as.numeric(logLik(tn))),
       which = if (logLik(tb) >= logLik(tn)) "bobyqa" else "nloptwrap")
}

describe <- function(f, extra = list()) {
  m <- f$tight
  re <- ranef(m, condVar = TRUE)
  ranef_out <- lapply(names(re), function(g) {
    r <- re[[g]]
    pv <- attr(r, "postVar")
    list(group = g, levels = rownames(r), columns = colnames(r),
         values = lapply(seq_len(ncol(r)), function(j) num(r[[j]])),
         condvar = num(pv))
  })
  dev_agq <- m@devcomp$cmp[["dev"]]
  sat <- m@resp$aic() - sum(m@resp$devResid())
  c(list(
    nAGQ = m@devcomp$dims[["nAGQ"]],
    family = family(m)$family, link = family(m)$link,
    logLik = as.numeric(logLik(m)),
    logLik_default = as.numeric(logLik(f$default)),
    tight_spread = f$spread, tight_optimizer = f$which,
    saturated_constant = sat,
    AIC = AIC(m), BIC = BIC(m), deviance = deviance(m), df_resid = df.residual(m),
    nobs = nobs(m), npar = attr(logLik(m), "df"),
    fixef_names = names(fixef(m)), fixef = num(fixef(m)),
    fixef_default = num(fixef(f$default)),
    theta = num(getME(m, "theta")), theta_default = num(getME(f$default, "theta")),
    vcov = mat(as.matrix(vcov(m))),
    vcov_rx = mat(as.matrix(quiet(vcov(m, use.hessian = FALSE)))),
    varcorr = as.data.frame(VarCorr(m))[, c("grp", "var1", "var2", "vcov", "sdcor")],
    ranef = ranef_out,
    fitted = num(fitted(m)),
    eta = num(predict(m, type = "link")),
    eta_fixed = num(predict(m, type = "link", re.form = NA)),
    resid_deviance = num(residuals(m, type = "deviance")),
    resid_pearson = num(residuals(m, type = "pearson")),
    resid_response = num(residuals(m, type = "response")),
    resid_working = num(residuals(m, type = "working")),
    is_singular = isSingular(m),
    summary = capture.output(print(summary(m)))
  ), extra)
}

out <- list(source = paste(R.version.string, "lme4", packageVersion("lme4"), "Matrix",
                           packageVersion("Matrix"), "- tests/data/make_lme4_glmer.R"),
            tight_control = "see the header of tests/data/make_lme4_glmer.R",
            cases = list())

f <- fit_all(function(ctrl) glmer(cbind(incidence, size - incidence) ~ period + (1 | herd),
                                  data = cb, family = binomial, control = ctrl))
m <- f$tight
nd <- data.frame(period = factor(c("1", "3", "4"), levels = levels(cb$period)),
                 herd = factor(c("1", "7", "99")))
# describe() first: profile() (inside confint) re-evaluates the deviance on the fitted model's
# reference-class predictor and leaves u, and with it ranef(), changed
out$cases$cbpp_laplace <- describe(f, list(
  formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)", data = "cbpp",
  predict_newdata = list(period = as.character(nd$period), herd = as.character(nd$herd),
                         link = num(predict(m, nd, allow.new.levels = TRUE)),
                         response = num(predict(m, nd, allow.new.levels = TRUE, type = "response")),
                         fixed = num(predict(m, nd, re.form = NA)))))
m0 <- quiet(glmer(cbind(incidence, size - incidence) ~ 1 + (1 | herd), data = cb,
                  family = binomial, control = tight_ctrl$bobyqa))
a <- anova(m0, m)
ci_wald <- quiet(confint(m, method = "Wald", oldNames = TRUE))
ci_prof <- quiet(confint(m, method = "profile", oldNames = TRUE))
out$cases$cbpp_laplace$anova <- list(npar = num(a$npar), AIC = num(a$AIC), BIC = num(a$BIC),
                                     logLik = num(a$logLik), deviance = num(a$deviance),
                                     Chisq = num(a$Chisq)[2], Df = num(a$Df)[2], p = num(a[["Pr(>Chisq)"]])[2])
out$cases$cbpp_laplace$confint_profile <- list(rows = rownames(ci_prof), lower = num(ci_prof[, 1]),
                                               upper = num(ci_prof[, 2]))
out$cases$cbpp_laplace$confint_wald <- list(rows = rownames(ci_wald), lower = num(ci_wald[, 1]),
                                            upper = num(ci_wald[, 2]))

f <- fit_all(function(ctrl) glmer(cbind(incidence, size - incidence) ~ period + (1 | herd),
                                  data = cb, family = binomial, control = ctrl, nAGQ = 25))
out$cases$cbpp_agq25 <- describe(f, list(
  formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)", data = "cbpp"))

f <- fit_all(function(ctrl) glmer(cbind(incidence, size - incidence) ~ period + (1 | herd),
                                  data = cb, family = binomial, control = ctrl, nAGQ = 0))
out$cases$cbpp_nagq0 <- describe(f, list(
  formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)", data = "cbpp"))

f <- fit_all(function(ctrl) glmer(incidence / size ~ period + (1 | herd), weights = size,
                                  data = cb, family = binomial, control = ctrl))
out$cases$cbpp_weights <- describe(f, list(formula = "incidence / size ~ period + (1 | herd)",
                                           data = "cbpp", weights = "size"))

f <- fit_all(function(ctrl) glmer(cbind(incidence, size - incidence) ~ period + (1 | herd),
                                  data = cb, family = binomial(link = "probit"), control = ctrl))
out$cases$cbpp_probit <- describe(f, list(
  formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)", data = "cbpp"))

f <- fit_all(function(ctrl) glmer(cbind(incidence, size - incidence) ~ period + (1 | herd),
                                  data = cb, family = binomial(link = "cloglog"), control = ctrl))
out$cases$cbpp_cloglog <- describe(f, list(
  formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)", data = "cbpp"))

f <- fit_all(function(ctrl) glmer(TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION),
                                  data = gt, family = poisson, control = ctrl))
out$cases$grouseticks <- describe(f, list(
  formula = "TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)",
  data = "grouseticks", note = "cHEIGHT = HEIGHT - mean(HEIGHT)"))

f <- fit_all(function(ctrl) glmer(TICKS ~ YEAR + cHEIGHT + (1 | LOCATION),
                                  data = gt, family = poisson, control = ctrl, nAGQ = 9))
out$cases$grouseticks_agq9 <- describe(f, list(
  formula = "TICKS ~ YEAR + cHEIGHT + (1 | LOCATION)", data = "grouseticks",
  note = "cHEIGHT = HEIGHT - mean(HEIGHT)"))

f <- fit_all(function(ctrl) glmer(y ~ x + cond + (1 | subj) + (1 | item), data = cr,
                                  family = binomial, control = ctrl))
out$cases$crossed_binary <- describe(f, list(formula = "y ~ x + cond + (1 | subj) + (1 | item)",
                                             data = "crossed_binary"))

f <- fit_all(function(ctrl) glmer(y ~ x + (x | g), data = sl, family = binomial, control = ctrl))
m <- f$tight
nd <- data.frame(x = c(-0.5, 0, 0.8), g = c("g01", "g17", "new"))
out$cases$slopes_binary <- describe(f, list(
  formula = "y ~ x + (x | g)", data = "slopes_binary",
  predict_newdata = list(x = nd$x, g = nd$g,
                         link = num(predict(m, nd, allow.new.levels = TRUE)),
                         response = num(predict(m, nd, allow.new.levels = TRUE, type = "response")),
                         fixed = num(predict(m, nd, re.form = NA)))))

f <- fit_all(function(ctrl) glmer(yf ~ x + (x | g), data = sl, family = binomial, control = ctrl))
out$cases$slopes_factor <- describe(f, list(formula = "yf ~ x + (x | g)", data = "slopes_binary"))

f <- fit_all(function(ctrl) glmer(y ~ x + (1 | g), offset = log(t), data = po, family = poisson,
                                  control = ctrl))
m <- f$tight
nd <- data.frame(x = c(0, 1), g = c("h01", "h40"), t = c(1, 2))
out$cases$poisson_offset <- describe(f, list(
  formula = "y ~ x + (1 | g)", data = "poisson_offset", offset = "log(t)",
  predict_newdata = list(x = nd$x, g = nd$g, t = nd$t,
                         link = num(predict(m, nd, newparams = NULL, allow.new.levels = TRUE)),
                         note = "lme4 predict with newdata and an offset argument: offset not applied"))) 

f <- fit_all(function(ctrl) glmer(y ~ x + offset(log(t)) + (1 | g), data = po, family = poisson,
                                  control = ctrl))
m <- f$tight
out$cases$poisson_offset_formula <- describe(f, list(
  formula = "y ~ x + offset(log(t)) + (1 | g)", data = "poisson_offset",
  predict_newdata = list(x = nd$x, g = nd$g, t = nd$t,
                         link = num(predict(m, nd, allow.new.levels = TRUE)),
                         response = num(predict(m, nd, allow.new.levels = TRUE, type = "response")))))

f <- fit_all(function(ctrl) glmer(y ~ x + (1 | g), data = sg, family = binomial, control = ctrl))
out$cases$singular_binary <- describe(f, list(formula = "y ~ x + (1 | g)", data = "singular_binary"))

writeLines(jsonlite::toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE, na = "null"),
           "tests/data/lme4_glmer.json")

# The book's chapter book/glmm.ipynb reads lme4's cbpp numbers from mmbook/reference/lme4_cbpp.json
# (a chapter does not read tests/data): the same fits as above, fewer fields.
book <- list(source = out$source)
for (nm in c("cbpp_laplace", "cbpp_agq25")) {
  cs <- out$cases[[nm]]
  book[[nm]] <- list(nAGQ = cs$nAGQ, logLik = cs$logLik, logLik_default = cs$logLik_default,
                     saturated_constant = cs$saturated_constant, fixef_names = cs$fixef_names,
                     fixef = cs$fixef, se = sqrt(diag(do.call(rbind, cs$vcov))), theta = cs$theta)
}
dir.create("book/data", showWarnings = FALSE)
writeLines(jsonlite::toJSON(book, digits = NA, auto_unbox = TRUE, pretty = TRUE), "mmbook/reference/lme4_cbpp.json")
