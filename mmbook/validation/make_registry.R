# The registry of reference fits: lme4 1.1-31's results for every model the book fits and for
# lme4's standard models on the classic data sets. Writes mmbook/validation/registry.json.
#
# Run from the repository root (R 4.2.2, lme4 1.1-31, nlme 3.1-162), in two steps: Python
# writes the frames that are not in an R package (the book's derived and simulated frames,
# and the document's simulations) as CSV with their column types, then R fits every model:
#     PYTHONPATH=. python -m mmbook datasets --export /tmp/mmbook-frames
#     OPENBLAS_NUM_THREADS=1 Rscript mmbook/validation/make_registry.R /tmp/mmbook-frames
# (one BLAS thread: R's multithreaded BLAS moves the last digits of glmer's fits between runs)
#
# Each model is fitted twice:
#   "default": lmer()/glmer() with lme4's default settings, what a user of lme4 sees;
#   "tight":   restarted from the default optimum with bobyqa run to rhoend = 1e-12, which
#              reaches the optimum itself where the default stops a little short of it (the
#              criterion is flat there, so the estimates differ at first order: sleepstudy's
#              intercept variance 612.10 by default, 612.09 at the optimum).
#              For glmer the inner PIRLS is also run to tolPwrss = 1e-10: with its default
#              (1e-7) the deviance bobyqa sees is noisy, and on the glmm chapter's 6,000
#              binary rows the restart ended 0.01 above the default fit (1e-10 reaches a
#              lower deviance than 1e-7 on every GLMM here; 1e-12 is not reached by PIRLS on
#              grouseticks, whose restart then ends 0.006 above the default).
# Both are stored at full precision (17 significant digits): criterion (REML criterion or
# deviance; -2 logLik for a GLMM), logLik, theta, fixef, vcov, sigma, VarCorr (as
# as.data.frame(VarCorr(m))), isSingular, lme4's messages and, for the tight fit, the
# conditional modes ranef() of every level. For every data set the registry also records
# R's checksum of the frame it fitted (sum and sum of squares of each numeric column; for a
# factor or text column the number of rows of each label, labels in C-locale order), so the
# Python side can tell that it fits the same numbers. The file is xz-compressed JSON
# (mmbook/validation/registry.json.xz; read it with mmbook.validation.registry(), or
# `xzcat registry.json.xz | jq`); its layout is described in mmbook/validation/__init__.py.
suppressMessages({library(lme4); library(nlme)})
library(jsonlite)

args <- commandArgs(trailingOnly = TRUE)
frames_dir <- if (length(args)) args[1] else "/tmp/mmbook-frames"
frames_meta <- fromJSON(file.path(frames_dir, "frames.json"), simplifyVector = FALSE)
R_DATA <- list(lme4 = c("sleepstudy", "Dyestuff", "Dyestuff2", "Penicillin", "Pastes", "cake", "cbpp",
                        "grouseticks", "VerbAgg", "InstEval"),
               nlme = c("Orthodont", "Machines", "ergoStool", "Rail", "Oats"))

# ----------------------------------------------------------------------------- data
c_sort <- function(x) sort(unique(x), method = "radix")  # C-locale order, as Python's sorted()

read_frame <- function(name) {
  m <- frames_meta[[name]]
  d <- read.csv(file.path(frames_dir, m$file), colClasses = "character", check.names = FALSE)
  for (col in m$columns) {
    x <- d[[col$name]]
    d[[col$name]] <- switch(col$dtype,
      float64 = as.numeric(x),
      int64 = as.integer(x),
      category = factor(x, levels = unlist(col$levels), ordered = isTRUE(col$ordered)),
      string = factor(x, levels = c_sort(x)))
  }
  d
}

get_frame <- function(name) {
  for (pkg in names(R_DATA))
    if (name %in% R_DATA[[pkg]]) {
      d <- as.data.frame(get(name, envir = asNamespace(pkg)))
      attr(d, "formula") <- NULL
      return(d)
    }
  if (is.null(frames_meta[[name]])) stop("no frame ", name, " in ", frames_dir)
  read_frame(name)
}

# Numbers go into the JSON verbatim, as the shortest text that reads back as the same double
# (jsonlite's own output stops at 15 significant digits).
jnum <- function(x) {
  x <- as.double(x)
  s <- sprintf("%.15g", x)
  bad <- is.finite(x) & suppressWarnings(as.numeric(s)) != x
  s[bad] <- sprintf("%.17g", x[bad])
  s[!is.finite(x)] <- "null"
  s
}
verbatim <- function(s) structure(s, class = "json")
jscalar <- function(x) verbatim(jnum(x))
jarray <- function(x) verbatim(paste0("[", paste(jnum(x), collapse = ","), "]"))
jmatrix <- function(m) verbatim(paste0("[", paste(apply(m, 1, function(r) paste0("[", paste(jnum(r), collapse = ","),
                                                                                  "]")), collapse = ","), "]"))
