"""Held-out evaluation: adaptation curves of every method, confidence intervals, reports."""
