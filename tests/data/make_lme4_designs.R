# Reference fits for tests/test_lmm_designs.py: simulated designs fitted with lme4.
#
# Run from the repository root:
#     Rscript tests/data/make_lme4_designs.R
# It writes one CSV per simulated data set to tests/data/designs/ and the lme4
# results of every model to tests/data/lme4_designs.json (R and lme4 versions
# recorded in the file). Each data set is simulated with its own set.seed, written
# to CSV, and read back with read.csv(stringsAsFactors = TRUE) before fitting, so
# that R fits exactly the numbers the Python tests read.
suppressMessages(library(lme4))
library(jsonlite)

out_dir <- "tests/data/designs"
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)

datasets <- list()
models <- list()
add_data <- function(name, d) {
  write.csv(d, file.path(out_dir, paste0(name, ".csv")), row.names = FALSE)
  datasets[[name]] <<- read.csv(file.path(out_dir, paste0(name, ".csv")), stringsAsFactors = TRUE)
}
add_model <- function(name, data, formula, REML = TRUE, note = "") {
  models[[length(models) + 1]] <<- list(name = name, data = data, formula = formula,
                                        REML = REML, note = note)
}

# --- ri: random intercepts, numeric group labels (R sorts them numerically) -----
set.seed(101)
labs <- c(3, 7, 12, 19, 25, 31, 48, 56, 64, 77, 85, 90, 101, 115, 128, 140, 152, 167, 180, 205)
g <- rep(sample(labs), each = 10)
x <- round(rnorm(200), 4)
y <- round(10 + 0.5 * x + rnorm(20, sd = 1.2)[match(g, labs)] + rnorm(200), 4)
add_data("ri", data.frame(y = y, x = x, g = g))
add_model("ri_REML", "ri", "y ~ x + (1 | g)", TRUE)
add_model("ri_ML", "ri", "y ~ x + (1 | g)", FALSE)

# --- slopes: correlated intercepts and slopes, string group labels ---------------
set.seed(202)
ng <- 25; ni <- 8
g <- rep(sprintf("s%02d", 1:ng), each = ni)
x <- round(runif(ng * ni, 0, 5), 4)
b0 <- rnorm(ng, sd = 2); b1 <- 0.5 * b0 / 2 + rnorm(ng, sd = 0.5)
gi <- rep(1:ng, each = ni)
y <- round(3 + 1.5 * x + b0[gi] + b1[gi] * x + rnorm(ng * ni, sd = 1.5), 4)
add_data("slopes", data.frame(y = y, x = x, g = g))
add_model("slope_REML", "slopes", "y ~ x + (x | g)", TRUE)
add_model("slope_ML", "slopes", "y ~ x + (x | g)", FALSE)
add_model("uncorr_REML", "slopes", "y ~ x + (x || g)", TRUE)
add_model("uncorr_ML", "slopes", "y ~ x + (x || g)", FALSE)

# --- nested: b (labels 1-4) within a (labels A-H), implicit nesting --------------
set.seed(303)
a <- rep(LETTERS[1:8], each = 24)
b <- rep(rep(1:4, each = 6), 8)
x <- round(rnorm(192), 4)
ea <- rnorm(8, sd = 1.5); eab <- rnorm(32, sd = 0.8)
ia <- match(a, LETTERS); iab <- (ia - 1) * 4 + b
y <- round(5 - 0.7 * x + ea[ia] + eab[iab] + rnorm(192), 4)
add_data("nested", data.frame(y = y, x = x, a = a, b = b))
add_model("nested_REML", "nested", "y ~ x + (1 | a/b)", TRUE)
add_model("nested_ML", "nested", "y ~ x + (1 | a/b)", FALSE)
add_model("nested_explicit", "nested", "y ~ x + (1 | a) + (1 | a:b)", TRUE)
add_model("interaction_only", "nested", "y ~ x + (1 | a:b)", TRUE)
add_model("uncorr_nested", "nested", "y ~ x + (1 + x || a/b)", TRUE,
          "|| with nesting: lme4 orders the terms (0 + x | b:a), (1 | b:a), (0 + x | a), (1 | a)")

