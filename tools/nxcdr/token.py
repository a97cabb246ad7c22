"""Commands on the push token: print the push URLs with it, rotate it."""

from __future__ import annotations

import argparse
import secrets
import string
import sys
from datetime import timedelta
from typing import Any

from nxcloud_cdr.times import now_utc

from tools.nxcdr.arguments import Commands, Parents
from tools.nxcdr.output import emit, render_table
from tools.nxcdr.prompt import confirm
from tools.nxcdr.target import Target, push_urls
from tools.nxcdr.times import iso

# Like the token the stack generates (40 characters, no punctuation): safe in a URL
# path, a shell and a double-click. 40 x log2(62) = 238 bits.
TOKEN_ALPHABET = string.ascii_letters + string.digits
TOKEN_LENGTH = 40


def register(commands: Commands, parents: Parents) -> None:
    urls = commands.add_parser("urls", parents=[parents.common], help="the push URLs to give NXCLOUD, token included")
    urls.set_defaults(run=command_urls)

    rotate = commands.add_parser(
        "rotate-token",
        parents=[parents.common],
        help="put a new push token (deployed stacks); the old URLs keep working for PushTokenOverlapHours",
    )
    rotate.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    rotate.add_argument(
        "--force", action="store_true", help="rotate even while the token before the last rotation is accepted"
    )
    rotate.set_defaults(run=command_rotate_token)


def _emit_urls(arguments: argparse.Namespace, urls: dict[str, str], extra: dict[str, Any], note: str = "") -> None:
    table = render_table([{"kind": kind, "url": url} for kind, url in urls.items()], ("kind", "url"))
    emit(arguments, {"urls": urls, **extra}, table + (f"\n\n{note}" if note else ""))


def command_urls(target: Target, arguments: argparse.Namespace) -> int:
    _emit_urls(arguments, push_urls(target, target.push_token()), {"stack": target.stack})
    return 0


def new_push_token() -> str:
    return "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(TOKEN_LENGTH))


def command_rotate_token(target: Target, arguments: argparse.Namespace) -> int:
    if target.put_push_token is None:
        sys.stderr.write(
            "rotate-token is for deployed stacks (--stack NAME). Locally the token is PUSH_TOKEN in local.env "
            "(PUSH_TOKEN_PREVIOUS keeps an old one accepted): edit it and restart `make local`.\n"
        )
        return 1
    hours = target.overlap_hours
    last = target.last_rotation()
    if last is not None and now_utc() < last + timedelta(hours=hours) and not arguments.force:
        sys.stderr.write(
            f"the last rotation was at {iso(last)}: the URLs before it are accepted until "
            f"{iso(last + timedelta(hours=hours))}, and another rotation now refuses them at once "
            "(only one previous token is kept); --force rotates anyway\n"
        )
        return 1
    question = (
        f"rotate the push token of stack {target.stack}? The current push URLs keep working for {hours} hours only."
    )
    if not arguments.yes and not confirm(question):
        sys.stderr.write("not rotated\n")
        return 1
    token = new_push_token()
    target.put_push_token(token)
    note = (
        "The push token is rotated. Give NXCLOUD these new URLs (PNS URLs to NXCLOUD's team; the call-centre report\n"
        "URL under Account Management -> Voice Application Management; the call-log callback's URL AND its token\n"
        "field, the new token, in Call Center Settings). The functions accept the new token within\n"
        f"5 minutes; the old URLs keep working for {hours} hours (PushTokenOverlapHours), then get 403.\n"
        "Rotate again only after that: only one previous token is accepted."
    )
    _emit_urls(arguments, push_urls(target, token), {"stack": target.stack, "previousAcceptedForHours": hours}, note)
    return 0
