# Reference fits for tests/test_lmer_args.py: lmer's weights, offset, contrasts and na.action arguments.
#
# Run from the repository root:
#     Rscript tests/data/make_lme4_args.R
# It adds simulated columns (set.seed below) to mmbook/data/sleepstudy.csv, writes the result and a
# small new data set to tests/data/args/, reads both back with read.csv and writes
# tests/data/lme4_args.json with lme4's results (versions recorded in `source`):
#   weights   prior weights w (REML and ML; random slopes and random intercepts): criterion, sigma,
#             fixef, vcov, theta, logLik/AIC/BIC/deviance, residuals (response, pearson), fitted,
#             predict() and predict(newdata);
#   zero      weights w0 with three zeros: lme4 1.1-31 gives an infinite criterion (recorded) and stops
#             at its start; the reference is lme4's fit without those rows (same weights otherwise);
#   offsets   the offset argument, offset() in the formula, both, two offset() terms, a repeated one;
#             predict(newdata) (lme4 evaluates offset() terms on newdata and leaves out the argument);
#   contrasts contr.sum, contr.helmert, contr.poly, contr.SAS, contr.treatment with base 2, a matrix
#             with and without column names (fixed part only, as lme4 applies them);
#   exclude   na.action = na.exclude: fitted, residuals and predict() padded with NA.
suppressMessages(library(lme4))
library(jsonlite)

d <- read.csv("mmbook/data/sleepstudy.csv")
set.seed(4242)
n <- nrow(d)
d$w <- round(runif(n, 0.3, 3), 4)
d$w0 <- d$w
d$w0[c(3, 50, 100)] <- 0
d$o <- round(rnorm(n, 0, 20), 4)
d$o2 <- round(runif(n, 0, 30), 4)
d$s <- sample(c("a", "b", "c", "d"), n, TRUE)
d$y2 <- d$Reaction
d$y2[c(5, 77, 140)] <- NA
nd <- d[c(1, 20, 45, 90, 150, 171), c("Days", "Subject", "o", "o2", "s", "w")]
nd$o <- c(0, 10, -10, 5, 0, 25)
nd$o2 <- c(100, 0, 3, 7, 12, 0)
dir.create("tests/data/args", showWarnings = FALSE)
write.csv(d, "tests/data/args/args.csv", row.names = FALSE)
write.csv(nd, "tests/data/args/args_new.csv", row.names = FALSE)
d <- read.csv("tests/data/args/args.csv")
nd <- read.csv("tests/data/args/args_new.csv")

core <- function(fm) list(
  REML = isREML(fm), objective = if (isREML(fm)) REMLcrit(fm) else deviance(fm),
  sigma = sigma(fm), fixef_names = names(fixef(fm)), fixef = unname(fixef(fm)),
  vcov = unname(as.matrix(vcov(fm))), theta = unname(getME(fm, "theta")),
  logLik = as.numeric(logLik(fm)), AIC = AIC(fm), BIC = BIC(fm), nobs = nobs(fm))
# per-row values: the first `k` rows (all rows for na.exclude, where the padding is the point)
full <- function(fm, newdata = nd, k = 24) { h <- function(v) unname(v)[seq_len(min(k, length(v)))]; c(core(fm), list(
  fitted = h(fitted(fm)), resid_response = h(residuals(fm, type = "response")),
  resid_pearson = h(residuals(fm, type = "pearson")),
  resid_pearson_scaled = h(residuals(fm, type = "pearson", scaled = TRUE)),
  predict = h(predict(fm)), predict_fixed = h(predict(fm, re.form = NA)),
  predict_new = unname(predict(fm, newdata = newdata)),
  predict_new_fixed = unname(predict(fm, newdata = newdata, re.form = NA))))}

out <- list()
slope <- Reaction ~ Days + (Days | Subject)
out$weights <- list(
  slope_REML = c(list(formula = deparse(slope), weights = "w"), full(lmer(slope, d, weights = w))),
  slope_ML = c(list(formula = deparse(slope), weights = "w"), full(lmer(slope, d, weights = w, REML = FALSE))),
  ri_REML = c(list(formula = "Reaction ~ Days + (1 | Subject)", weights = "w"),
              full(lmer(Reaction ~ Days + (1 | Subject), d, weights = w))))
# profile intervals of the weighted random-intercept fit (rows .sig01, .sigma, (Intercept), Days)
ci <- confint(lmer(Reaction ~ Days + (1 | Subject), d, weights = w), method = "profile", oldNames = TRUE)
out$weights$ri_REML$confint_profile <- unname(ci)
out$weights$ri_REML$confint_names <- rownames(ci)

