"""Commands on archived recordings: recordings (those that failed, are pending or were
never marked, and handing them to the archiver again), recording (a call's files or
presigned URLs)."""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from nxcloud_cdr.lookups import Page
from nxcloud_cdr.store_errors import StoreError

from tools.nxcdr.arguments import Commands, Parents, kind_option
from tools.nxcdr.errors import OperatorError
from tools.nxcdr.output import emit, emit_page, render_table
from tools.nxcdr.paging import non_empty, read_page
from tools.nxcdr.prompt import confirm
from tools.nxcdr.target import Target

RECORDING_COLUMNS = ("callStartUtc", "kind", "nxcloudId", "recordingState", "recordings")
# A presigned URL works 7 days at most (SigV4).
MAX_URL_SECONDS = 7 * 24 * 3600


def url_seconds(text: str) -> int:
    """An argparse type: how long a presigned URL works, 1 s to 7 days."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_URL_SECONDS:
        raise argparse.ArgumentTypeError(
            f"not a number of seconds from 1 to {MAX_URL_SECONDS} (7 days, a presigned URL's longest): {text!r}"
        )
    return value


def register(commands: Commands, parents: Parents) -> None:
    recordings = commands.add_parser(
        "recordings",
        parents=[parents.common, parents.paged],
        help="records whose recordings failed to archive (or are pending); `retry` hands them to the archiver again",
    )
    recordings.add_argument(
        "action",
        nargs="?",
        choices=("list", "retry", "backfill"),
        default="list",
        help="list (default); retry the listed ones; backfill: archive the recordings of records stored before"
        " the archiver existed (a Scan of the table, --limit records a page)",
    )
    state = recordings.add_mutually_exclusive_group()
    state.add_argument("--failed", action="store_true", help="failed recordings (the default)")
    state.add_argument(
        "--pending", action="store_true", help="not archived yet (reads the whole table: a Scan, paid by its size)"
    )
    recordings.add_argument("--yes", "-y", action="store_true", help="retry without asking")
    recordings.set_defaults(run=command_recordings)

    recording = commands.add_parser(
        "recording", parents=[parents.common], help="a call's archived recordings: presigned URLs, or the files"
    )
    recording.add_argument("id", type=non_empty, help="the call's NXCLOUD id")
    kind_option(recording)
    recording.add_argument("--name", help="only this recording (call, voicemail, leg1...)")
    recording.add_argument("--download", metavar="DIR", help="save the files in DIR instead of printing URLs")
    recording.add_argument("--force", action="store_true", help="with --download: replace files that exist")
    recording.add_argument(
        "--expires",
        type=url_seconds,
        default=3600,
        help=f"seconds the URLs work (default 3600, at most {MAX_URL_SECONDS}: 7 days)",
    )
    recording.set_defaults(run=command_recording)


def _recording_summary(item: dict[str, Any]) -> dict[str, Any]:
    """A row of `recordings`: each recording's name and how it stands."""
    entries = item.get("recordings") or {}
    shown = []
    for name, entry in sorted(entries.items()):
        if entry.get("status") == "archived":
            shown.append(f"{name}: archived")
        else:
            shown.append(f"{name}: {entry.get('reason', '?')} x{entry.get('attempts', 0)} ({entry.get('error', '')})")
    return {**item, "recordings": "; ".join(shown) or "(none tried yet)"}


def _recording_page(target: Target, arguments: argparse.Namespace) -> Page:
    return read_page(arguments, lambda: _recording_page_read(target, arguments))


def _recording_page_read(target: Target, arguments: argparse.Namespace) -> Page:
    if arguments.action == "backfill":
        return target.store.unmarked_records(limit=arguments.limit, cursor=arguments.cursor)
    if arguments.pending:
        return target.store.pending_recordings(limit=arguments.limit, cursor=arguments.cursor)
    return target.store.recording_failures(limit=arguments.limit, cursor=arguments.cursor)


def command_recordings(target: Target, arguments: argparse.Namespace) -> int:
    page = _recording_page(target, arguments)
    if arguments.action == "list":
        rows = page.items if arguments.json else [_recording_summary(item) for item in page.items]
        emit_page(arguments, Page(rows, page.cursor), RECORDING_COLUMNS)
        return 0
    # retry: each listed record marked pending again; the stream hands it to the archiver.
    from nxcloud_cdr.recordings.archiver import hand_back, links_of  # noqa: PLC0415

    if arguments.action == "backfill":  # of the records scanned, those with a link
        page = Page([item for item in page.items if links_of(item)], page.cursor)
    which = {"backfill": "unarchived", "retry": "pending" if arguments.pending else "failed"}[arguments.action]
    if not page.items:
        more = f" in this page; the next with --cursor {page.cursor}" if page.cursor else ""
        sys.stdout.write(f"no record has {which} recordings{more}\n")
        return 0
    if not arguments.yes and not confirm(f"archive the recordings of {len(page.items)} records again?"):
        return 1
    retried = 0
    for listed in page.items:
        key = {"pk": listed["pk"], "sk": listed["sk"]}
        retried += hand_back(target.store.client, target.store.table_name, key, force=True)
    more = f"; the next {arguments.limit} with --cursor {page.cursor}" if page.cursor else ""
    sys.stdout.write(f"{retried} records handed to the archiver again{more}\n")
    return 0


