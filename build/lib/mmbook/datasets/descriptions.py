"""Where each data set comes from and what it measures (one paragraph each, our own words).

``SOURCES[name]`` is the study the data come from; ``DESCRIPTIONS[name]`` says what a row is,
what the columns measure and which mixed model the data set is known for.
"""

SOURCES = {
    "sleepstudy": "Belenky et al. (2003), J. Sleep Research 12, 1-12; R package lme4",
    "Dyestuff": "Davies (1947), Statistical Methods in Research and Production; Box and Tiao (1973); "
                "R package lme4",
    "Dyestuff2": "Box and Tiao (1973), Bayesian Inference in Statistical Analysis, simulated; R package lme4",
    "Penicillin": "Davies and Goldsmith (1972), Statistical Methods in Research and Production; "
                  "R package lme4",
    "Pastes": "Davies and Goldsmith (1972), Statistical Methods in Research and Production; R package lme4",
    "cake": "Cook (1938), via Cochran and Cox (1957), Experimental Designs; R package lme4",
    "cbpp": "Lesnoff et al. (2004), Preventive Veterinary Medicine 64, 27-40; R package lme4",
    "grouseticks": "Elston et al. (2001), Parasitology 122, 563-569; R package lme4",
    "VerbAgg": "De Boeck and Wilson (2004), Explanatory Item Response Models; R package lme4",
    "InstEval": "ETH Zurich lecture evaluations; R package lme4",
    "Orthodont": "Potthoff and Roy (1964), Biometrika 51, 313-326; R package nlme",
    "Machines": "Milliken and Johnson (1992), Analysis of Messy Data; R package nlme",
    "ergoStool": "Devore (2000), Probability and Statistics for Engineering and the Sciences; R package nlme",
    "Rail": "Devore (2000), Probability and Statistics for Engineering and the Sciences; R package nlme",
    "Oats": "Yates (1935), J. Royal Statistical Society Suppl. 2, 181-247; R package nlme",
    "sim_ri": "the reference document's random-intercepts simulation (set.seed(1234)); "
              "mmbook.rcompat.simulation.simulate_random_intercepts",
    "sim_ris": "the reference document's random-slopes simulation (set.seed(1234)); "
               "mmbook.rcompat.simulation.simulate_random_slopes",
}

DESCRIPTIONS = {
    "sleepstudy":
        "Average reaction time (Reaction, ms) on each of ten days (Days 0-9) for 18 truck drivers "
        "(Subject) restricted to three hours of sleep a night from day 0 on. The book's running "
        "example: a random intercept and a random slope of Days for each subject, "
        "Reaction ~ Days + (Days | Subject).",
    "Dyestuff":
        "Yield of dyestuff (Yield, grams of standard colour) from five preparations of each of six "
        "batches (Batch) of an intermediate product. The simplest random-effects model, "
        "Yield ~ 1 + (1 | Batch): how much of the variation lies between batches.",
    "Dyestuff2":
        "Data simulated with the layout of Dyestuff (six batches of five) but with so little "
        "variation between batches that the estimated batch variance is zero: the standard example "
        "of a singular fit, Yield ~ 1 + (1 | Batch).",
    "Penicillin":
        "Diameter (mm) of the zone where an organism's growth is inhibited, for six samples of "
        "penicillin (sample) each applied to every one of 24 plates (plate). Fully crossed "
        "random effects: diameter ~ 1 + (1 | plate) + (1 | sample).",
    "Pastes":
        "Strength of a chemical paste in two assays from each of three casks (cask) chosen from each "
        "of ten delivery batches (batch); sample is the batch:cask combination. Nested random "
        "effects: strength ~ 1 + (1 | batch/cask).",
    "cake":
        "Breakage angle (angle, degrees) of chocolate cakes made with three recipes (recipe) and "
        "baked at six temperatures (temperature, an ordered factor; temp is the same in degrees F), "
        "with 15 replicates (replicate) per recipe. A split plot: "
        "angle ~ recipe * temperature + (1 | recipe:replicate).",
    "cbpp":
        "Contagious bovine pleuropneumonia in 15 commercial zebu herds (herd) in Ethiopia, followed "
        "over four periods (period): new serological cases (incidence) out of the herd's size at the "
        "start of the period (size). A binomial GLMM: "
        "cbind(incidence, size - incidence) ~ period + (1 | herd).",
    "grouseticks":
        "Number of sheep ticks (TICKS) on the heads of red grouse chicks (INDEX) from 118 broods "
        "(BROOD) at 63 locations (LOCATION) in three years (YEAR), with the location's altitude "
        "(HEIGHT, m; cHEIGHT centred). A Poisson GLMM with an observation-level random effect.",
    "VerbAgg":
        "Answers of 316 people (id; Anger is their trait-anger score, Gender their gender) to 24 "
        "items (item) about verbal aggression in frustrating situations: behaviour type (btype), "
        "situation (situ), wanting or doing (mode); resp is the ordered answer and r2 its "
        "dichotomised form. A binary GLMM with crossed person and item effects.",
    "InstEval":
        "73,421 evaluations (y, 1-5) of university lectures by students (s, 2,972) of lecturers "
        "(d, 1,128), with the student's semester (studage) and the lecture's age (lectage) as ordered "
        "factors, whether the lecture was a service course (service) and the department (dept). A "
        "large crossed design, y ~ service + (1 | s) + (1 | d).",
    "Orthodont":
        "Distance (distance, mm) from the pituitary to the pterygomaxillary fissure measured at ages "
        "8, 10, 12 and 14 (age) in 27 children (Subject, 16 boys and 11 girls; Sex). Growth curves: "
        "distance ~ age + (age | Subject).",
    "Machines":
        "Productivity score (score) of six workers (Worker) on each of three machine brands "
        "(Machine), three times each. Random worker effects and worker-by-machine interactions: "
        "score ~ Machine + (1 | Worker) + (1 | Worker:Machine).",
    "ergoStool":
        "Effort (effort, Borg scale) needed by nine subjects (Subject) to get up from each of four "
        "types of ergonomic stool (Type). A randomised block design: effort ~ Type + (1 | Subject).",
    "Rail":
        "Travel time of an ultrasonic wave along six railway rails (Rail), three measurements each "
        "(travel, nanoseconds above 36,100). One-way random effects: travel ~ 1 + (1 | Rail).",
    "Oats":
        "Yield of oats (yield, quarter pounds per sub-plot) in a split-plot experiment: six blocks "
        "(Block), three varieties (Variety) on the whole plots and four amounts of nitrogen (nitro, "
        "cwt per acre) on the sub-plots. yield ~ nitro + Variety + (1 | Block/Variety).",
    "sim_ri":
        "The reference document's first simulation: 100 clusters (clus) of 10 observations, "
        "y = 3 + 0.75 x + gamma_clus + e with gamma ~ N(0, 0.5^2) and e ~ N(0, 1), x ~ N(0, 1); "
        "regenerated bit for bit from R's random numbers by mmbook.rcompat.simulation.",
    "sim_ris":
        "The reference document's second simulation: 100 clusters (clus) of 10 observations, "
        "y = 3 + 0.75 x + gamma_clus0 + gamma_clus1 x + e, with random intercepts and slopes of "
        "variance 1 and covariance 0.25 (drawn by MASS::mvrnorm(empirical = TRUE), so their sample "
        "covariance is exactly that), e ~ N(0, 1), x ~ N(0, 1); regenerated bit for bit by "
        "mmbook.rcompat.simulation.",
}
