"""`python -m valuescope.cli`, as the `valuescope` console script."""

from valuescope.cli import console

console()
