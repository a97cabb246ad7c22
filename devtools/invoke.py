"""``make invoke FN=<function> EVENT=<event file>``: one function of the running ``make
local`` stack on one event, through the stack's Lambda invoke API, as ``aws lambda
invoke`` would, with nothing to install and no credentials to set."""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path


def _fail(message: str, status: int) -> int:
    sys.stderr.write(f"make invoke: {message}\n")
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make invoke", description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("function", help="the function's logical id in template.yaml (PnsCallResultFunction, ...)")
    parser.add_argument("event", type=Path, help="an event file (events/...)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("LOCAL_API_PORT", "3000")))
    args = parser.parse_args(argv)
    try:
        event = args.event.read_bytes()
        json.loads(event)
    except OSError as exc:
        return _fail(f"cannot read {args.event}: {exc.strerror}", 2)
    except ValueError:
        return _fail(f"{args.event} is not JSON", 2)
    url = f"http://127.0.0.1:{args.port}/2015-03-31/functions/{args.function}/invocations"
    request = urllib.request.Request(url, data=event, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=900) as answer:  # noqa: S310 - our own loopback URL
            body = answer.read()
    except urllib.error.HTTPError as exc:
        return _fail(f"{args.function}: HTTP {exc.code}: {exc.read().decode(errors='replace')[:300]}", 1)
    except urllib.error.URLError:
        return _fail(
            f"no local stack answers on 127.0.0.1:{args.port}: start it with `make local` in another terminal "
            "(LOCAL_API_PORT if you moved it)",
            2,
        )
    try:
        shown = json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except ValueError:
        shown = body.decode(errors="replace")
    sys.stdout.write(shown + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
