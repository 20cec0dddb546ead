"""Evaluate small, large and hybrid language models on Amazon customer reviews."""

__version__ = "0.1.0"