jobject <- function(v) verbatim(paste0("{", paste0(vapply(names(v), function(n) toJSON(n, auto_unbox = TRUE), ""),
                                                   ":", jnum(unlist(v)), collapse = ","), "}"))

frame_checksum <- function(d) {
  out <- list()
  for (v in names(d)) {
    x <- d[[v]]
    if (is.numeric(x)) {
      out[[v]] <- list(sum = jscalar(sum(as.double(x))), sumsq = jscalar(sum(as.double(x)^2)))
    } else {
      lab <- as.character(x)
      out[[v]] <- list(counts = as.list(as.integer(table(factor(lab, levels = c_sort(lab))))))
    }
  }
  out
}

# ----------------------------------------------------------------------------- models
models <- list()
add <- function(name, data, formula, REML = TRUE, origin = "lme4", chapters = character(),
                structure = "", family = NULL, note = "", nAGQ = 1L) {
  models[[length(models) + 1]] <<- list(name = name, data = data, formula = formula, REML = REML,
                                        family = family, nAGQ = nAGQ, origin = origin, chapters = chapters,
                                        structure = structure, note = note)
}

# every model the book fits (origin "book"; the chapters that fit it)
ss_slope <- c("applied_example", "form1_varying_coefficients", "form2_separate_regressions",
              "form3_design_matrices", "form5_correlated_errors", "form6_penalized_regression",
              "form7_bayesian", "other_topics")
ss_int <- c("form1_varying_coefficients", "form4_error_terms", "form5_correlated_errors",
            "form6_penalized_regression", "other_topics")
add("sleepstudy_slope_REML", "sleepstudy", "Reaction ~ Days + (Days | Subject)", TRUE, "book", ss_slope,
    "correlated random intercepts and slopes")
add("sleepstudy_slope_ML", "sleepstudy", "Reaction ~ Days + (Days | Subject)", FALSE, "book",
    c("form5_correlated_errors", "other_topics"), "correlated random intercepts and slopes")
add("sleepstudy_int_REML", "sleepstudy", "Reaction ~ Days + (1 | Subject)", TRUE, "book", ss_int,
    "random intercepts")
add("sleepstudy_int_ML", "sleepstudy", "Reaction ~ Days + (1 | Subject)", FALSE, "book",
    c("form5_correlated_errors", "other_topics"), "random intercepts")
add("sleepstudy_null_REML", "sleepstudy", "Reaction ~ 1 + (1 | Subject)", TRUE, "book",
    "form2_separate_regressions", "random intercepts, no covariate")
add("deprived_int_REML", "sleepstudy_deprived", "Reaction ~ Days + (1 | Subject)", TRUE, "book",
    "form1_varying_coefficients", "random intercepts")
add("deprived_baseline_REML", "sleepstudy_deprived", "Reaction ~ Days + baseline_c + (1 | Subject)", TRUE,
    "book", "form1_varying_coefficients", "random intercepts, a subject-level covariate")
add("two_level_REML", "sleepstudy_two_level",
    "Reaction ~ 0 + level2_one + level2_baseline + Days + (1 | Subject)", TRUE, "book",
    "form1_varying_coefficients", "random intercepts, no intercept column")
add("dropout_int_REML", "sleepstudy_dropout", "Reaction ~ Days + (1 | Subject)", TRUE, "book",
    "form2_separate_regressions", "random intercepts, unbalanced")
add("dropout_slope_REML", "sleepstudy_dropout", "Reaction ~ Days + (Days | Subject)", TRUE, "book",
    "form2_separate_regressions", "correlated random slopes, unbalanced")
add("sim_ri_REML", "sim_ri", "y ~ x + (1 | clus)", TRUE, "book", "simulate", "random intercepts")
add("sim_ri_small_tau_REML", "sim_ri_small_tau", "y ~ x + (1 | clus)", TRUE, "book", "simulate",
    "random intercepts, small variance")
add("sim_ris_REML", "sim_ris", "y ~ x + (x | clus)", TRUE, "book", c("appendix_slopes", "form4_error_terms"),
    "correlated random slopes")
add("sim_ris_ML", "sim_ris", "y ~ x + (x | clus)", FALSE, "book", "form4_error_terms",
    "correlated random slopes")
