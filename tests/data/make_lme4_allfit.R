# Reference for tests/test_allfit.py: lme4's allFit() on sleepstudy, in its own units and with
# Days in units of 1e-4 days (a covariate on a large scale, where lme4 warns and some of its
# optimizers stop short).
#
# Run from the repository root:
#     Rscript tests/data/make_lme4_allfit.R
# Writes tests/data/lme4_allfit.json: for each model and each optimizer lme4's allFit tried, the
# log-likelihood, fixed effects, theta, sd/cor (as.data.frame(VarCorr())$sdcor), the number of
# evaluations and lme4's convergence messages.
suppressMessages(library(lme4))
library(jsonlite)

sleep <- read.csv("mmbook/data/sleepstudy.csv")
sleep$DaysS <- sleep$Days * 1e4
models <- list(
  sleep_REML = list(formula = Reaction ~ Days + (Days | Subject), REML = TRUE),
  sleep_scaled_ML = list(formula = Reaction ~ DaysS + (DaysS | Subject), REML = FALSE)
)
out <- list(source = paste("R", R.version$major, R.version$minor, "lme4", packageVersion("lme4"),
                           "allFit(); written by tests/data/make_lme4_allfit.R"),
            models = list())
for (name in names(models)) {
  m <- models[[name]]
  fit <- suppressWarnings(lmer(m$formula, data = sleep, REML = m$REML))
  af <- allFit(fit, verbose = FALSE)
  ok <- !vapply(af, is, "error", FUN.VALUE = logical(1))
  res <- list()
  for (opt in names(af)[ok]) {
    f <- af[[opt]]
    res[[opt]] <- list(
      loglik = as.numeric(logLik(f)),
      criterion = unname(if (m$REML) f@devcomp$cmp[["REML"]] else f@devcomp$cmp[["dev"]]),
      fixef = as.list(fixef(f)),
      theta = unname(getME(f, "theta")),
      sdcor = as.data.frame(VarCorr(f))$sdcor,
      feval = f@optinfo$feval,
      messages = as.list(unlist(f@optinfo$conv$lme4$messages)),
      warnings = as.list(unlist(f@optinfo$warnings)))
  }
  out$models[[name]] <- list(formula = deparse(m$formula), REML = m$REML, fits = res,
                             failed = as.list(names(af)[!ok]))
}
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), "tests/data/lme4_allfit.json")
