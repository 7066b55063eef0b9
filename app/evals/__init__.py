"""Offline evals: suite files, scorers, a cached runner over the real coach, comparison, reports."""
