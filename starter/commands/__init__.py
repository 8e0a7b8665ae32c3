"""The ``hvlab`` commands, one module per command or family of commands, named for them.

``starter.cli`` mounts them; they build on the lower modules of ``starter`` (console, options,
runs, checks, stack, schedules, ...), never on ``starter.cli`` and never on a private name of
another module.
"""