add("sim_ris_marginal_REML", "sim_ris_marginal", "y_marginal ~ x + (x | clus)", TRUE, "book",
    "form4_error_terms", "correlated random slopes")
add("sim_ris_marginal_ML", "sim_ris_marginal", "y_marginal ~ x + (x | clus)", FALSE, "book",
    "form4_error_terms", "correlated random slopes")
add("sim_ris_cholesky_REML", "sim_ris_cholesky", "y5 ~ x + (x | clus)", TRUE, "book", "appendix_slopes",
    "correlated random slopes")
add("sim_ris_bycluster_REML", "sim_ris_bycluster", "y4 ~ x + (x | clus)", TRUE, "book", "appendix_slopes",
    "correlated random slopes")
add("pupils_REML", "pupils", "score ~ prior + (1 | school)", TRUE, "book", "other_topics", "random intercepts")
add("pupils_programme_REML", "pupils", "score ~ prior + programme + (1 | school)", TRUE, "book", "other_topics",
    "random intercepts, a school-level covariate")
add("schools_nested_REML", "schools_classes", "y ~ 1 + (1 | school/class)", TRUE, "book", "other_topics",
    "nested")
add("reading_crossed_REML", "reading", "rt ~ x + (1 | subject) + (1 | item)", TRUE, "book", "other_topics",
    "crossed")
add("panel_ri_REML", "panel", "y ~ x + (1 | g)", TRUE, "book", "other_topics", "random intercepts")
add("panel_hybrid_REML", "panel", "y ~ x_within + x_mean + (1 | g)", TRUE, "book", "other_topics",
    "random intercepts, within-between")
add("panel_mundlak_REML", "panel", "y ~ x + x_mean + (1 | g)", TRUE, "book", "other_topics",
    "random intercepts, Mundlak")
add("sleepstudy_uncorr_REML", "sleepstudy", "Reaction ~ Days + (Days || Subject)", TRUE, "book",
    "applied_example", "uncorrelated random intercepts and slopes")
add("sleepstudy_nodays_ML", "sleepstudy", "Reaction ~ 1 + (Days | Subject)", FALSE, "book", "other_topics",
    "correlated random intercepts and slopes, no fixed slope")
add("centred_int_REML", "sleepstudy_centred", "Reaction ~ Days_c + (1 | Subject)", TRUE, "book",
    "form1_varying_coefficients", "random intercepts, centred covariate")
add("cluster_covariate_REML", "cluster_covariate", "y ~ x + x_star + (1 | clus)", TRUE, "book",
    "form1_varying_coefficients", "random intercepts, a cluster-level covariate")
add("cluster_level2_REML", "cluster_covariate", "y ~ 0 + level2_one + level2_xstar + x + (1 | clus)", TRUE,
    "book", "form1_varying_coefficients", "random intercepts, no intercept column")
add("cluster_none_REML", "cluster_covariate", "y ~ x + (1 | clus)", TRUE, "book",
    "form1_varying_coefficients", "random intercepts")
add("split_plot_REML", "split_plot", "harvest ~ irrigation + variety + (1 | field)", TRUE, "book",
    "other_topics", "random intercepts, split plot")
add("split_plot_ML", "split_plot", "harvest ~ irrigation + variety + (1 | field)", FALSE, "book",
    "other_topics", "random intercepts, split plot")
add("split_plot_no_irrigation_ML", "split_plot", "harvest ~ variety + (1 | field)", FALSE, "book",
    "other_topics", "random intercepts, split plot")
add("split_plot_no_variety_ML", "split_plot", "harvest ~ irrigation + (1 | field)", FALSE, "book",
    "other_topics", "random intercepts, split plot")
add("few_clusters_REML", "few_clusters", "y ~ 1 + (1 | g)", TRUE, "book", "other_topics",
    "random intercepts, 8 clusters")
add("cbpp_binomial", "cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)", NA, "book", "glmm",
    "binomial GLMM", family = "binomial")
add("cbpp_binomial_agq25", "cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)", NA, "book",
    "glmm", "binomial GLMM, adaptive Gauss-Hermite", family = "binomial", nAGQ = 25L)
add("cbpp_animals_binomial", "cbpp_animals", "y ~ period + (1 | herd)", NA, "book", "glmm",
    "binary GLMM, one row per animal", family = "binomial")
add("glmm_binary_binomial", "glmm_binary", "y ~ x + (1 | cluster)", NA, "book", "glmm",
    "binary GLMM, 500 clusters", family = "binomial")
