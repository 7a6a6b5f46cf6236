# Reference values for tests/test_smooth.py: mgcv's cubic regression spline basis, and
# smooths fitted by REML (and ML) with gam() and gamm(), the same models mmbook fits as
# mixed models.
#
# Run from the repository root:
#     Rscript tests/data/make_mgcv.R
# It writes mmbook/reference/gam1.csv (mgcv's gamSim(1) example with a grouping factor
# added, rounded to 6 digits and read back before fitting) and mmbook/reference/mgcv_smooths.json
# (R, mgcv and nlme versions in its "source" field): shipped with the package, for the tests
# and for book/form6b_smooth_terms.ipynb.
#
# The quantities that are equal in mmbook and mgcv:
#  * the REML criterion of mmbook (lme4's -2 l_R) equals 2 * gam()$gcv.ubre (mgcv's REML
#    score is -l_R with the same constants) and -2 * logLik(gamm()$lme);
#  * the ML deviance equals 2 * gam(method = "ML")$gcv.ubre and -2 * logLik of gamm(method = "ML");
#  * lambda = sigma^2 / tau^2 equals gam()$sp (mgcv's penalty after its scale.penalty
#    rescaling, which mmbook applies too);
#  * each smooth's effective degrees of freedom: the sum of gam()$edf over its coefficients.
suppressMessages(library(mgcv))
library(jsonlite)

set.seed(1801)
d <- gamSim(1, n = 400, dist = "normal", scale = 2, verbose = FALSE)
d <- d[, c("y", "x0", "x1", "x2", "x3")]
ng <- 20
d$g <- sprintf("g%02d", rep(1:ng, length.out = nrow(d)))
d$g <- d$g[sample(nrow(d))]
bg <- rnorm(ng, sd = 1.5)
d$yg <- d$y + bg[match(d$g, sprintf("g%02d", 1:ng))]
num <- c("y", "x0", "x1", "x2", "x3", "yg")
d[num] <- lapply(d[num], function(v) round(v, 6))
write.csv(d, "mmbook/reference/gam1.csv", row.names = FALSE)
d <- read.csv("mmbook/reference/gam1.csv", stringsAsFactors = TRUE)
ss <- read.csv("mmbook/data/sleepstudy.csv")
ss$Subject <- factor(ss$Subject)

# ---- the basis: knots, model matrix, penalty, prediction matrix (with extrapolation) ----
basis <- list()
add_basis <- function(name, data, var, k) {
  sm0 <- smoothCon(s(x, k = k, bs = "cr"), data = data.frame(x = data[[var]]), absorb.cons = FALSE,
                   scale.penalty = FALSE)[[1]]
  sm <- smoothCon(s(x, k = k, bs = "cr"), data = data.frame(x = data[[var]]), absorb.cons = TRUE)[[1]]
  xr <- range(data[[var]])
  xnew <- c(xr[1] - 0.3 * diff(xr), xr[1], mean(xr), sm0$xp[3], xr[2], xr[2] + 0.2 * diff(xr))
  basis[[name]] <<- list(data = name, variable = var, k = k, knots = unname(sm0$xp),
                         X = unname(sm0$X[1:40, ]), S = unname(sm0$S[[1]]), S_scale = sm$S.scale,
                         xnew = xnew, Xnew = unname(PredictMat(sm0, data.frame(x = xnew))),
                         Xc_gram = unname(crossprod(sm$X)), Sc_eigen = eigen(sm$S[[1]], symmetric = TRUE)$values)
}
add_basis("gam1_x2", d, "x2", 10)
add_basis("gam1_x0_k5", d, "x0", 5)
add_basis("sleep_Days", ss, "Days", 5)

