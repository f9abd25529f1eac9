"""Placeholder: replaced by the module that implements this command."""


def register(subparsers) -> None:
    pass
