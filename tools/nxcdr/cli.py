"""The command line: the parser, built from the command groups, and main, which runs a
command against the stack and turns what went wrong into one line and an exit status."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from nxcloud_cdr.lookups import LookupOffError
from nxcloud_cdr.store_errors import StoreError

import tools.nxcdr
from tools.nxcdr import events, lake, quarantine, recordings, records, sql, sync, token
from tools.nxcdr.arguments import CommandGroup, Parents, Parser, global_options
from tools.nxcdr.errors import OperatorError
from tools.nxcdr.target import deployed_target, local_target

# A new command group is a module with a register(), added here; --help lists the
# commands in this order.
COMMAND_GROUPS: tuple[CommandGroup, ...] = (records, quarantine, token, sync, recordings, sql, events, lake)


def build_parser() -> argparse.ArgumentParser:
    description = tools.nxcdr.__doc__
    parser = Parser(prog="nxcdr", description=description.splitlines()[0] if description else None)
    global_options(parser, anywhere=False)
    commands = parser.add_subparsers(dest="command", required=True)
    parents = Parents.make()
    for group in COMMAND_GROUPS:
        group.register(commands, parents)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    try:
        if arguments.stack is not None and not arguments.stack.strip():
            # An empty name is no stack: it must not mean the local one.
            raise OperatorError("--stack needs a stack name (leave it out for the local stack)")
        target = (
            deployed_target(arguments.stack, arguments.profile, arguments.region) if arguments.stack else local_target()
        )
        code: int = arguments.run(target, arguments)
    except OperatorError as error:
        sys.stderr.write(f"nxcdr: {error}\n")
        return 2
    except NoCredentialsError:
        sys.stderr.write("nxcdr: no AWS credentials found: use --profile, or set them as boto3 reads them\n")
        return 1
    except (BotoCoreError, ClientError, StoreError, LookupOffError) as error:
        sys.stderr.write("nxcdr: " + " ".join(str(error).split()) + "\n")
        return 1
    return code