# --- crossed: subjects x items ----------------------------------------------------
set.seed(404)
subj <- rep(sprintf("p%02d", 1:20), times = 12)
item <- rep(sprintf("i%02d", 1:12), each = 20)
x <- round(rnorm(240), 4)
es <- rnorm(20, sd = 1); es1 <- rnorm(20, sd = 0.4); ei <- rnorm(12, sd = 0.7)
is <- rep(1:20, times = 12); ii <- rep(1:12, each = 20)
y <- round(2 + 0.8 * x + es[is] + es1[is] * x + ei[ii] + rnorm(240, sd = 0.9), 4)
add_data("crossed", data.frame(y = y, x = x, subj = subj, item = item))
add_model("crossed_REML", "crossed", "y ~ x + (1 | subj) + (1 | item)", TRUE)
add_model("crossed_ML", "crossed", "y ~ x + (1 | subj) + (1 | item)", FALSE)
add_model("three_terms", "crossed", "y ~ x + (1 | subj) + (0 + x | subj) + (1 | item)", TRUE)
add_model("crossed_corr_slope", "crossed", "y ~ x + (x | subj) + (1 | item)", TRUE,
          "a vector-valued term crossed with another factor: not representable in statsmodels MixedLM")

# --- unbalanced: group sizes 1 to 20 ----------------------------------------------
set.seed(505)
sizes <- sample(1:20, 30, replace = TRUE)
g <- rep(sprintf("g%02d", 1:30), times = sizes)
gi <- rep(1:30, times = sizes)
n <- sum(sizes)
x <- round(rnorm(n, 2), 4)
y <- round(1 + 0.3 * x + rnorm(30, sd = 1)[gi] + rnorm(30, sd = 0.3)[gi] * x + rnorm(n), 4)
add_data("unbalanced", data.frame(y = y, x = x, g = g))
add_model("unbalanced_slope", "unbalanced", "y ~ x + (x | g)", TRUE)

# --- categorical predictors ---------------------------------------------------------
set.seed(606)
g <- rep(sprintf("c%02d", 1:15), each = 16)
gi <- rep(1:15, each = 16)
f <- rep(c("A", "B", "C", "A"), 60)
x <- round(rnorm(240), 4)
eff <- c(A = 0, B = 1, C = -0.5)
bf <- matrix(rnorm(45, sd = 0.6), 15, 3, dimnames = list(NULL, c("A", "B", "C")))
y <- round(1 + eff[f] + 0.4 * x - 0.3 * x * (f == "B") + 0.2 * x^2 + rnorm(15)[gi] +
           bf[cbind(gi, match(f, c("A", "B", "C")))] + rnorm(240, sd = 0.8), 4)
add_data("categorical", data.frame(y = y, x = x, f = f, g = g))
add_model("factor_interaction", "categorical", "y ~ x * f + (1 | g)", TRUE)
add_model("no_intercept", "categorical", "y ~ 0 + f + x + (1 | g)", TRUE)
add_model("poly_I", "categorical", "y ~ x + I(x^2) + (1 | g)", FALSE)
add_model("factor_slope", "categorical", "y ~ f + (0 + f | g)", TRUE)

# --- singular: no between-group variation (theta on its bound) -------------------
set.seed(1)
g <- rep(1:10, each = 12); x <- round(rnorm(120), 3)
y <- round(1 + 0.4 * x + rnorm(10, sd = 0.15)[g] + rnorm(120), 4)
add_data("singular", data.frame(y = y, x = x, g = g))
add_model("singular_ML", "singular", "y ~ x + (1 | g)", FALSE)
add_model("singular_slope", "singular", "y ~ x + (x | g)", TRUE)

# --- rank-deficient X: a collinear column and an empty interaction cell ------------
set.seed(707)
g <- rep(sprintf("r%02d", 1:12), each = 15)
x <- round(rnorm(180), 4)
x2 <- 2 * x
f <- sample(c("a", "b", "c"), 180, replace = TRUE)
h <- sample(c("u", "v"), 180, replace = TRUE)
h[f == "c"] <- "u"  # no (c, v) cell
y <- round(1 + x + (f == "b") - 0.5 * (h == "v") + rnorm(12)[rep(1:12, each = 15)] + rnorm(180), 4)
add_data("rankdef", data.frame(y = y, x = x, x2 = x2, f = f, h = h, g = g))
add_model("rankdef_collinear", "rankdef", "y ~ x + x2 + (1 | g)", TRUE)
add_model("rankdef_empty_cell", "rankdef", "y ~ f * h + (1 | g)", TRUE)