# ---- fits ----
fits <- list()
edf_by_smooth <- function(b) {
  out <- sapply(b$smooth, function(s) sum(b$edf[s$first.para:s$last.para]))
  names(out) <- sapply(b$smooth, function(s) s$label)
  as.list(out)
}
smooth_values <- function(b, newdata = NULL) {
  tt <- if (is.null(newdata)) predict(b, type = "terms") else predict(b, newdata, type = "terms")
  lapply(as.data.frame(tt), unname)
}
add_fit <- function(name, data, formula, gam_formula, gamm_formula = NULL, random = NULL,
                    method = "REML", newdata = NULL, re_smooths = character(0), note_formula = NULL) {
  b <- gam(as.formula(gam_formula), data = data, method = method)
  sm_labels <- sapply(b$smooth, function(s) s$label)
  keep <- !(sm_labels %in% re_smooths)
  res <- list(name = name, data = name_of_data, formula = if (is.null(note_formula)) formula else note_formula,
              gam_call = gam_formula,
              REML = (method == "REML"),
              criterion = 2 * b$gcv.ubre[[1]],
              sp = as.list(b$sp), edf = edf_by_smooth(b), sig2 = b$sig2,
              coefficients_parametric = as.list(coef(b)[seq_len(b$nsdf)]),
              fitted = signif(unname(fitted(b)), 10),  # 10 digits: compared to 1e-4 of sd(y)
              smooth_values = lapply(smooth_values(b)[sm_labels[keep]], signif, 10),
              converged = b$outer.info$conv)
  if (!is.null(newdata)) {
    res$newdata <- newdata
    res$predict_newdata <- unname(predict(b, newdata))
  }
  if (!is.null(gamm_formula)) {
    g <- if (is.null(random)) gamm(as.formula(gamm_formula), data = data, method = method)
         else gamm(as.formula(gamm_formula), data = data, method = method, random = random)
    res$gamm <- list(logLik = as.numeric(logLik(g$lme)), sp = as.list(g$gam$sp),
                     edf = edf_by_smooth(g$gam), fixef = as.list(nlme::fixef(g$lme)),
                     sigma = g$lme$sigma)
  }
  fits[[length(fits) + 1]] <<- res
}
name_of_data <- "gam1"
nd <- data.frame(x0 = c(0.05, 0.5, 0.95), x1 = c(0.2, 0.5, 0.8), x2 = c(-0.05, 0.5, 1.05),
                 x3 = c(0.1, 0.5, 0.9))
add_fit("single", d, "y ~ s(x2, k = 10, bs = 'cr')", "y ~ s(x2, k = 10, bs = 'cr')",
        "y ~ s(x2, k = 10, bs = 'cr')", newdata = nd)
add_fit("single_ML", d, "y ~ s(x2, k = 10, bs = 'cr')", "y ~ s(x2, k = 10, bs = 'cr')",
        "y ~ s(x2, k = 10, bs = 'cr')", method = "ML")
add_fit("single_k5", d, "y ~ s(x2, k = 5, bs = 'cr')", "y ~ s(x2, k = 5, bs = 'cr')",
        "y ~ s(x2, k = 5, bs = 'cr')")
add_fit("several", d, "y ~ x3 + s(x0, bs = 'cr') + s(x1, k = 8, bs = 'cr') + s(x2, k = 12, bs = 'cr')",
        "y ~ x3 + s(x0, bs = 'cr') + s(x1, k = 8, bs = 'cr') + s(x2, k = 12, bs = 'cr')",
        "y ~ x3 + s(x0, bs = 'cr') + s(x1, k = 8, bs = 'cr') + s(x2, k = 12, bs = 'cr')", newdata = nd)
add_fit("several_ML", d, "y ~ x3 + s(x0, bs = 'cr') + s(x1, k = 8, bs = 'cr') + s(x2, k = 12, bs = 'cr')",
        "y ~ x3 + s(x0, bs = 'cr') + s(x1, k = 8, bs = 'cr') + s(x2, k = 12, bs = 'cr')", method = "ML")
add_fit("with_group", d, "yg ~ s(x2, bs = 'cr') + (1 | g)", "yg ~ s(x2, bs = 'cr') + s(g, bs = 're')",
        "yg ~ s(x2, bs = 'cr')", random = list(g = ~1), re_smooths = "s(g)",
        newdata = data.frame(x2 = c(0.1, 0.5, 0.9), g = c("g01", "g02", "g20")))
add_fit("with_group_ML", d, "yg ~ s(x2, bs = 'cr') + (1 | g)", "yg ~ s(x2, bs = 'cr') + s(g, bs = 're')",
        "yg ~ s(x2, bs = 'cr')", random = list(g = ~1), re_smooths = "s(g)", method = "ML")
name_of_data <- "sleepstudy"
add_fit("sleep_ri", ss, "Reaction ~ s(Days, k = 5, bs = 'cr') + (1 | Subject)",
        "Reaction ~ s(Days, k = 5, bs = 'cr') + s(Subject, bs = 're')",
        "Reaction ~ s(Days, k = 5, bs = 'cr')", random = list(Subject = ~1), re_smooths = "s(Subject)")
add_fit("sleep_ri_k10", ss, "Reaction ~ s(Days, k = 10, bs = 'cr') + (1 | Subject)",
        "Reaction ~ s(Days, k = 10, bs = 'cr') + s(Subject, bs = 're')",
        "Reaction ~ s(Days, k = 10, bs = 'cr')", random = list(Subject = ~1), re_smooths = "s(Subject)")

# the thin plate regression spline, mgcv's default basis (bs = "tp"), k = 10 unless given
name_of_data <- "gam1"
add_fit("tp_single", d, "y ~ s(x2)", "y ~ s(x2)", "y ~ s(x2)", newdata = nd)
add_fit("tp_single_ML", d, "y ~ s(x2)", "y ~ s(x2)", "y ~ s(x2)", method = "ML")
add_fit("tp_several", d, "y ~ x3 + s(x0) + s(x1, k = 8) + s(x2, k = 12)",
        "y ~ x3 + s(x0) + s(x1, k = 8) + s(x2, k = 12)", "y ~ x3 + s(x0) + s(x1, k = 8) + s(x2, k = 12)",
        newdata = nd)
