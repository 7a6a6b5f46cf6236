# Reference fits for tests/test_model_frame.py: R's functions, factors and column names in lme4 formulas.
#
# Run from the repository root:
#     Rscript tests/data/make_lme4_frames.R
# It simulates one data set (set.seed below), writes it and a small new data set to
# tests/data/frames/, reads both back with read.csv (strings stay character; `o` is then made an
# ordered factor lo < mid < hi < top, as the Python test does), fits each model with lme4 and
# writes tests/data/lme4_frames.json: the REML criterion, fixef (names and values), theta, sigma,
# the random-effects column names (cnms) and predict() on the new data (re.form = NULL and NA).
# Two responses are missing, so R's stateful transforms (scale, poly, bs) learn their state on all
# rows of x, before the incomplete rows are removed.
suppressMessages({library(lme4); library(splines)})
library(jsonlite)

set.seed(909)
ng <- 20; ni <- 12; n <- ng * ni
gi <- rep(1:ng, each = ni)
d <- data.frame(g = sprintf("g%02d", gi),
                x = round(runif(n, 0, 10), 3),
                z = round(runif(n, 0.5, 5), 3),
                h = sample(1:3, n, TRUE),
                f = sample(c("a", "b", "c", "d"), n, TRUE),
                o = sample(c("lo", "mid", "hi", "top"), n, TRUE),
                b = sample(c(TRUE, FALSE), n, TRUE))
u0 <- rnorm(ng, sd = 1.5); u1 <- rnorm(ng, sd = 0.15)
d$y <- round(2 + 0.4 * d$x - 0.03 * d$x^2 + 0.8 * log(d$z) + c(lo = 0, mid = 0.5, hi = 0.8, top = 1.5)[d$o] +
             0.6 * (d$f == "b") - 0.4 * (d$f == "d") + 0.7 * d$b + 0.3 * d$h + u0[gi] + u1[gi] * d$x +
             rnorm(n), 4)
d$y[c(7, 51)] <- NA
nd <- data.frame(g = c("g01", "g05", "g05", "g12", "g20", "g20"),
                 x = c(0.5, 2.25, 9.7, 5, 7.125, 3.3), z = c(0.8, 4.9, 2.2, 1.5, 3.75, 2.6),
                 h = c(1, 2, 3, 3, 1, 2), f = c("a", "b", "c", "d", "d", "b"),
                 o = c("lo", "top", "mid", "hi", "top", "lo"), b = c(TRUE, FALSE, TRUE, FALSE, FALSE, TRUE))
write.csv(d, "tests/data/frames/frames.csv", row.names = FALSE)
write.csv(nd, "tests/data/frames/frames_new.csv", row.names = FALSE)
ordered_o <- function(df) { df$o <- factor(df$o, levels = c("lo", "mid", "hi", "top"), ordered = TRUE); df }
d <- ordered_o(read.csv("tests/data/frames/frames.csv"))
nd <- ordered_o(read.csv("tests/data/frames/frames_new.csv"))

models <- list(
  scale = "y ~ scale(x) + (1 | g)",
  poly = "y ~ poly(x, 2) + (1 | g)",
  poly_raw = "y ~ poly(x, 2, raw = TRUE) + (1 | g)",
  bs = "y ~ bs(x, df = 4) + (1 | g)",
  functions = "y ~ log(z) + sqrt(z) + exp(x/10) + abs(x - 5) + I(x^2) + (1 | g)",
  log_base = "y ~ log(z, base = 2) + x + (1 | g)",
  factor_h = "y ~ factor(h) + x + (1 | g)",
  ordered = "y ~ o * x + (1 | g)",
  ordered_0 = "y ~ 0 + o + x + (1 | g)",
  logical = "y ~ b * x + (1 | g)",
  logical_0 = "y ~ 0 + b + x + (1 | g)",
  re_scale = "y ~ x + (1 + scale(x) | g)",
  re_logical = "y ~ x + (b | g)",
  combined = "y ~ poly(x, 2) + scale(z) + factor(h) + o + b + f + (1 | g)"
)

fits <- list()
for (name in names(models)) {
  fm <- lmer(as.formula(models[[name]]), data = d)
  fits[[name]] <- list(
    formula = models[[name]],
    REMLcrit = REMLcrit(fm),
    fixef_names = names(fixef(fm)),
    fixef = unname(fixef(fm)),
    theta = unname(getME(fm, "theta")),
    sigma = sigma(fm),
    nobs = nobs(fm),
    cnms = unname(getME(fm, "cnms")),
    predict_new = unname(predict(fm, newdata = nd)),
    predict_new_fixed = unname(predict(fm, newdata = nd, re.form = NA)))
}

# factor labels of numbers (as.character, which factor() uses for levels) and deparsed calls (term labels)
nums <- c(1e5, 123456, 0.1, 1/3, 1e-20, 2.5, 100, 1e15, -0.5, 3, 1.25e-3, 2^30)
calls <- c("bs(x,df=4,Boundary.knots=c(0,10))", "I(-x^2+1e5*y/2 > 0 & z == 'a')", "poly(x, 2, raw=TRUE)",
           "log(x, base=2)", "I(2.50*x)", "I(x - -1)", "exp(x/10)", "factor(h)", "I((x+1)^2)", "abs(x-5)",
           "log(abs(`my x`))", "splines::bs(x,df=3)", "pmax(x-5,0)", "as.factor(h)")
strings <- list(numbers = nums, as_character = as.character(nums),
                calls = calls, deparse = vapply(calls, function(s) deparse(str2lang(s)), ""))

out <- list(
  strings = strings,
  source = paste0("tests/data/make_lme4_frames.R; ", R.version.string, ", lme4 ",
                  packageVersion("lme4"), ", Matrix ", packageVersion("Matrix")),
  data = "tests/data/frames/frames.csv (o: ordered factor lo < mid < hi < top)",
  newdata = "tests/data/frames/frames_new.csv",
  fits = fits)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, null = "null", na = "null", pretty = TRUE),
           "tests/data/lme4_frames.json")
