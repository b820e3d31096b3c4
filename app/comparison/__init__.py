"""Cohort comparison: per-animal summaries, group statistics, plots and CSV exports."""
