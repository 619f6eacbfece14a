"""Evaluation: image inputs, feature extractors registered with torch-fidelity, the metric engine."""
