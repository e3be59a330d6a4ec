"""Usage errors in the Click convention, kept short: the error, then where help is.

Click prints a usage error as the command's usage block, a hint and the
error; Typer with Rich draws a box around it. Here it is two lines on stderr
and exit status 2::

    error: No such option: --jsn (Possible options: --json)
    Try 'llmreq --help' for help.
"""

from __future__ import annotations

import sys
from typing import Any

from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
from typer.core import TyperGroup

__all__ = ["ShortUsageGroup"]


class _ShortUsageError(ClickException):
    """A usage error shown in two lines: what was wrong, and where help is."""

    exit_code = 2

    def __init__(self, error: UsageError) -> None:
        super().__init__(error.format_message())
        self.hint = f"Try '{error.ctx.command_path} --help' for help." if error.ctx else ""

    def show(self, file: Any = None) -> None:
        print(f"error: {self.message}", file=sys.stderr)
        if self.hint:
            print(self.hint, file=sys.stderr)


class ShortUsageGroup(TyperGroup):
    """Typer's group, with the usage errors of every command below it kept short.

    Errors of the group's own options come from ``make_context``; those of a
    subcommand (and of nested groups) surface through ``invoke``. A bare
    ``llmreq`` still prints the help.
    """

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().make_context(*args, **kwargs)
        except NoArgsIsHelpError:
            raise
        except UsageError as exc:
            raise _ShortUsageError(exc) from None

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except NoArgsIsHelpError:
            raise
        except UsageError as exc:
            raise _ShortUsageError(exc) from None
