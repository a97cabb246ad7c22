"""The streamed upload to S3 (moto): whole objects or nothing, whatever fails midway."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from nxcloud_cdr.recordings.fetch import FetchError
from nxcloud_cdr.recordings.upload import PART_BYTES, UploadError, upload

BUCKET = "recordings-test"


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def pieces(total: int, fail_after: int | None = None) -> Iterator[bytes]:
    """``total`` bytes in parts of PART_BYTES (the last shorter); a download error
    after ``fail_after`` parts."""
    sent = 0
    number = 0
    while sent < total:
        if fail_after is not None and number == fail_after:
            raise FetchError("interrupted", "the host hung up", retryable=True)
        piece = bytes([number % 251]) * min(PART_BYTES, total - sent)
        sent += len(piece)
        number += 1
        yield piece


def expected(total: int) -> bytes:
    return b"".join(pieces(total))


def test_a_small_file_is_one_checked_put(s3: Any):
    done = upload(
        s3, BUCKET, "recordings/a.mp3", [b"ID3" + b"x" * 1000], content_type="audio/mpeg", metadata={"a": "b"}
    )
    body = s3.get_object(Bucket=BUCKET, Key="recordings/a.mp3")
    data = body["Body"].read()
    assert (done.size, done.sha256) == (1003, hashlib.sha256(data).hexdigest())
    assert body["ContentType"] == "audio/mpeg"
    assert body["Metadata"] == {"a": "b"}


def test_a_large_file_is_a_multipart_upload_with_the_whole_files_checksum(s3: Any):
    total = 2 * PART_BYTES + 12345
    done = upload(s3, BUCKET, "recordings/big.wav", pieces(total), content_type="audio/wav", metadata={})
    data = s3.get_object(Bucket=BUCKET, Key="recordings/big.wav")["Body"].read()
    assert data == expected(total)
    assert (done.size, done.sha256) == (total, hashlib.sha256(data).hexdigest())
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


@pytest.mark.parametrize("fail_after", [0, 1, 2, 3])
def test_a_download_that_fails_midway_leaves_nothing(s3: Any, fail_after: int):
    with pytest.raises(FetchError):
        upload(
            s3, BUCKET, "recordings/cut.mp3", pieces(4 * PART_BYTES, fail_after), content_type="audio/mpeg", metadata={}
        )
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET)
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


def test_s3_failing_midway_is_an_upload_error_and_leaves_nothing(s3: Any, monkeypatch: pytest.MonkeyPatch):
    calls = {"parts": 0}
    real = s3.upload_part

    def flaky(**arguments: Any) -> Any:
        calls["parts"] += 1
        if calls["parts"] == 2:
            raise ClientError({"Error": {"Code": "InternalError", "Message": "boom"}}, "UploadPart")
        return real(**arguments)

    monkeypatch.setattr(s3, "upload_part", flaky)
    with pytest.raises(UploadError):
        upload(s3, BUCKET, "recordings/flaky.mp3", pieces(3 * PART_BYTES), content_type="audio/mpeg", metadata={})
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET)
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
