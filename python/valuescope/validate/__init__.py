"""Validity: how good the extraction and the taxonomy are, measured as the paper and Clio did.

One module per ``valuescope validate`` command: ``lint`` (checks that need no reviewer),
``sample`` (a blinded, stratified review packet), ``score`` (accuracy with Wilson intervals,
reviewer agreement), ``compare`` (agreement between two extraction runs), ``judge`` (an LLM judge
writing the reviewers' format) and ``privacy`` (Clio's privacy audit of published strings);
``stats`` holds the statistics and ``common`` the shared facts and the judgments format.
"""
