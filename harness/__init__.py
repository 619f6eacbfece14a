"""Data, text encoders, the controlled runner, evaluation and the stackgan-bench CLI."""

__version__ = "0.1.0"
