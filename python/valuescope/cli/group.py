"""The command group's behaviour: commands imported when named, and valuescope's errors shown as
one line with their exit status."""

from __future__ import annotations

import importlib
import sys

import click

from valuescope.errors import ExtractIncomplete, UserError


class Group(click.Group):
    """Turns valuescope's errors into one line on stderr and their exit status (2 for a user
    error): no traceback for an error the user can act on."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except (UserError, ExtractIncomplete) as exc:
            click.echo(f"valuescope: error: {exc}", err=True)
            sys.exit(exc.exit_code)

    #: command name -> "module:attribute", imported when the command is named
    lazy_commands: dict[str, str] = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = self.lazy_commands.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)
