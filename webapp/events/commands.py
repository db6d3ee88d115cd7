"""The base of the project's management commands: a usage error is one line.

From the command line, an option argparse refuses (events.options says why) and a usage
error the command finds itself (a CommandError with status 2) both end the command with
`error: <message>` naming the option, and status 2, as a bad setting does
(events.startup); argparse's usage lines are left out. Called from code (call_command),
both raise CommandError as Django's commands do.
"""

from collections.abc import Iterator
from typing import Any, NoReturn

from django.core.management.base import BaseCommand, CommandError, CommandParser

from events.startup import BAD_CONFIGURATION

BAD_USAGE = BAD_CONFIGURATION


class OneLineErrorParser(CommandParser):
    """Django's parser, with a usage error from the command line as one line."""

    def error(self, message: str) -> NoReturn:
        if not self.called_from_command_line:
            super().error(message)  # raises CommandError, for call_command
        self.exit(BAD_USAGE, f"error: {message}\n")


def _parser_tree(parser: CommandParser) -> Iterator[CommandParser]:
    yield parser
    for action in parser._subparsers._group_actions if parser._subparsers else ():
        for subparser in getattr(action, "choices", {}).values():
            yield from _parser_tree(subparser)


class ProjectCommand(BaseCommand):
    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        # Django's create_parser builds a CommandParser itself, and add_subparsers makes
        # the subcommands' parsers of the same class; each reports its own errors, so each
        # becomes a OneLineErrorParser (it adds behaviour only, no state).
        for each in _parser_tree(parser):
            each.__class__ = OneLineErrorParser
        return parser

    def execute(self, *args: Any, **options: Any) -> str | None:
        try:
            return super().execute(*args, **options)
        except CommandError as exc:
            from_command_line = getattr(self, "_called_from_command_line", False)
            if exc.returncode != BAD_USAGE or not from_command_line or options.get("traceback"):
                raise
            self.stderr.write(f"error: {exc}")
            raise SystemExit(BAD_USAGE) from None
