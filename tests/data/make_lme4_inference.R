# Reference numbers for tests/test_inference.py (R 4.2.2, lme4 1.1-31).
# Run from the repository root: Rscript tests/data/make_lme4_inference.R
suppressMessages(library(lme4))
d <- read.csv("mmbook/data/sleepstudy.csv")
d$Subject <- factor(d$Subject, levels = unique(d$Subject))
m1 <- lmer(Reaction ~ Days + (Days | Subject), d)
m0 <- lmer(Reaction ~ Days + (1 | Subject), d)
a <- suppressMessages(anova(m0, m1))
ci_prof <- suppressMessages(confint(m1, method = "profile", oldNames = TRUE))
ci_wald <- confint(m1, method = "Wald", oldNames = TRUE)
nd <- data.frame(Days = c(0, 5, 10), Subject = factor(c("308", "372", "999")))
p_all <- predict(m1, newdata = nd, allow.new.levels = TRUE)
p_fix <- predict(m1, newdata = nd, re.form = NA)
cv <- attr(ranef(m1, condVar = TRUE)$Subject, "postVar")
num <- function(x) unname(as.numeric(x))
out <- list(
  source = paste(R.version.string, "lme4", packageVersion("lme4"),
                 "- tests/data/make_lme4_inference.R on mmbook/data/sleepstudy.csv"),
  anova = list(npar = num(a$npar), AIC = num(a$AIC), BIC = num(a$BIC), logLik = num(a$logLik),
               deviance = num(a$deviance), Chisq = num(a$Chisq)[2], Df = num(a$Df)[2],
               p = num(a[["Pr(>Chisq)"]])[2]),
  confint_profile = list(rows = rownames(ci_prof), lower = num(ci_prof[, 1]), upper = num(ci_prof[, 2])),
  confint_wald = list(rows = rownames(ci_wald), lower = num(ci_wald[, 1]), upper = num(ci_wald[, 2])),
  predict_newdata = list(Days = nd$Days, Subject = as.character(nd$Subject), all = num(p_all), fixed = num(p_fix)),
  condvar_first = list(level = "308", values = num(cv[, , 1]))
)
writeLines(jsonlite::toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "tests/data/lme4_inference.json")
