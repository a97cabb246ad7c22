"""The question a command asks before it changes something (--yes skips it)."""

from __future__ import annotations

import sys


def confirm(question: str) -> bool:
    """Ask on the terminal (stderr, so that --json output stays clean); no terminal, no."""
    if not sys.stdin.isatty():
        sys.stderr.write(f"{question}\nnot done: no terminal to ask on (--yes does it without asking)\n")
        return False
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in {"y", "yes"}