add_fit("tp_with_group", d, "yg ~ s(x2) + (1 | g)", "yg ~ s(x2) + s(g, bs = 're')", "yg ~ s(x2)",
        random = list(g = ~1), re_smooths = "s(g)")
add_fit("tp_mixed_bases", d, "y ~ s(x0, bs = 'cr') + s(x2)", "y ~ s(x0, bs = 'cr') + s(x2)",
        "y ~ s(x0, bs = 'cr') + s(x2)")
name_of_data <- "sleepstudy"
add_fit("tp_sleep_k5", ss, "Reaction ~ s(Days, k = 5) + (1 | Subject)",
        "Reaction ~ s(Days, k = 5) + s(Subject, bs = 're')", "Reaction ~ s(Days, k = 5)",
        random = list(Subject = ~1), re_smooths = "s(Subject)")
add_fit("tp_sleep_k10", ss, "Reaction ~ s(Days, k = 10) + (Days | Subject)",
        "Reaction ~ s(Days, k = 10) + s(Subject, bs = 're') + s(Days, Subject, bs = 're')", NULL,
        re_smooths = c("s(Subject)", "s(Days,Subject)"),
        note_formula = "Reaction ~ s(Days, k = 10) + (1 | Subject) + (0 + Days | Subject)")
# the tp basis: invariants of the basis and penalty (the basis itself is defined up to a rotation)
tp_basis <- list()
for (v in c("x2", "x0")) {
  sm <- smoothCon(s(x, k = 10), data = data.frame(x = d[[v]]), absorb.cons = FALSE, scale.penalty = FALSE)[[1]]
  XtX <- crossprod(sm$X)
  ev <- eigen(solve(XtX, sm$S[[1]]), only.values = TRUE)$values
  tp_basis[[v]] <- list(variable = v, k = 10, shift = sm$shift,
                        gen_eigen = sort(Re(ev), decreasing = TRUE),
                        colrms = unname(sqrt(colMeans(sm$X^2))))
}

# more than 2000 unique values: mgcv's tp basis puts its functions at 2000 of them drawn with
# set.seed(1); the data are deterministic (no RNG), so the test rebuilds them exactly
i <- 1:2600
big <- data.frame(x = (i * 0.6180339887) %% 1)
big$y <- sin(2 * pi * big$x) + 0.5 * sin(997 * i)
smb <- smoothCon(s(x, k = 10), data = big, absorb.cons = FALSE, scale.penalty = FALSE)[[1]]
evb <- eigen(solve(crossprod(smb$X), smb$S[[1]]), only.values = TRUE)$values
bb <- gam(y ~ s(x), data = big, method = "REML")
tp_large <- list(data = "x = (i * 0.6180339887) %% 1, y = sin(2 pi x) + 0.5 sin(997 i), i = 1..2600",
                 knots_head = head(sort(smb$Xu[, 1]), 25), knots_sum = sum(smb$Xu[, 1]),
                 X_head = unname(smb$X[1:20, ]),
                 gen_eigen = sort(Re(evb), decreasing = TRUE),
                 criterion = 2 * bb$gcv.ubre[[1]], sp = bb$sp[[1]], edf = sum(bb$edf[-1]),
                 r_sample = {set.seed(1); sample(1:3000, 6)})

# a random slope as well: gamm only (gam's s(Days, Subject, bs = "re") is uncorrelated)
g <- gamm(Reaction ~ s(Days, k = 5, bs = "cr"), random = list(Subject = ~Days), data = ss, method = "REML")
sleep_slope <- list(name = "sleep_slope", data = "sleepstudy",
                    formula = "Reaction ~ s(Days, k = 5, bs = 'cr') + (Days | Subject)",
                    gamm_call = "gamm(Reaction ~ s(Days, k = 5, bs = 'cr'), random = list(Subject = ~Days))",
                    REML = TRUE, logLik = as.numeric(logLik(g$lme)), sp = as.list(g$gam$sp),
                    edf = edf_by_smooth(g$gam), fixef = as.list(nlme::fixef(g$lme)), sigma = g$lme$sigma,
                    smooth_values = smooth_values(g$gam))

out <- list(source = paste0(R.version.string, ", mgcv ", packageVersion("mgcv"), ", nlme ",
                            packageVersion("nlme"), "; tests/data/make_mgcv.R"),
            basis = basis, tp_basis = tp_basis, tp_large = tp_large, fits = fits, sleep_slope = sleep_slope)
writeLines(toJSON(out, digits = I(17), auto_unbox = TRUE, pretty = FALSE), "mmbook/reference/mgcv_smooths.json")
