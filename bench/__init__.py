"""Benchmarks: mmbook against lme4 and statsmodels MixedLM (``make bench``; see bench/run.py)."""
