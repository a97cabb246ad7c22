"""Lambda handler of the scheduled call-centre CDR sync (EventBridge schedule, or a backfill event)."""

from nxcloud_cdr.sync_handler import handler

__all__ = ["handler"]
