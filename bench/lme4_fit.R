# Fit one benchmark case with lme4 (called by bench/run.py; not a project dependency).
#
#   Rscript bench/lme4_fit.R DIR FORMULA REML RUNS [FAMILY]
#
# FAMILY "gaussian" (the default) fits lmer(); any other family ("binomial", "poisson") fits
# glmer() with lme4's default glmerControl(), and the criterion reported is -2 logLik (the
# Laplace deviance). A character response of a GLMM is turned into a factor before the timed
# call (R's binomial() does not take character vectors); its predictors stay character.
#
# DIR holds the data as the runner wrote it (bench/run.py: write_for_r):
#   columns.tsv       name, kind ("double" or "labels"), rows
#   <name>.f64        a numeric column: little-endian float64
#   <name>.i32        a label column: 0-based codes, little-endian int32
#   <name>.levels     ... and its labels, one per line
# Label columns become character vectors (R >= 4 reads strings from a CSV that
# way), so lmer() converts them to factors inside the timed call, just as
# mmbook factorises its string columns inside its timed call.
#
# Only the lmer() call is timed (wall clock, Sys.time(); CPU time from proc.time() too), after one untimed warm-up fit
# on sleepstudy. Output: tab-separated "key<TAB>value" lines on stdout.

args <- commandArgs(trailingOnly = TRUE)
dir <- args[1]
form <- as.formula(args[2])
reml <- as.logical(args[3])
runs <- as.integer(args[4])
family <- if (length(args) >= 5) args[5] else "gaussian"
glmm <- family != "gaussian"

suppressPackageStartupMessages(library(lme4))

meta <- read.delim(file.path(dir, "columns.tsv"), stringsAsFactors = FALSE)
cols <- list()
for (i in seq_len(nrow(meta))) {
  name <- meta$name[i]
  n <- meta$rows[i]
  if (meta$kind[i] == "double") {
    cols[[name]] <- readBin(file.path(dir, paste0(name, ".f64")), "double", n = n,
                            size = 8, endian = "little")
  } else {
    codes <- readBin(file.path(dir, paste0(name, ".i32")), "integer", n = n,
                     size = 4, endian = "little")
    lev <- readLines(file.path(dir, paste0(name, ".levels")))
    cols[[name]] <- lev[codes + 1L]
  }
}
df <- as.data.frame(cols, stringsAsFactors = FALSE)
rm(cols)

invisible(lmer(Reaction ~ Days + (Days | Subject), sleepstudy))  # warm-up, untimed
if (glmm) {
  invisible(glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, family = binomial))
  resp <- all.vars(form)[1]
  if (is.character(df[[resp]])) df[[resp]] <- factor(df[[resp]])
}

out <- function(key, value) cat(key, "\t", paste(value, collapse = " "), "\n", sep = "")
fmt <- function(x) sprintf("%.17g", x)

notes <- character(0)
times <- numeric(0)
cpu <- numeric(0)
for (r in seq_len(runs)) {
  invisible(gc())
  c0 <- proc.time()
  t0 <- Sys.time()
  fit <- withCallingHandlers(
    if (glmm) glmer(form, data = df, family = family) else lmer(form, data = df, REML = reml),
    warning = function(w) {
      notes <<- c(notes, conditionMessage(w))
      invokeRestart("muffleWarning")
    },
    message = function(m) {
      notes <<- c(notes, trimws(conditionMessage(m)))
      invokeRestart("muffleMessage")
    }
  )
  times <- c(times, as.numeric(difftime(Sys.time(), t0, units = "secs")))
  c1 <- proc.time() - c0
  cpu <- c(cpu, c1[["user.self"]] + c1[["sys.self"]])
}

out("times", fmt(times))
out("cpu_times", fmt(cpu))
out("criterion", fmt(if (glmm) -2 * as.numeric(logLik(fit)) else if (reml) REMLcrit(fit) else deviance(fit)))
out("fixef_names", names(fixef(fit)))
out("fixef", fmt(unname(fixef(fit))))
out("theta", fmt(unname(getME(fit, "theta"))))
out("sigma", fmt(sigma(fit)))
out("optimizer", paste(fit@optinfo$optimizer, collapse = " "))
out("feval", fit@optinfo$feval)
conv <- c(unique(notes), fit@optinfo$conv$lme4$messages)
out("warnings", gsub("[\t\n]", " ", paste(unique(conv), collapse = " | ")))
out("R", R.version$version.string)
out("lme4", as.character(packageVersion("lme4")))
out("Matrix", as.character(packageVersion("Matrix")))
out("BLAS", gsub("[\t\n]", " ", extSoftVersion()[["BLAS"]]))
out("LAPACK", La_library())
