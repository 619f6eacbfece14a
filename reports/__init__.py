"""Turns MLflow runs into the paper's tables and plots."""
