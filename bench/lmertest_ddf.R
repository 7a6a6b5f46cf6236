# Time lmerTest's Satterthwaite table on one benchmark case (called by bench/ddf.py).
#
#   Rscript bench/lmertest_ddf.R DIR FORMULA RUNS
#
# DIR holds the data as bench/run.py's write_for_r writes it (see bench/lme4_fit.R).
# lme4's fit is not timed; each run times as_lmerModLmerTest(fit) (numDeriv's Hessian of the
# deviance and Jacobian of vcov(beta)) plus summary(m)$coefficients. Prints one JSON line.
args <- commandArgs(trailingOnly = TRUE)
dir <- args[1]
form <- as.formula(args[2])
runs <- as.integer(args[3])
suppressPackageStartupMessages({library(lme4); library(lmerTest); library(jsonlite)})

meta <- read.delim(file.path(dir, "columns.tsv"), stringsAsFactors = FALSE)
cols <- list()
for (i in seq_len(nrow(meta))) {
  name <- meta$name[i]; n <- meta$rows[i]
  if (meta$kind[i] == "double") {
    cols[[name]] <- readBin(file.path(dir, paste0(name, ".f64")), "double", n = n, size = 8, endian = "little")
  } else {
    codes <- readBin(file.path(dir, paste0(name, ".i32")), "integer", n = n, size = 4, endian = "little")
    cols[[name]] <- readLines(file.path(dir, paste0(name, ".levels")))[codes + 1L]
  }
}
df <- as.data.frame(cols, stringsAsFactors = FALSE)
fit <- lme4::lmer(form, data = df)
times <- cpu <- numeric(0)
for (r in seq_len(runs)) {
  invisible(gc())
  c0 <- proc.time(); t0 <- Sys.time()
  m <- as_lmerModLmerTest(fit)
  tab <- summary(m)$coefficients
  times <- c(times, as.numeric(difftime(Sys.time(), t0, units = "secs")))
  c1 <- proc.time() - c0
  cpu <- c(cpu, c1[["user.self"]] + c1[["sys.self"]])
}
cat(toJSON(list(times = times, cpu_times = cpu, df = as.list(tab[, "df"]),
                theta = unname(getME(fit, "theta")), lmerTest = as.character(packageVersion("lmerTest"))),
           auto_unbox = TRUE, digits = NA), "\n")
