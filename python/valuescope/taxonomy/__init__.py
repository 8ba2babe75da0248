"""The taxonomy stage: the published AI values embedded and clustered bottom-up into the paper's
tree, free-text tasks clustered, and the tree compared with the published one.

options (settings, summary) -> scan (the values and rows the privacy rule lets through) ->
embeddings -> tree (k-means levels, names) and tasks -> reference (the published taxonomy) ->
run (the stage, writing its files). namer names clusters with an LLM when asked.
"""
