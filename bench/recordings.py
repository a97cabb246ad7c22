"""Row 7: the recording archiver, in process, on loopback (the stand-in HTTPS recording
host, S3 on moto's server, DynamoDB Local).

- one recording archived (the item read, the file streamed from HTTPS into S3, the
  item updated) vs the bare minimum that copies it: one ``urlopen`` read whole and one
  ``PutObject`` (interleaved, medians);
- the archiver's peak Python memory (tracemalloc) while it archives a large recording,
  vs the file's size: the download is streamed, never held whole;
- what a recording adds to its item (the pending mark, then the archive entry).
"""

from __future__ import annotations

import ssl
import statistics
import time
import tracemalloc
import urllib.request
from datetime import UTC, datetime
from typing import Any

from bench.report import Row, at_most, ratio
from bench.session import Session, log
from devtools.recording_host import RecordingHost
from devtools.s3_local import LocalS3

MB = 2**20
BUCKET = "bench-recordings"


def _writer_and_archiver(session: Session, names: dict[str, str], host: RecordingHost, s3: LocalS3) -> tuple[Any, Any]:
    from nxcloud_cdr.recordings.archiver import RecordingArchiver  # noqa: PLC0415 - the layer
    from nxcloud_cdr.recordings.fetch import FetchPolicy, parse_networks  # noqa: PLC0415
    from nxcloud_cdr.write_rule import RecordWriter  # noqa: PLC0415

    table = names["CallRecordsTable"]
    policy = FetchPolicy(hosts=("localhost",), allowed_networks=parse_networks("127.0.0.0/8"), ca_file=host.ca_file)
    return RecordWriter(session.client, table), RecordingArchiver(session.client, table, s3.client(), BUCKET, policy)


def _record(call_id: str, link: str) -> Any:
    from nxcloud_cdr import nxjson  # noqa: PLC0415
    from nxcloud_cdr.kinds import RECORD_KINDS  # noqa: PLC0415
    from nxcloud_cdr.times import parse_zone  # noqa: PLC0415

    from bench.events import EVENTS_DIR  # noqa: PLC0415

    body = nxjson.loads((EVENTS_DIR / "payloads" / "pns-call-result.json").read_text(encoding="utf-8"))
    body.update(callId=call_id, recordFile=link)
    text = nxjson.dumps(body)
    return RECORD_KINDS["pns_call_result"].map(body, text, parse_zone("+08:00"))


def _item_bytes(session: Session, table: str, call_id: str) -> int:
    from nxcloud_cdr.dynamodb_types import deserialise, item_size  # noqa: PLC0415

    item = session.client.get_item(TableName=table, Key={"pk": {"S": f"ID#{call_id}"}, "sk": {"S": "pns_call_result"}})
    return item_size(deserialise(item["Item"]))


def recording_rows(session: Session) -> list[Row]:
    runs = 15 if session.args.quick else 41
    names = session.fresh_tables("recordings")
    table = names["CallRecordsTable"]
    try:
        with RecordingHost() as host, LocalS3(separate_process=True) as s3:
            s3.client().create_bucket(Bucket=BUCKET)
            writer, archiver = _writer_and_archiver(session, names, host, s3)
            client = s3.client()
            context = ssl.create_default_context(cafile=host.ca_file)
            archived: list[float] = []
            bare: list[float] = []
            received = datetime.now(UTC)
            for number in range(runs + 2):
                link = host.add(f"bench/{number}.mp3", size=MB)
                record = _record(f"bench-{number}", link)
                writer.write(record, received, source="push")
                started = time.perf_counter()
                archiver.archive({"pk": f"ID#bench-{number}", "sk": "pns_call_result"})
                elapsed = time.perf_counter() - started
                started = time.perf_counter()
                with urllib.request.urlopen(link, context=context) as response:
                    client.put_object(Bucket=BUCKET, Key=f"bare/{number}.mp3", Body=response.read())
                bare_elapsed = time.perf_counter() - started
                if number >= 2:  # the first two warm connections and caches up
                    archived.append(elapsed)
                    bare.append(bare_elapsed)
            pending = _item_bytes_of_new(session, writer, table, host, received)
            after = _item_bytes(session, table, "bench-2")
            peaks = {size: _peak(writer, archiver, host, received, size) for size in (48 * MB, 192 * MB)}
    finally:
        session.drop_tables(names)
    figure, baseline = statistics.median(archived) * 1000, statistics.median(bare) * 1000
    small, large = peaks[48 * MB], peaks[192 * MB]
    log(f"recordings: archive {figure:.1f} ms vs bare {baseline:.1f} ms; peak {small / MB:.1f} / {large / MB:.1f} MB")
    session.note(
        "7. archiving is timed per 1 MB recording on loopback, where the item's read and update (DynamoDB Local) "
        "are most of the difference; on Lambda NXCLOUD's download speed dominates both. The peak is Python's "
        "allocations (tracemalloc) while one recording is archived (S3 runs in a process of its own)"
    )
    return [
        Row(
            "7",
            "archive a 1 MB recording (read item, stream to S3, update item) vs urlopen + PutObject",
            figure,
            "ms",
            baseline,
            ratio=ratio(figure, baseline),
        ),
        Row(
            "7",
            "archiver peak memory, a 192 MB vs a 48 MB recording",
            large / MB,
            "MB",
            small / MB,
            ratio=ratio(large, small),
            target="flat",
            meets=at_most(1.25)(ratio(large, small)),
        ),
        Row("7", "item bytes with a recording link: pending / archived", pending, "B", after, baseline_unit="B"),
    ]


def _item_bytes_of_new(session: Session, writer: Any, table: str, host: RecordingHost, received: datetime) -> int:
    writer.write(_record("bench-pending", host.url("bench/pending.mp3")), received, source="push")
    return _item_bytes(session, table, "bench-pending")


def _peak(writer: Any, archiver: Any, host: RecordingHost, received: datetime, size: int) -> int:
    call_id = f"bench-peak-{size}"
    writer.write(_record(call_id, host.add(f"bench/{call_id}.mp3", size=size)), received, source="push")
    tracemalloc.start()
    try:
        outcome = archiver.archive({"pk": f"ID#{call_id}", "sk": "pns_call_result"})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    if outcome.archived != 1:
        raise RuntimeError(f"the {size}-byte recording was not archived: {outcome.failures}")
    return int(peak)
