"""`python -m valuescope`: the same as the `valuescope` command."""

from valuescope.cli import console

console()
