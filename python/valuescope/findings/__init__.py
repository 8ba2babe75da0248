"""Findings derived from an analysis's published figures, after the engine: the values stated
outright (the paper's appendix B.6, `explicit`) and the values to watch (`watch`, `watchlist`).
They read only what the engine published (already privacy-checked), so they can add nothing
that the privacy rule would suppress.
"""
