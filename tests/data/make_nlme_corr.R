# Reference values for tests/test_residual.py: nlme's lme() and gls() with AR(1)
# (corAR1, corCAR1) and compound-symmetry (corCompSymm) residual correlation.
#
# Run from the repository root:
#     Rscript tests/data/make_nlme_corr.R
# It writes the simulated series to mmbook/reference/corr_*.csv (rounded to 6 digits and read
# back before fitting) and nlme's results to mmbook/reference/nlme_corr.json (R and nlme versions
# in its "source" field): shipped with the package, for the tests and for
# book/form5b_residual_correlation.ipynb.
#
# nlme's REML log-likelihood is lme4's: -2 * logLik equals mmbook's REML criterion (and
# its ML log-likelihood mmbook's deviance), with log|R(phi)| included.
# nlme's corAR1(form = ~ t | g) with whole-number times that are not consecutive
# (gaps) becomes corARMA(p = 1), whose correlation is phi^|t_i - t_j|: gaps count.
suppressMessages(library(nlme))
library(jsonlite)

ss <- read.csv("mmbook/data/sleepstudy.csv")
ss$Subject <- factor(ss$Subject)

# ---- simulated series ----
ar1_series <- function(times, phi) {  # an AR(1) process observed at the given (sorted) times
  e <- numeric(length(times))
  e[1] <- rnorm(1)
  for (i in seq_along(times)[-1]) {
    a <- phi^(times[i] - times[i - 1])
    e[i] <- a * e[i - 1] + sqrt(1 - a^2) * rnorm(1)
  }
  e
}
sim <- function(seed, m, times_of, phi, tau0, tau1 = 0, sigma = 1, shuffle = FALSE) {
  set.seed(seed)
  rows <- list()
  for (c in 1:m) {
    t <- times_of(c)
    b0 <- rnorm(1, sd = tau0); b1 <- rnorm(1, sd = tau1)
    x <- rnorm(length(t))
    y <- 2 + 0.5 * t + 0.8 * x + b0 + b1 * t + sigma * ar1_series(t, phi)
    rows[[c]] <- data.frame(id = sprintf("c%02d", c), t = t, x = x, y = y)
  }
  d <- do.call(rbind, rows)
  if (shuffle) d <- d[sample(nrow(d)), ]
  d[c("t", "x", "y")] <- lapply(d[c("t", "x", "y")], function(v) round(v, 6))
  d
}
write_read <- function(d, name) {
  f <- file.path("mmbook/reference", paste0("corr_", name, ".csv"))
  write.csv(d, f, row.names = FALSE)
  read.csv(f, stringsAsFactors = TRUE)
}
data <- list(sleepstudy = ss)
data$balanced <- write_read(sim(11, 30, function(c) 0:7, 0.6, tau0 = 1.0), "balanced")
data$gaps <- write_read(sim(12, 30, function(c) sort(sample(0:14, sample(5:9, 1))), 0.7, tau0 = 0.8,
                            shuffle = TRUE), "gaps")
data$slopes <- write_read(sim(13, 40, function(c) sort(sample(0:11, 8)), 0.5, tau0 = 1.0, tau1 = 0.3),
                          "slopes")
data$continuous <- write_read(sim(14, 25, function(c) sort(sample(0:1000, 6)) / 100, 0.6, tau0 = 0.7),
                              "continuous")

# ---- fits ----
fits <- list()
summ <- function(fit, name, dname, formula, residual, REML, call, kind, note = "") {
  cs <- fit$modelStruct$corStruct
  par <- coef(cs, unconstrained = FALSE)
  out <- list(name = name, data = dname, formula = formula, residual = residual, REML = REML,
              kind = kind, call = call, note = note,
              logLik = as.numeric(logLik(fit)), AIC = AIC(fit), BIC = BIC(fit), criterion = -2 * as.numeric(logLik(fit)),
              corr_parameter = names(par), corr_value = unname(par),
              fixef = as.list(if (kind == "gls") coef(fit) else fixef(fit)),
              vcov = unname(vcov(fit)), sigma = fit$sigma,
              nobs = nobs(fit))
  if (kind == "lme") {  # the random effects' covariance matrix psi (one grouping factor), at full precision
    psi <- as.matrix(pdMatrix(fit$modelStruct$reStruct[[1]])) * fit$sigma^2
    out$psi <- unname(psi)
    out$psi_names <- colnames(psi)
  }
  out
}
lme_fit <- function(name, dname, fixed, random, cor, formula, residual, REML = TRUE, control = lmeControl(),
                    note = "") {
  d <- data[[dname]]
  method <- if (REML) "REML" else "ML"
  call <- paste0("lme(", deparse(fixed), ", random = ", deparse(random), ", correlation = ",
                 deparse(cor), ", method = '", method, "')")
  fit <- tryCatch(lme(fixed, random = random, correlation = eval(cor), data = d, method = method,
                      control = control), error = function(e) e)
  if (inherits(fit, "error")) {
    fits[[length(fits) + 1]] <<- list(name = name, data = dname, formula = formula, residual = residual,
                                      REML = REML, kind = "lme", call = call, error = conditionMessage(fit))
    return(invisible())
  }
  fits[[length(fits) + 1]] <<- summ(fit, name, dname, formula, residual, REML, call, "lme", note)
}
gls_fit <- function(name, dname, model, cor, formula, residual, REML = TRUE) {
  d <- data[[dname]]
  method <- if (REML) "REML" else "ML"
  fit <- gls(model, data = d, correlation = eval(cor), method = method)
  call <- paste0("gls(", deparse(model), ", correlation = ", deparse(cor), ", method = '", method, "')")
  fits[[length(fits) + 1]] <<- summ(fit, name, dname, formula, residual, REML, call, "gls")
}

