"""Lambda handler of the pns call result push (API Gateway HTTP API, payload 2.0)."""

from nxcloud_cdr.kinds import PNS_CALL_RESULT
from nxcloud_cdr.receiver import make_handler

handler = make_handler(PNS_CALL_RESULT)
