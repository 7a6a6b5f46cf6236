# Reference values for mmbook.inference (tests/test_inference_*.py): lmerTest, pbkrtest,
# emmeans and performance on sleepstudy and three simulated designs.
#
# Run from the repository root:
#     Rscript tests/data/make_lmertest.R
# It writes the simulated data sets to tests/data/designs/{splitplot,crossed_cond,unbal_inter}.csv,
# reads each back with read.csv(stringsAsFactors = TRUE) (so R fits exactly the numbers the Python
# tests read), and writes every number at full precision to tests/data/lmertest.json (package
# versions recorded in its "source" field), and lmerTest's printed summary of the sleepstudy slope
# model to tests/data/lmertest_sleepstudy_summary.txt.
suppressMessages({
  library(lmerTest)   # loads lme4
  library(pbkrtest)
  library(emmeans)
  library(performance)
})
library(jsonlite)

out_dir <- "tests/data/designs"
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)
write_and_read <- function(name, d) {
  path <- file.path(out_dir, paste0(name, ".csv"))
  write.csv(d, path, row.names = FALSE)
  read.csv(path, stringsAsFactors = TRUE)
}

# --- data -----------------------------------------------------------------------------
sleepstudy <- read.csv("mmbook/data/sleepstudy.csv", stringsAsFactors = TRUE)

# split plot: 15 whole plots (5 per level of A), each split into the 4 levels of B
set.seed(1301)
np <- 15; nB <- 4
plot_id <- rep(sprintf("p%02d", 1:np), each = nB)
A <- rep(rep(c("a1", "a2", "a3"), each = 5), each = nB)
B <- rep(c("b1", "b2", "b3", "b4"), times = np)
effA <- c(a1 = 0, a2 = 1, a3 = 0.5); effB <- c(b1 = 0, b2 = 0.4, b3 = 0.8, b4 = 1.0)
ep <- rnorm(np, sd = 1)
y <- round(10 + effA[A] + effB[B] + 0.3 * (A == "a2") * (B == "b4") +
             ep[match(plot_id, sprintf("p%02d", 1:np))] + rnorm(np * nB, sd = 0.6), 4)
splitplot <- write_and_read("splitplot", data.frame(y = y, A = A, B = B, plot = plot_id))

# crossed: 24 subjects x 16 items, condition counterbalanced over both, a covariate
set.seed(1302)
ns <- 24; ni <- 16
is <- rep(1:ns, times = ni); ii <- rep(1:ni, each = ns)
cond <- ifelse((is + ii) %% 2 == 0, "ctl", "trt")
x <- round(rnorm(ns * ni), 4)
es0 <- rnorm(ns, sd = 0.8); es1 <- rnorm(ns, sd = 0.4); ei <- rnorm(ni, sd = 0.5)
y <- round(5 + 0.4 * (cond == "trt") + 0.3 * x + es0[is] + es1[is] * (cond == "trt") + ei[ii] +
             rnorm(ns * ni, sd = 0.8), 4)
crossed_cond <- write_and_read("crossed_cond", data.frame(y = y, cond = cond, x = x,
                                                     subj = sprintf("s%02d", is),
                                                     item = sprintf("i%02d", ii)))

# unbalanced: 30 clusters of 3-10 rows; A between clusters (unequal), B within (unequal
# probabilities), a covariate, and an A x B interaction
set.seed(1303)
ng <- 30
size <- sample(3:10, ng, replace = TRUE)
gi <- rep(1:ng, times = size); n <- length(gi)
Ag <- sample(c("ctl", "trt"), ng, replace = TRUE, prob = c(0.4, 0.6))
A <- Ag[gi]
B <- sample(c("lo", "mid", "hi"), n, replace = TRUE, prob = c(0.5, 0.3, 0.2))
x <- round(rnorm(n, mean = 2), 4)
b0 <- rnorm(ng, sd = 0.8); b1 <- rnorm(ng, sd = 0.3)
y <- round(1 + 0.5 * (A == "trt") + c(lo = 0, mid = 0.3, hi = 0.9)[B] +
             0.4 * (A == "trt") * (B == "hi") + 0.6 * x + b0[gi] + b1[gi] * x +
             rnorm(n, sd = 0.7), 4)
unbal_inter <- write_and_read("unbal_inter", data.frame(y = y, A = A, B = B, x = x,
                                                  g = sprintf("g%02d", gi)))


# data sets of make_lme4_designs.R, read the same way
for (nm in c("categorical", "rankdef", "singular", "nested")) {
  assign(nm, read.csv(file.path(out_dir, paste0(nm, ".csv")), stringsAsFactors = TRUE))
}

