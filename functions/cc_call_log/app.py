"""Lambda handler of NXCLOUD's call-centre call-log callback (API Gateway HTTP API, payload 2.0)."""

from nxcloud_cdr.kinds import CC_CDR
from nxcloud_cdr.receiver import make_handler

handler = make_handler(CC_CDR)
