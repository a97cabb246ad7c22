"""Tools for operators, run from a clone (not shipped in the Lambda layer)."""
