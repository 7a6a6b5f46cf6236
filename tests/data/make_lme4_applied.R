# Reference numbers for tests/test_applied_numbers.py (the applied-example chapter).
#
# Run from the repository root:
#     Rscript tests/data/make_lme4_applied.R
# It fits Reaction ~ Days + (Days | Subject) to mmbook/data/sleepstudy.csv with lme4,
# twice: with lme4's default optimizer settings (what a user of lme4 1.1-31 sees),
# and with bobyqa run to a very tight tolerance (rhoend = 1e-12), which reaches the
# true REML optimum. It also records confint(method = "profile"), anova(m0, m) and
# predict() for one existing and one new subject. Writes mmbook/reference/lme4_applied.json.
suppressMessages(library(lme4))
library(jsonlite)

d <- read.csv("mmbook/data/sleepstudy.csv")
d$Subject <- factor(d$Subject)

describe <- function(m) {
  vc <- as.data.frame(VarCorr(m))
  re <- ranef(m)$Subject
  cf <- coef(m)$Subject
  list(
    REMLcrit = REMLcrit(m),
    theta = unname(getME(m, "theta")),
    fixef = as.list(fixef(m)),
    se = as.list(sqrt(diag(as.matrix(vcov(m))))),
    varcorr = list(grp = vc$grp, var1 = vc$var1, var2 = vc$var2, vcov = vc$vcov, sdcor = vc$sdcor),
    ranef = list(levels = rownames(re), intercept = re[["(Intercept)"]], Days = re[["Days"]]),
    coef = list(levels = rownames(cf), intercept = cf[["(Intercept)"]], Days = cf[["Days"]])
  )
}

m <- lmer(Reaction ~ Days + (Days | Subject), d)
tight <- lmer(Reaction ~ Days + (Days | Subject), d,
              control = lmerControl(optimizer = "bobyqa",
                                    optCtrl = list(rhobeg = 2e-3, rhoend = 1e-12, maxfun = 1e5)))
m0 <- lmer(Reaction ~ Days + (1 | Subject), d)

ci <- suppressMessages(confint(m, method = "profile", oldNames = TRUE))
av <- suppressMessages(anova(m0, m))
newd <- data.frame(Days = c(10, 10), Subject = c("308", "new"))
pr_old <- predict(m, newdata = newd[1, , drop = FALSE])
pr_new <- predict(m, newdata = newd[2, , drop = FALSE], allow.new.levels = TRUE)

out <- list(
  source = paste0("tests/data/make_lme4_applied.R; ", R.version.string, ", lme4 ",
                  as.character(packageVersion("lme4"))),
  R_version = R.version.string,
  lme4_version = as.character(packageVersion("lme4")),
  default = describe(m),
  tight = describe(tight),
  confint_profile = list(rownames = rownames(ci), lower = unname(ci[, 1]), upper = unname(ci[, 2])),
  anova = list(models = rownames(av), npar = av$npar, AIC = av$AIC, BIC = av$BIC, logLik = av$logLik,
               deviance = av$deviance, Chisq = av$Chisq, Df = av$Df, p = av[["Pr(>Chisq)"]]),
  predict = list(subject_308_day10 = unname(pr_old), new_subject_day10 = unname(pr_new))
)
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE, na = "null"),
           "mmbook/reference/lme4_applied.json")
