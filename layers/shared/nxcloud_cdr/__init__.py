"""nxcloud-cdr: NXCLOUD call records into DynamoDB. The shared layer's package.

Modules say what they hold: ``models`` (payloads), ``mapping`` (payload to record,
pure), ``store`` (DynamoDB), ``receiver`` (the push flow), ``apigw`` (HTTP events),
``push_auth`` (URL token), ``config`` (environment), ``times``/``phones``/``enums``
(normalisation).
"""

__version__ = "0.1.0"