for (REML in c(TRUE, FALSE)) {
  sfx <- if (REML) "" else "_ML"
  lme_fit(paste0("sleep_ri_ar1", sfx), "sleepstudy", Reaction ~ Days, ~ 1 | Subject,
          quote(corAR1(form = ~ Days | Subject)), "Reaction ~ Days + (1 | Subject)", "ar1(Days | Subject)", REML)
  gls_fit(paste0("sleep_gls_ar1", sfx), "sleepstudy", Reaction ~ Days, quote(corAR1(form = ~ Days | Subject)),
          "Reaction ~ Days", "ar1(Days | Subject)", REML)
  gls_fit(paste0("sleep_gls_cs", sfx), "sleepstudy", Reaction ~ Days, quote(corCompSymm(form = ~ 1 | Subject)),
          "Reaction ~ Days", "cs(1 | Subject)", REML)
  lme_fit(paste0("balanced_ri_ar1", sfx), "balanced", y ~ t + x, ~ 1 | id, quote(corAR1(form = ~ t | id)),
          "y ~ t + x + (1 | id)", "ar1(t | id)", REML)
  lme_fit(paste0("gaps_ri_ar1", sfx), "gaps", y ~ t + x, ~ 1 | id, quote(corAR1(form = ~ t | id)),
          "y ~ t + x + (1 | id)", "ar1(t | id)", REML)
  lme_fit(paste0("slopes_ar1", sfx), "slopes", y ~ t + x, ~ t | id, quote(corAR1(form = ~ t | id)),
          "y ~ t + x + (t | id)", "ar1(t | id)", REML)
  lme_fit(paste0("continuous_ri_car1", sfx), "continuous", y ~ t + x, ~ 1 | id, quote(corCAR1(form = ~ t | id)),
          "y ~ t + x + (1 | id)", "ar1(t | id)", REML)
  gls_fit(paste0("gaps_gls_ar1", sfx), "gaps", y ~ t + x, quote(corAR1(form = ~ t | id)),
          "y ~ t + x", "ar1(t | id)", REML)
  gls_fit(paste0("balanced_gls_cs", sfx), "balanced", y ~ t + x, quote(corCompSymm(form = ~ 1 | id)),
          "y ~ t + x", "cs(1 | id)", REML)
}
# sleepstudy with random slopes and AR(1): nlme's default optimizer stops ("iteration limit
# reached"); with more iterations and optim it gets further.
lme_fit("sleep_slope_ar1_default", "sleepstudy", Reaction ~ Days, ~ Days | Subject,
        quote(corAR1(form = ~ Days | Subject)), "Reaction ~ Days + (Days | Subject)", "ar1(Days | Subject)")
lme_fit("sleep_slope_ar1", "sleepstudy", Reaction ~ Days, ~ Days | Subject,
        quote(corAR1(form = ~ Days | Subject)), "Reaction ~ Days + (Days | Subject)", "ar1(Days | Subject)",
        control = lmeControl(maxIter = 500, msMaxIter = 500, niterEM = 100, opt = "optim"),
        note = "lmeControl(maxIter = 500, msMaxIter = 500, niterEM = 100, opt = 'optim')")
lme_fit("sleep_slope_ar1_ML", "sleepstudy", Reaction ~ Days, ~ Days | Subject,
        quote(corAR1(form = ~ Days | Subject)), "Reaction ~ Days + (Days | Subject)", "ar1(Days | Subject)",
        REML = FALSE, control = lmeControl(maxIter = 500, msMaxIter = 500, niterEM = 100, opt = "optim"),
        note = "lmeControl(maxIter = 500, msMaxIter = 500, niterEM = 100, opt = 'optim')")

out <- list(source = paste0(R.version.string, ", nlme ", packageVersion("nlme"), "; tests/data/make_nlme_corr.R"),
            fits = fits)
writeLines(toJSON(out, digits = I(17), auto_unbox = TRUE, pretty = FALSE), "mmbook/reference/nlme_corr.json")
