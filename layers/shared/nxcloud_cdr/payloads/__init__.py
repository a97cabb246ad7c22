"""One module per kind of NXCLOUD payload: its pydantic model and its mapper to a
:class:`~nxcloud_cdr.records.CallRecord`. Imported one at a time (:mod:`.kinds`), so a
function builds only the models of what it receives."""
