"""Lambda handler of the change publisher (the table's stream: each change of a call to the bus and the lake)."""

from nxcloud_cdr.publisher_handler import handler

__all__ = ["handler"]
