"""CLI sub-commands beyond ``params``/``presets``: each module defines ``register(subparsers)``.

``register`` adds one sub-parser and sets ``func`` to a callable taking the parsed args and returning an
exit code. Raise :class:`calc.errors.CalcError` for bad input; :func:`calc.cli.main` prints it as one
line and exits 2.
"""

COMMAND_MODULES = ("nf4", "memory", "adapter_size", "fit", "preset")