# --- models ---------------------------------------------------------------------------
specs <- list(
  list(name = "sleep_slope", data = "sleepstudy", formula = "Reaction ~ Days + (Days | Subject)", REML = TRUE),
  list(name = "sleep_slope_ML", data = "sleepstudy", formula = "Reaction ~ Days + (Days | Subject)", REML = FALSE),
  list(name = "sleep_int", data = "sleepstudy", formula = "Reaction ~ Days + (1 | Subject)", REML = TRUE),
  list(name = "sleep_uncorr", data = "sleepstudy", formula = "Reaction ~ Days + (Days || Subject)", REML = TRUE),
  list(name = "splitplot", data = "splitplot", formula = "y ~ A * B + (1 | plot)", REML = TRUE),
  list(name = "crossed", data = "crossed_cond", formula = "y ~ cond + x + (1 + cond | subj) + (1 | item)", REML = TRUE),
  list(name = "unbal_u1", data = "unbal_inter", formula = "y ~ A * B + x + (1 | g)", REML = TRUE),
  list(name = "unbal_u2", data = "unbal_inter", formula = "y ~ A * B + A * x + (1 + x | g)", REML = TRUE),
  list(name = "unbal_u2_ML", data = "unbal_inter", formula = "y ~ A * B + A * x + (1 + x | g)", REML = FALSE),
  list(name = "unbal_sum", data = "unbal_inter",
       formula = "y ~ C(A, contr.sum) * C(B, contr.sum) + x + (1 | g)", REML = TRUE),
  # more shapes of formula: numeric only, no intercept, interactions without their main effects,
  # a three-way interaction with a covariate, I(), a rank-deficient X, a boundary fit, nesting
  list(name = "unbal_numeric", data = "unbal_inter", formula = "y ~ x + (x | g)", REML = TRUE),
  list(name = "unbal_x_in_A", data = "unbal_inter", formula = "y ~ B + x:A + (1 | g)", REML = TRUE),
  list(name = "unbal_threeway", data = "unbal_inter", formula = "y ~ A * B * x + (1 | g)", REML = TRUE),
  list(name = "intercept_only", data = "unbal_inter", formula = "y ~ 1 + (1 | g)", REML = TRUE),
  list(name = "cat_interaction", data = "categorical", formula = "y ~ x * f + (1 | g)", REML = TRUE),
  list(name = "cat_noint", data = "categorical", formula = "y ~ 0 + f + x + (1 | g)", REML = TRUE),
  list(name = "cat_poly", data = "categorical", formula = "y ~ x + I(x^2) + (1 | g)", REML = TRUE),
  list(name = "cat_factor_slope", data = "categorical", formula = "y ~ f + (0 + f | g)", REML = TRUE),
  list(name = "rankdef", data = "rankdef", formula = "y ~ x + x2 + f * h + (1 | g)", REML = TRUE),
  list(name = "singular_slope", data = "singular", formula = "y ~ x + (x | g)", REML = TRUE),
  list(name = "nested", data = "nested", formula = "y ~ x + (1 | a/b)", REML = TRUE)
)

tab <- function(df) {
  df <- as.data.frame(df)
  c(list(rownames = rownames(df)), lapply(df, function(v) unname(as.vector(v))))
}
num <- function(m) unname(as.matrix(m))

# Nakagawa & Schielzeth's variances from the published formulas, every random-effects term
# counted, each with its own model matrix (mmbook.inference.r2). performance 0.10.2 / insight
# 0.19.0 keep only the first term of a grouping factor, so for (Days || Subject) they differ.
r2_formula <- function(m) {
  vf <- var(as.vector(getME(m, "X") %*% fixef(m)))
  mm <- getME(m, "mmList")     # each term's own model matrix, n x q_k
  Tl <- getME(m, "Tlist")      # each term's relative covariance factor T_k (psi_k = sigma^2 T_k T_k')
  vr <- sum(mapply(function(Z, T) {
    S <- sigma(m)^2 * T %*% t(T)
    mean(rowSums((Z %*% S) * Z))
  }, mm, Tl))
  ve <- sigma(m)^2
  list(var_fixed = vf, var_random = vr, var_residual = ve,
       r2_marginal = vf / (vf + vr + ve), r2_conditional = (vf + vr) / (vf + vr + ve),
       icc_adjusted = vr / (vr + ve), icc_unadjusted = vr / (vf + vr + ve))
}

