"""Lambda handler of the pns binding not exist push (API Gateway HTTP API, payload 2.0)."""

from nxcloud_cdr.kinds import PNS_BINDING_NOT_EXIST
from nxcloud_cdr.receiver import make_handler

handler = make_handler(PNS_BINDING_NOT_EXIST)