fz <- lmer(slope, d, weights = w0)
keep <- d$w0 > 0
out$zero <- list(
  formula = deparse(slope), weights = "w0", zero_rows_1based = which(!keep),
  lme4_REMLcrit_with_zeros = if (is.finite(REMLcrit(fz))) REMLcrit(fz) else "Inf",
  lme4_theta_with_zeros = unname(getME(fz, "theta")),
  without_zero_rows = c(core(lmer(slope, d[keep, ], weights = w0))),
  without_zero_rows_ML = c(core(lmer(slope, d[keep, ], weights = w0, REML = FALSE))))

ri <- "Reaction ~ Days + (1 | Subject)"
out$offsets <- list(
  argument = c(list(formula = ri, offset = "o"), full(lmer(as.formula(ri), d, offset = o))),
  formula = c(list(formula = "Reaction ~ Days + offset(o) + (1 | Subject)"),
              full(lmer(Reaction ~ Days + offset(o) + (1 | Subject), d))),
  both = c(list(formula = "Reaction ~ Days + offset(o) + (1 | Subject)", offset = "o2"),
           full(lmer(Reaction ~ Days + offset(o) + (1 | Subject), d, offset = o2))),
  two_terms = c(list(formula = "Reaction ~ Days + offset(o) + offset(o2) + (1 | Subject)"),
                full(lmer(Reaction ~ Days + offset(o) + offset(o2) + (1 | Subject), d))),
  repeated = c(list(formula = "Reaction ~ Days + offset(o) + offset(o) + (1 | Subject)"),
               full(lmer(Reaction ~ Days + offset(o) + offset(o) + (1 | Subject), d))),
  weighted_slope = c(list(formula = "Reaction ~ Days + offset(o) + (Days | Subject)", weights = "w"),
                     full(lmer(Reaction ~ Days + offset(o) + (Days | Subject), d, weights = w))))

cf <- Reaction ~ Days + s + (1 | Subject)
lev <- sort(unique(d$s))
M <- matrix(c(1, 0, 0, -1,  0, 1, 0, -1,  0.5, 0.5, -1, 0), 4, 3)
Mn <- M; colnames(Mn) <- c("x1", "x2", "x3")
contrast_fit <- function(spec) { fm <- lmer(cf, d, contrasts = list(s = spec)); core(fm) }
out$contrasts <- list(
  levels = lev,
  matrix = M,
  sum = contrast_fit("contr.sum"),
  helmert = contrast_fit("contr.helmert"),
  poly = contrast_fit("contr.poly"),
  SAS = contrast_fit("contr.SAS"),
  treatment_base2 = contrast_fit(contr.treatment(lev, base = 2)),
  matrix_unnamed = contrast_fit(M),
  matrix_named = contrast_fit(Mn),
  interaction_sum = core(lmer(Reaction ~ Days * s + (1 | Subject), d, contrasts = list(s = "contr.sum"))))
out$contrasts$interaction_sum$formula <- "Reaction ~ Days * s + (1 | Subject)"
out$contrasts$formula <- deparse(cf)

fe <- lmer(y2 ~ Days + (Days | Subject), d, na.action = na.exclude)
fe_w <- lmer(y2 ~ Days + (Days | Subject), d, na.action = na.exclude, weights = w)
out$exclude <- list(
  formula = "y2 ~ Days + (Days | Subject)", na_rows_1based = which(is.na(d$y2)),
  unweighted = full(fe, k = n), weighted = c(list(weights = "w"), full(fe_w, k = n)),
  simulate_rows = nrow(simulate(fe, seed = 1)))

# the printed summary of a fit with weights and an offset (lme4 prints "Weights:" and " Offset:" lines)
out$summary_weighted_offset <- list(
  formula = "Reaction ~ Days + (1 | Subject)", weights = "w", offset = "o",
  text = capture.output(print(summary(lmer(Reaction ~ Days + (1 | Subject), d, weights = w, offset = o)))))

out$source <- paste0("tests/data/make_lme4_args.R; ", R.version.string, ", lme4 ", packageVersion("lme4"),
                     ", Matrix ", packageVersion("Matrix"))
out$data <- "tests/data/args/args.csv"
out$newdata <- "tests/data/args/args_new.csv"
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, null = "null", na = "null", pretty = TRUE),
           "tests/data/lme4_args.json")