results <- list()
fits <- list()
for (s in specs) {
  # bquote puts the formula and the data set's name into the call, so summaries print them
  warn <- character(0)
  m <- withCallingHandlers(
    eval(bquote(lmer(.(as.formula(s$formula)), data = .(as.name(s$data)), REML = .(s$REML)))),
    warning = function(w) { warn <<- c(warn, conditionMessage(w)); invokeRestart("muffleWarning") },
    message = function(msg) invokeRestart("muffleMessage"))
  fits[[s$name]] <- m
  r <- list(name = s$name, data = s$data, formula = s$formula, REML = s$REML, warnings = warn,
            theta = unname(getME(m, "theta")), sigma = sigma(m),
            fixef = unname(fixef(m)), fixef_names = names(fixef(m)),
            vcov = num(vcov(m)),
            vcov_varpar = num(m@vcov_varpar),
            jac = lapply(m@Jac_list, num),
            coef_satterthwaite = tab(summary(m, ddf = "Satterthwaite")$coefficients))
  r$anova_lme4 <- tab(anova(as(m, "lmerMod")))   # lme4's one-model table, lmerTest's ddf = "lme4"
  for (type in c("1", "2", "3")) {
    r[[paste0("anova_", type, "_satterthwaite")]] <- tab(suppressMessages(
      anova(m, type = type, ddf = "Satterthwaite")))
  }
  if (s$REML) {
    r$coef_kenward_roger <- tab(summary(m, ddf = "Kenward-Roger")$coefficients)
    r$vcov_adj <- num(as.matrix(vcovAdj(m)))
    for (type in c("1", "2", "3")) {
      r[[paste0("anova_", type, "_kenward_roger")]] <- tab(suppressMessages(
        anova(m, type = type, ddf = "Kenward-Roger")))
    }
  } else {
    r$kenward_roger_error <- tryCatch({summary(m, ddf = "Kenward-Roger"); ""},
                                      error = function(e) conditionMessage(e))
  }
  r2 <- suppressWarnings(r2_nakagawa(m))
  ic <- suppressWarnings(icc(m))
  r$r2_marginal <- unname(r2$R2_marginal); r$r2_conditional <- unname(r2$R2_conditional)
  r$icc_adjusted <- if (is.data.frame(ic)) ic$ICC_adjusted else NA
  r$icc_unadjusted <- if (is.data.frame(ic)) ic$ICC_unadjusted else NA
  r$r2_formula <- r2_formula(m)
  results[[s$name]] <- r
}

# --- contest: a 1-D and a 2-D contrast on the unbalanced model, with and without rhs ----
m <- fits$unbal_u1
p <- length(fixef(m))
L1 <- numeric(p); L1[2] <- 1; L1[6] <- 0.5                     # AT + 0.5 AT:Blo
L2 <- rbind(replace(numeric(p), 3, 1), replace(numeric(p), 4, 1))  # Blo, Bmid
contest_out <- list(
  L1 = L1, L2 = num(L2),
  oneD_satterthwaite = tab(contest(m, L1, joint = FALSE, ddf = "Satterthwaite")),
  oneD_kenward_roger = tab(contest(m, L1, joint = FALSE, ddf = "Kenward-Roger")),
  oneD_rhs_satterthwaite = tab(contest(m, L1, rhs = 0.2, joint = FALSE, ddf = "Satterthwaite")),
  twoD_satterthwaite = tab(contest(m, L2, ddf = "Satterthwaite")),
  twoD_kenward_roger = tab(contest(m, L2, ddf = "Kenward-Roger")),
  twoD_rhs_satterthwaite = tab(contest(m, L2, rhs = c(0.1, -0.2), ddf = "Satterthwaite")),
  twoD_rhs_kenward_roger = tab(contest(m, L2, rhs = c(0.1, -0.2), ddf = "Kenward-Roger")),
  rows_satterthwaite = tab(contest(m, L2, joint = FALSE, ddf = "Satterthwaite", level = 0.9))
)

# --- emmeans: marginal means and pairwise comparisons --------------------------------
emm_case <- function(model, spec, mode) {
  e <- emmeans(model, spec, lmer.df = mode)
  pr <- pairs(e, adjust = "none")
  out <- list(emmeans = tab(summary(e)))
  for (adj in c("tukey", "holm", "bonferroni", "none")) {
    out[[paste0("pairs_", adj)]] <- tab(summary(pairs(e, adjust = adj), infer = c(TRUE, TRUE)))
  }
  out$emmeans_90 <- tab(summary(e, level = 0.9))
  out
}
emm_out <- list(
  splitplot_A_kr = emm_case(fits$splitplot, ~A, "kenward-roger"),
  splitplot_A_satterthwaite = emm_case(fits$splitplot, ~A, "satterthwaite"),
  splitplot_B_kr = emm_case(fits$splitplot, ~B, "kenward-roger"),
  unbal_u1_B_kr = emm_case(fits$unbal_u1, ~B, "kenward-roger"),
  unbal_u1_A_satterthwaite = emm_case(fits$unbal_u1, ~A, "satterthwaite"),
  unbal_u1_AB_kr = emm_case(fits$unbal_u1, ~A * B, "kenward-roger"),
  unbal_u2_B_kr = emm_case(fits$unbal_u2, ~B, "kenward-roger"),
  crossed_cond_kr = emm_case(fits$crossed, ~cond, "kenward-roger")
)

out <- list(
  source = paste0("tests/data/make_lmertest.R; ", R.version.string,
                  ", lme4 ", packageVersion("lme4"), ", lmerTest ", packageVersion("lmerTest"),
                  ", pbkrtest ", packageVersion("pbkrtest"), ", emmeans ", packageVersion("emmeans"),
                  ", performance ", packageVersion("performance"), ", insight ", packageVersion("insight"),
                  ", numDeriv ", packageVersion("numDeriv"), ", Matrix ", packageVersion("Matrix")),
  models = results, contest = contest_out, emmeans = emm_out)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, null = "null", na = "null", pretty = TRUE),
           "tests/data/lmertest.json")

sink("tests/data/lmertest_sleepstudy_summary.txt")
print(summary(fits$sleep_slope))
sink()
