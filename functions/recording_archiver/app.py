"""Lambda handler of the recording archiver (the table's stream, items whose recordings are pending)."""

from nxcloud_cdr.recordings.handler import handler

__all__ = ["handler"]