add("glmm_counts_poisson", "glmm_counts", "y ~ x + offset(log(t)) + (x | site)", NA, "book", "glmm",
    "Poisson GLMM, offset, correlated random slopes", family = "poisson")

# lme4's and nlme's standard models on their data sets
add("Dyestuff_REML", "Dyestuff", "Yield ~ 1 + (1 | Batch)", TRUE, "lme4", , "random intercepts")
add("Dyestuff_ML", "Dyestuff", "Yield ~ 1 + (1 | Batch)", FALSE, "lme4", , "random intercepts")
add("Dyestuff2_REML", "Dyestuff2", "Yield ~ 1 + (1 | Batch)", TRUE, "lme4", , "singular")
add("Dyestuff2_ML", "Dyestuff2", "Yield ~ 1 + (1 | Batch)", FALSE, "lme4", , "singular")
add("Penicillin_REML", "Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", TRUE, "lme4", , "crossed")
add("Penicillin_ML", "Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", FALSE, "lme4", , "crossed")
add("Pastes_nested_REML", "Pastes", "strength ~ 1 + (1 | batch/cask)", TRUE, "lme4", , "nested")
add("Pastes_sample_REML", "Pastes", "strength ~ 1 + (1 | batch) + (1 | sample)", TRUE, "lme4", ,
    "nested, explicit labels")
add("cake_temp_ML", "cake", "angle ~ recipe + temp + (1 | recipe:replicate)", FALSE, "lme4", ,
    "random intercepts, interaction grouping factor")
add("cake_ordered_REML", "cake", "angle ~ recipe * temperature + (1 | recipe:replicate)", TRUE, "lme4", ,
    "ordered factor (polynomial contrasts)")
add("Orthodont_slope_REML", "Orthodont", "distance ~ age + (age | Subject)", TRUE, "nlme", ,
    "correlated random slopes")
add("Orthodont_sex_ML", "Orthodont", "distance ~ age * Sex + (1 | Subject)", FALSE, "nlme", ,
    "random intercepts, factor interaction")
add("Machines_nested_REML", "Machines", "score ~ Machine + (1 | Worker) + (1 | Worker:Machine)", TRUE,
    "nlme", , "nested interaction")
add("Machines_vector_REML", "Machines", "score ~ Machine + (0 + Machine | Worker)", TRUE, "nlme", ,
    "3 x 3 unstructured covariance")
add("ergoStool_REML", "ergoStool", "effort ~ Type + (1 | Subject)", TRUE, "nlme", , "random intercepts")
add("Rail_REML", "Rail", "travel ~ 1 + (1 | Rail)", TRUE, "nlme", , "random intercepts")
add("Rail_ML", "Rail", "travel ~ 1 + (1 | Rail)", FALSE, "nlme", , "random intercepts")
add("Oats_nested_REML", "Oats", "yield ~ nitro + Variety + (1 | Block/Variety)", TRUE, "nlme", , "nested")
add("Oats_nested_ML", "Oats", "yield ~ nitro + Variety + (1 | Block/Variety)", FALSE, "nlme", , "nested")
add("reading_slopes_REML", "reading", "rt ~ x + (x | subject) + (1 | item)", TRUE, "lme4", ,
    "crossed, correlated random slopes", note = "by-subject slopes crossed with items: no statsmodels form")
add("InstEval_dept_REML", "InstEval", "y ~ service + (1 | d)", TRUE, "lme4", , "random intercepts, large")
add("InstEval_crossed_REML", "InstEval", "y ~ service + (1 | s) + (1 | d)", TRUE, "lme4", , "crossed, large")

# GLMMs (glmer, Laplace approximation): reference numbers for mmbook's glmer
add("grouseticks_poisson", "grouseticks", "TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)",
    NA, "lme4", , "Poisson GLMM, observation-level effect", family = "poisson")
add("VerbAgg_binomial", "VerbAgg", "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)", NA, "lme4", ,
    "binary GLMM, crossed", family = "binomial")