# --- three-level nesting: c within b within a --------------------------------------
set.seed(808)
a <- rep(c("k", "l", "m", "n"), each = 36)
b <- rep(rep(1:3, each = 12), 4)
c <- rep(rep(1:3, each = 4), 12)
x <- round(rnorm(144), 4)
ia <- match(a, c("k", "l", "m", "n")); iab <- (ia - 1) * 3 + b; iabc <- (iab - 1) * 3 + c
y <- round(-1 + 0.5 * x + rnorm(4, sd = 1)[ia] + rnorm(12, sd = 0.7)[iab] + rnorm(36, sd = 0.5)[iabc] +
           rnorm(144, sd = 0.6), 4)
add_data("deep_nested", data.frame(y = y, x = x, a = a, b = b, c = c))
add_model("deep_nested", "deep_nested", "y ~ x + (1 | a/b/c)", TRUE)

# --- a transformed response ----------------------------------------------------------
set.seed(909)
g <- rep(sprintf("t%02d", 1:16), each = 12)
x <- round(runif(192), 4)
y <- round(exp(0.5 + 0.8 * x + rnorm(16, sd = 0.3)[rep(1:16, each = 12)] + rnorm(192, sd = 0.2)), 4)
add_data("logresp", data.frame(y = y, x = x, g = g))
add_model("log_response", "logresp", "log(y) ~ x + (1 | g)", TRUE)

# --- fit every model ------------------------------------------------------------------
num <- function(x) unname(as.numeric(x))
fit_one <- function(spec) {
  d <- datasets[[spec$data]]
  msgs <- character(0)
  m <- withCallingHandlers(
    lmer(as.formula(spec$formula), data = d, REML = spec$REML),
    warning = function(w) { msgs <<- c(msgs, conditionMessage(w)); invokeRestart("muffleWarning") },
    message = function(mm) { msgs <<- c(msgs, trimws(conditionMessage(mm))); invokeRestart("muffleMessage") })
  vc <- as.data.frame(VarCorr(m))
  re <- ranef(m)
  X <- getME(m, "X")
  V <- as.matrix(vcov(m))
  list(
    name = spec$name, data = paste0("designs/", spec$data, ".csv"), formula = spec$formula,
    REML = spec$REML, note = spec$note,
    criterion = num(if (spec$REML) m@devcomp$cmp["REML"] else m@devcomp$cmp["dev"]),
    logLik = num(logLik(m)), AIC = AIC(m), BIC = BIC(m),
    nobs = nobs(m),
    # I(): keep length-one vectors as JSON arrays
    fixef_names = I(names(fixef(m))), fixef = I(num(fixef(m))),
    col_dropped = I(as.character(names(attr(X, "col.dropped")))),
    vcov = lapply(seq_len(nrow(V)), function(i) I(num(V[i, ]))),
    theta_names = I(names(getME(m, "theta"))), theta = I(num(getME(m, "theta"))),
    sigma = sigma(m),
    varcorr = list(grp = I(vc$grp), var1 = I(vc$var1), var2 = I(vc$var2), vcov = I(vc$vcov),
                   sdcor = I(vc$sdcor)),
    ranef = lapply(re, function(r) list(levels = I(rownames(r)), terms = I(colnames(r)),
                                        values = lapply(r, function(v) I(num(v))))),
    ngroups = as.list(ngrps(m)),
    isSingular = isSingular(m),
    messages = I(as.character(msgs))
  )
}
fits <- lapply(models, fit_one)
names(fits) <- vapply(models, `[[`, "", "name")
out <- list(
  source = paste0("tests/data/make_lme4_designs.R; ", R.version.string, ", lme4 ",
                  as.character(packageVersion("lme4")), ", Matrix ", as.character(packageVersion("Matrix"))),
  R_version = R.version.string,
  lme4_version = as.character(packageVersion("lme4")),
  fits = fits
)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, null = "null", na = "null", pretty = TRUE),
           "tests/data/lme4_designs.json")
cat("wrote", length(fits), "fits\n")
