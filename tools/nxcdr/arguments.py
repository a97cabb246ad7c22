"""The parser pieces command groups share: the parser with one-line errors, the global
options, the parent parsers a command takes its common options from, a group's
``register``, and the --kind option."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, Protocol

from nxcloud_cdr.kinds import PUSH_KINDS

from tools.nxcdr.paging import cursor_argument, positive_int

# argparse has no public name for what add_subparsers returns; its parsers are of the
# class of the parser it is called on (Parser: their errors are one line too).
type Commands = argparse._SubParsersAction[Parser]

# Every stored kind: each has a push (the sync's kind, nxcloud_cdr.sync.KIND, too).
RECORD_KINDS = tuple(PUSH_KINDS)


class Parser(argparse.ArgumentParser):
    """argparse's parser, its errors one line (the usage is a --help away)."""

    def error(self, message: str) -> Any:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def global_options(parser: argparse.ArgumentParser, *, anywhere: bool) -> None:
    # Given after the subcommand too (`nxcdr list --json`): there they default to
    # SUPPRESS, so that they never reset a value given before it.
    def default(value: Any) -> Any:
        return argparse.SUPPRESS if anywhere else value

    parser.add_argument(
        "--stack", default=default(None), help="deployed stack name (default: the local stack of `make local`)"
    )
    parser.add_argument("--profile", default=default(None), help="AWS profile (deployed stacks)")
    parser.add_argument("--region", default=default(None), help="AWS region (deployed stacks)")
    parser.add_argument("--json", action="store_true", default=default(False), help="JSON instead of a table")


@dataclass(frozen=True)
class Parents:
    """The parents a command's parser lists: ``common`` for every command, ``paged``
    as well for a listing."""

    common: Parser
    paged: Parser

    @classmethod
    def make(cls) -> Parents:
        common = Parser(add_help=False)
        global_options(common, anywhere=True)
        paged = Parser(add_help=False)
        paged.add_argument("--limit", type=positive_int, default=50, help="items a page (default 50)")
        paged.add_argument("--cursor", type=cursor_argument, help="the cursor a previous page printed")
        return cls(common=common, paged=paged)


class CommandGroup(Protocol):
    """A module of commands: ``register`` adds their parsers, each with its ``run``
    (``run(target, arguments) -> exit status``) as a default."""

    def register(self, commands: Commands, parents: Parents) -> None: ...


def kind_option(parser: argparse.ArgumentParser, default_kind: str | None = None) -> None:
    """--kind, one of the stored kinds. With ``default_kind`` (which the command applies:
    the option itself defaults to None, so that the command knows none was given) the
    help names it; without, the option is a filter."""
    kinds = ", ".join(RECORD_KINDS)
    shown = f"{kinds}; default: {default_kind}" if default_kind else f"only this kind ({kinds})"
    parser.add_argument("--kind", choices=RECORD_KINDS, metavar="KIND", help=shown)
