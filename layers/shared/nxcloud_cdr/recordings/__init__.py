"""The recording archiver: each recording a stored record links to, copied to the
stack's S3 bucket before NXCLOUD's link expires (docs/recordings.md).

- :mod:`.fetch`: the download, HTTPS only, from allowed hosts, never a private address;
- :mod:`.upload`: the streamed upload to S3 (no half-written object, ever);
- :mod:`.archiver`: an item's recordings archived and recorded on the item.

Imported by the archiver function and the operator tool only: no push loads it.
"""
