"""LLM feature extraction: conversations in, feature-schema Parquet out (``run_extract``)."""

from valuescope.extract.runner import ExtractError, ExtractOptions, Summary, run_extract

__all__ = ["ExtractError", "ExtractOptions", "Summary", "run_extract"]
