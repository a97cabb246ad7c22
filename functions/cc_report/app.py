"""Lambda handler of the cc report push (API Gateway HTTP API, payload 2.0)."""

from nxcloud_cdr.kinds import CC_REPORT
from nxcloud_cdr.receiver import make_handler

handler = make_handler(CC_REPORT)
