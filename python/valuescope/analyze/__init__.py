"""The analyze stage: feature files streamed through the engine, the analysis directory written.

options (settings, the engine they make) -> units (work cut at row-group boundaries, fed to an
engine) -> pool (processes) / on_dask (a Dask cluster) / checkpoints (resumable runs) -> run (the
stage) -> output (the files, in the published shapes).
"""

from valuescope.analyze.options import AnalyzeOptions, AnalyzeReport
from valuescope.analyze.run import analyze_files

__all__ = ["AnalyzeOptions", "AnalyzeReport", "analyze_files"]
