"""A streamed upload to S3 that never leaves half an object.

The file is read in parts of :data:`PART_BYTES` (memory stays bounded whatever its
size: no part is kept once it is sent). A file of one part is one ``PutObject``
(atomic, checked by S3 against its SHA-256); a larger one is a multipart upload,
aborted when anything fails before it completes (an upload is invisible until then;
the bucket's lifecycle also removes any that a crash left).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

# S3's smallest part (but the last) is 5 MiB; 8 MiB keeps a long recording under
# S3's 10,000 parts and the function's memory far below its size.
PART_BYTES = 8 * 1024 * 1024


class UploadError(Exception):
    """S3 did not take the object (retried: the store's fault, not the link's)."""


@dataclass(frozen=True)
class Uploaded:
    key: str
    size: int
    sha256: str


def _drained(head: list[bytes], rest: Iterator[bytes]) -> Iterator[bytes]:
    """``head``'s pieces, then ``rest``'s; each let go once handed on."""
    while head:
        yield head.pop(0)
    yield from rest


def upload(
    s3: Any, bucket: str, key: str, chunks: Iterable[bytes], *, content_type: str, metadata: dict[str, str]
) -> Uploaded:
    """Upload ``chunks`` (each at most :data:`PART_BYTES`, every one but the last
    exactly that) as ``key``. Errors of ``chunks`` itself (the download) propagate
    after the upload is aborted; S3's own are :class:`UploadError`."""
    pieces = iter(chunks)
    head = [next(pieces, b"")]
    following = next(pieces, None)
    try:
        if following is None:
            digest = hashlib.sha256(head[0])
            s3.put_object(
                Bucket=bucket,
                Key=key,
                Body=head[0],
                ContentType=content_type,
                Metadata=metadata,
                ChecksumSHA256=base64.b64encode(digest.digest()).decode("ascii"),
            )
            return Uploaded(key, len(head[0]), digest.hexdigest())
        head.append(following)
        del following
        return _multipart(s3, bucket, key, _drained(head, pieces), content_type=content_type, metadata=metadata)
    except (ClientError, BotoCoreError) as exc:
        raise UploadError(f"S3 refused {key}: {exc}") from exc


def _multipart(
    s3: Any, bucket: str, key: str, parts_in: Iterator[bytes], *, content_type: str, metadata: dict[str, str]
) -> Uploaded:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key, ContentType=content_type, Metadata=metadata)[
        "UploadId"
    ]
    digest = hashlib.sha256()
    parts: list[dict[str, Any]] = []
    size = 0
    try:
        for number, part in enumerate(parts_in, start=1):
            digest.update(part)
            response = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=part)
            parts.append({"PartNumber": number, "ETag": response["ETag"]})
            size += len(part)
            del part  # not held while the next part is read
        s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts})
    except BaseException:
        # Nothing of a failed upload is visible; aborting frees its parts now. If even
        # the abort fails, the bucket's lifecycle rule removes them after a day.
        with contextlib.suppress(ClientError, BotoCoreError):
            s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        raise
    return Uploaded(key, size, digest.hexdigest())
