# Export the classic mixed-model data sets for mmbook.datasets.
#
# Run from the repository root (R 4.2.2, lme4 1.1-31, nlme 3.1-162):
#     Rscript mmbook/datasets/make_datasets.R
# For each data set it writes mmbook/datasets/data/NAME.csv.xz (xz-compressed CSV, about 40%
# smaller than gzip on InstEval: factor columns as their labels, quoted only where a label
# needs it, doubles with as many digits as they need to read back exactly, integers as
# integers) and records in mmbook/datasets/catalogue.json what Python needs to rebuild R's
# frame exactly: the column types (double -> float64, integer -> int64, factor -> pandas
# Categorical with R's level order, ordered factors as ordered Categoricals), the number of
# rows, and a checksum of every column (sum and sum of squares of numeric columns, the count
# of each level of a factor), computed here in R and compared by tests/test_datasets.py.
# nlme's groupedData objects are stored as plain data frames (their formula and labels are
# not part of the data).
suppressMessages({library(lme4); library(nlme)})
library(jsonlite)

out_dir <- "mmbook/datasets/data"
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)

sets <- list(lme4 = c("sleepstudy", "Dyestuff", "Dyestuff2", "Penicillin", "Pastes", "cake", "cbpp",
                      "grouseticks", "VerbAgg", "InstEval"),
             nlme = c("Orthodont", "Machines", "ergoStool", "Rail", "Oats"))

# the shortest decimal text that reads back as the same double (15 digits, else 17)
num_text <- function(x) {
  s <- sprintf("%.15g", x)
  bad <- !is.na(x) & as.numeric(s) != x
  s[bad] <- sprintf("%.17g", x[bad])
  s[is.na(x)] <- ""
  s
}
full <- function(x) sprintf("%.17g", x)

catalogue <- list()
for (pkg in names(sets)) {
  for (nm in sets[[pkg]]) {
    d <- as.data.frame(get(nm, envir = asNamespace(pkg)))
    attr(d, "formula") <- NULL
    cols <- list(); check <- list(); text <- list()
    for (v in names(d)) {
      x <- d[[v]]
      if (is.factor(x)) {
        cols[[length(cols) + 1]] <- list(name = v, dtype = "category", levels = levels(x),
                                         ordered = is.ordered(x))
        check[[v]] <- list(counts = as.integer(table(x)))
        text[[v]] <- ifelse(is.na(x), "", as.character(x))
      } else if (is.integer(x)) {
        cols[[length(cols) + 1]] <- list(name = v, dtype = "int64")
        check[[v]] <- list(sum = full(sum(as.double(x))), sumsq = full(sum(as.double(x)^2)))
        text[[v]] <- ifelse(is.na(x), "", as.character(x))
      } else if (is.double(x)) {
        cols[[length(cols) + 1]] <- list(name = v, dtype = "float64")
        check[[v]] <- list(sum = full(sum(x)), sumsq = full(sum(x^2)))
        text[[v]] <- num_text(x)
      } else stop("unexpected column type in ", nm, "$", v)
      if (anyNA(x)) stop(nm, "$", v, " has missing values: extend the format")
    }
    path <- file.path(out_dir, paste0(nm, ".csv.xz"))
    quote <- which(vapply(text, function(s) any(grepl("[\",\n]", s)), TRUE))
    con <- xzfile(path, "w", compression = 9)
    write.csv(as.data.frame(text, check.names = FALSE), con, row.names = FALSE,
              quote = if (length(quote)) unname(quote) else FALSE)
    close(con)
    catalogue[[nm]] <- list(package = pkg, package_version = as.character(packageVersion(pkg)),
                            rows = nrow(d), columns = cols, checksum = check)
  }
}

# The reference document's two simulations (R's draws, from mmbook/reference/sim_ri.csv and
# sim_ris.csv): their checksums, for the frames mmbook.rcompat.simulation regenerates.
for (nm in c("sim_ri", "sim_ris")) {
  d <- read.csv(file.path("mmbook/reference", paste0(nm, ".csv")), colClasses = c("numeric", "numeric", "character"))
  d$clus <- factor(d$clus, levels = as.character(sort(unique(as.integer(d$clus)))))
  catalogue[[nm]] <- list(package = "document", package_version = "",
                          rows = nrow(d),
                          columns = list(list(name = "x", dtype = "float64"), list(name = "y", dtype = "float64"),
                                         list(name = "clus", dtype = "category", levels = levels(d$clus),
                                              ordered = FALSE)),
                          checksum = list(x = list(sum = full(sum(d$x)), sumsq = full(sum(d$x^2))),
                                          y = list(sum = full(sum(d$y)), sumsq = full(sum(d$y^2))),
                                          clus = list(counts = as.integer(table(d$clus)))))
}

out <- list(source = paste0("mmbook/datasets/make_datasets.R; ", R.version.string, ", lme4 ",
                            as.character(packageVersion("lme4")), ", nlme ",
                            as.character(packageVersion("nlme"))),
            datasets = catalogue)
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "mmbook/datasets/catalogue.json")
