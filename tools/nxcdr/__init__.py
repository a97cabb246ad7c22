"""nxcdr: look at stored records, replay quarantined pushes, run the sync, print and rotate the push URLs.

Works against the local stack (``make local``; the default when it is running) and
against a deployed stack (``--stack NAME``, with boto3's usual profile and region).
Run it as ``./nxcdr`` from the repository. Tables by default, ``--json`` on request.

A command group is a module with a ``register(commands, parents)`` that adds its
subcommands, listed in ``cli.COMMAND_GROUPS``; what the groups share is in the
modules named for it (target, arguments, paging, times, output, prompt, errors).
"""
