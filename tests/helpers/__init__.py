"""Helpers the test folders share: feature rows, analysis directories, runs of the CLI."""