def _archived(target: Target, arguments: argparse.Namespace) -> list[tuple[dict[str, Any], str, dict[str, Any]]]:
    found = []
    for item in target.store.get(arguments.id, arguments.kind):
        for name, entry in sorted((item.get("recordings") or {}).items()):
            if entry.get("status") == "archived" and (arguments.name is None or name == arguments.name):
                found.append((item, name, entry))
    return found


def command_recording(target: Target, arguments: argparse.Namespace) -> int:
    if target.s3 is None or not target.recordings_bucket:
        sys.stderr.write("this stack has no recordings bucket (deployed before recordings were archived)\n")
        return 1
    found = _archived(target, arguments)
    if not found:
        sys.stderr.write(f"no archived recording of {arguments.id} (`nxcdr show {arguments.id}` says why)\n")
        return 1
    files = _download_paths(found, arguments) if arguments.download else {}
    rows = []
    for item, name, entry in found:
        row = {"kind": item["kind"], "recording": name, "bytes": entry.get("bytes"), "sha256": entry.get("sha256")}
        row["s3Key"] = entry["s3Key"]
        if arguments.download:
            row["file"] = str(_download(target, entry, files[(str(item["kind"]), name)]))
        elif not _exists(target, entry["s3Key"]):
            row["url"] = "(deleted: the bucket's lifecycle expired it, RecordingExpiryDays)"
        else:
            row["url"] = target.s3.generate_presigned_url(
                "get_object",
                Params={"Bucket": target.recordings_bucket, "Key": entry["s3Key"]},
                ExpiresIn=arguments.expires,
            )
        rows.append(row)
    columns = ("kind", "recording", "bytes", "file" if arguments.download else "url")
    if arguments.json or arguments.download:
        emit(arguments, rows, render_table(rows, columns))
    else:
        for row in rows:  # URLs are long: one per line, whole
            sys.stdout.write(f"{row['kind']} {row['recording']} ({row['bytes']} bytes):\n{row['url']}\n")
    return 0


def _exists(target: Target, key: str) -> bool:
    """False when S3 says the object is gone; True otherwise (an operator allowed to
    read objects but not to list the bucket gets 403 for a missing one: the URL is
    printed all the same)."""
    try:
        target.s3.head_object(Bucket=target.recordings_bucket, Key=key)
    except ClientError as error:
        return str(error.response.get("Error", {}).get("Code")) not in ("404", "NoSuchKey", "NotFound")
    return True


_MAX_FILE_NAME_BYTES = 255


def download_name(kind: str, name: str, key: str) -> str:
    """The file a recording is saved as: its key's id part, its kind and its name
    (``<id>.<kind>.<name>.<ext>``): one file per recording, whatever kinds hold the id.
    Kinds and names have no dot, so no two recordings share a name."""
    stem, dot, extension = key.rsplit("/", 1)[-1].rpartition(".")
    if not dot:
        stem, extension = extension, ""
    if name != "call" and stem.endswith(f"-{name}"):  # the key names it already
        stem = stem[: -len(name) - 1]
    suffix = f".{kind}.{name}" + (f".{extension}" if extension else "")
    if len((stem + suffix).encode("utf-8", "surrogatepass")) > _MAX_FILE_NAME_BYTES:
        # A file name holds 255 bytes: a long id is cut and told apart by its hash.
        digest = hashlib.sha256(stem.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        room = _MAX_FILE_NAME_BYTES - len(suffix.encode("utf-8", "surrogatepass")) - len(digest) - 1
        stem = stem.encode("utf-8", "surrogatepass")[:room].decode("utf-8", "ignore") + "-" + digest
    return stem + suffix


def _download_paths(
    found: list[tuple[dict[str, Any], str, dict[str, Any]]], arguments: argparse.Namespace
) -> dict[tuple[str, str], Path]:
    """Where each recording goes in --download's directory, checked before any is
    fetched: the directory exists, and no file is replaced without --force."""
    directory = Path(arguments.download)
    if not directory.is_dir():
        what = "is not a directory" if directory.exists() else "does not exist"
        raise OperatorError(f"--download {directory} {what}: give an existing directory")
    paths = {
        (str(item["kind"]), name): directory / download_name(str(item["kind"]), name, str(entry["s3Key"]))
        for item, name, entry in found
    }
    existing = [str(path) for path in paths.values() if path.exists()]
    if existing and not arguments.force:
        raise OperatorError(f"{', '.join(existing)} already exists: --force replaces it (nothing was downloaded)")
    return paths


def _download(target: Target, entry: dict[str, Any], path: Path) -> Path:
    """The object into ``path``, streamed, checked against the SHA-256 the archiver
    recorded."""
    body = target.s3.get_object(Bucket=target.recordings_bucket, Key=entry["s3Key"])["Body"]
    digest = hashlib.sha256()
    partial = path.with_name(path.name + ".part")
    with partial.open("wb") as handle:
        for piece in iter(lambda: body.read(1024 * 1024), b""):
            digest.update(piece)
            handle.write(piece)
    if entry.get("sha256") and digest.hexdigest() != entry["sha256"]:
        partial.unlink()
        raise StoreError(f"{entry['s3Key']}: the object's SHA-256 is not the one recorded when it was archived")
    partial.replace(path)
    return path