# ----------------------------------------------------------------------------- fits
fit_one <- function(spec, d, start = NULL, tight = FALSE) {
  msgs <- character()
  f <- as.formula(spec$formula)
  m <- withCallingHandlers({
    if (is.null(spec$family)) {
      ctrl <- if (tight) lmerControl(optimizer = "bobyqa",
                                     optCtrl = list(rhobeg = 2e-3, rhoend = 1e-12, maxfun = 1e5))
              else lmerControl()
      lmer(f, data = d, REML = spec$REML, control = ctrl, start = start)
    } else {
      ctrl <- if (tight) glmerControl(optimizer = "bobyqa", tolPwrss = 1e-10,
                                      optCtrl = list(rhobeg = 2e-3, rhoend = 1e-12, maxfun = 1e5))
              else glmerControl()
      glmer(f, data = d, family = spec$family, nAGQ = spec$nAGQ, control = ctrl, start = start)
    }
  }, warning = function(w) { msgs <<- c(msgs, conditionMessage(w)); invokeRestart("muffleWarning") },
     message = function(m) { msgs <<- c(msgs, trimws(conditionMessage(m))); invokeRestart("muffleMessage") })
  list(model = m, messages = unique(c(msgs, m@optinfo$conv$lme4$messages)))
}

describe <- function(fm, with_ranef) {
  m <- fm$model
  vc <- as.data.frame(VarCorr(m))
  glmm <- !is(m, "lmerMod")
  out <- list(
    criterion = jscalar(if (glmm) -2 * as.numeric(logLik(m)) else if (isREML(m)) REMLcrit(m) else deviance(m)),
    logLik = jscalar(as.numeric(logLik(m))),
    theta = jarray(getME(m, "theta")),
    theta_names = as.list(names(getME(m, "theta"))),
    fixef = jobject(fixef(m)),
    vcov = jmatrix(as.matrix(vcov(m))),
    sigma = jscalar(sigma(m)),
    varcorr = list(grp = as.list(vc$grp), var1 = as.list(vc$var1), var2 = as.list(vc$var2),
                   vcov = jarray(vc$vcov), sdcor = jarray(vc$sdcor)),
    isSingular = isSingular(m),
    messages = as.list(fm$messages),
    optimizer = m@optinfo$optimizer,
    feval = m@optinfo$feval,
    nobs = nobs(m),
    ngroups = as.list(ngrps(m))
  )
  if (with_ranef) {
    out$ranef <- lapply(ranef(m), function(r) list(levels = as.list(rownames(r)), columns = as.list(names(r)),
                                                   values = lapply(r, jarray)))
  }
  out
}

frames_used <- unique(vapply(models, function(s) s$data, ""))
frames <- list()
data_cache <- list()
for (nm in frames_used) {
  data_cache[[nm]] <- get_frame(nm)
  frames[[nm]] <- list(rows = nrow(data_cache[[nm]]), checksum = frame_checksum(data_cache[[nm]]))
}

entries <- list()
for (spec in models) {
  d <- data_cache[[spec$data]]
  t0 <- proc.time()[["elapsed"]]
  def <- fit_one(spec, d)
  start <- if (is.null(spec$family)) getME(def$model, "theta")
           else list(theta = getME(def$model, "theta"), fixef = fixef(def$model))
  tight <- fit_one(spec, d, start = start, tight = TRUE)
  if (-2 * as.numeric(logLik(tight$model)) > -2 * as.numeric(logLik(def$model)) + 1e-9)
    stop(spec$name, ": the tight fit ended above the default one")
  entries[[length(entries) + 1]] <- c(
    spec[c("name", "data", "formula", "origin", "structure", "note")],
    list(kind = if (is.null(spec$family)) "lmer" else "glmer",
         REML = if (is.null(spec$family)) spec$REML else NA,
         family = if (is.null(spec$family)) NA else spec$family,
         nAGQ = if (is.null(spec$family)) NA else spec$nAGQ,
         chapters = as.list(spec$chapters),
         lme4 = list(default = describe(def, FALSE), tight = describe(tight, TRUE))))
  cat(sprintf("%-26s %8.1f s  criterion %.10f -> %.10f\n", spec$name, proc.time()[["elapsed"]] - t0,
              -2 * as.numeric(logLik(def$model)), -2 * as.numeric(logLik(tight$model))))
}

out <- list(
  schema = "mmbook-registry/1",
  source = paste0("mmbook/validation/make_registry.R; ", R.version.string, ", lme4 ",
                  as.character(packageVersion("lme4")), ", Matrix ", as.character(packageVersion("Matrix")),
                  ", nlme ", as.character(packageVersion("nlme"))),
  tight_control = paste("bobyqa from the default optimum, rhobeg = 2e-3, rhoend = 1e-12, maxfun = 1e5;",
                        "glmer also tolPwrss = 1e-10"),
  frames = frames,
  models = entries
)
con <- xzfile("mmbook/validation/registry.json.xz", "w", compression = 9)
writeLines(toJSON(out, auto_unbox = TRUE, pretty = FALSE, na = "null", json_verbatim = TRUE), con)
close(con)
