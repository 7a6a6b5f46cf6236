# R's printed summaries on rescaled sleepstudy (Days * 1e6): the fixed-effects table switches to
# scientific notation in both lm and lmer. Written by R 4.2.2 / lme4 1.1-31; read by tests/test_rprint.py.
suppressPackageStartupMessages(library(lme4))
d <- read.csv("../shared/data/sleepstudy.csv")
d$Subject <- factor(d$Subject, levels = unique(d$Subject))
d$Days <- d$Days * 1e6
m <- lmer(Reaction ~ Days + (1 | Subject), d)
writeLines(capture.output(print(summary(m))), "tests/data/rprint_lmer_scaled.txt")
writeLines(capture.output(print(summary(lm(Reaction ~ Days, d)))), "tests/data/rprint_lm_scaled.txt")
