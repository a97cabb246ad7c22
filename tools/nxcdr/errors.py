"""The error of a request the tool refuses (main makes it one line and exit status 2)."""


class OperatorError(Exception):
    """Something the operator asked that cannot be done as asked (a backwards range, a
    cursor of another listing, a file that would be replaced): main prints its message
    as one line and exits 2. Anything else that is not an AWS error is a bug: its
    traceback is shown."""
