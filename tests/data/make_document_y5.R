# The reference document's last simulation step, run as written, for book/reproducing.ipynb.
#
# Run from the repository root:
#     Rscript tests/data/make_document_y5.R
# The document draws y5 from the marginal form of the random-slopes model with
# MASS::mvrnorm right after set.seed(1234) and fits it with lmer. mvrnorm uses an
# eigendecomposition of a covariance matrix whose eigenvalue 1 is repeated 800 times,
# so the draw depends on the LAPACK/BLAS build; this records what this machine's R
# gives (REML criterion and fixed effects) and which BLAS and LAPACK it used.
# Writes mmbook/reference/document_y5.json.
suppressMessages(library(lme4))
library(jsonlite)

set.seed(1234)
nclus <- 100
clus <- factor(rep(1:nclus, each = 10))
n <- length(clus)
sigma <- 1
psi <- matrix(c(1, .25, .25, 1), 2, 2)
gamma_ <- MASS::mvrnorm(nclus, mu = c(0, 0), Sigma = psi, empirical = TRUE)
e <- rnorm(n, mean = 0, sd = sigma)
intercept <- 3
b1 <- .75
x <- rnorm(n)
y <- intercept + gamma_[clus, 1] + (b1 + gamma_[clus, 2]) * x + e
d <- data.frame(x, y, clus = clus)
X <- cbind(1, x)
B <- c(intercept, b1)
Z <- matrix(0, nrow = nrow(X), ncol = nclus * 2)
for (i in 1:nclus) Z[clus == i, (2 * i - 1):(2 * i)] <- X[clus == i, ]
psiBig <- kronecker(diag(nclus), psi)
set.seed(1234)
y5 <- MASS::mvrnorm(1, mu = X %*% B, Sigma = Z %*% psiBig %*% t(Z) + diag(sigma, n))
m <- lmer(y5 ~ x + (x | clus), d)

out <- list(
  source = "tests/data/make_document_y5.R",
  R_version = R.version.string,
  lme4_version = as.character(packageVersion("lme4")),
  MASS_version = as.character(packageVersion("MASS")),
  BLAS = unname(extSoftVersion()["BLAS"]),
  LAPACK = La_version(),
  REMLcrit = REMLcrit(m),
  fixef = as.list(fixef(m)),
  y5_head6 = unname(y5[1:6])
)
write_json(out, "mmbook/reference/document_y5.json", digits = NA, auto_unbox = TRUE, pretty = TRUE)
