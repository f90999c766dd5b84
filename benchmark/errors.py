"""The one exception type for bad input: the CLI prints its message as one line and exits 2."""


class InputError(Exception):
    """Bad user input or missing/corrupt data: says what is wrong and what is valid.

    Raised before anything is written, so catching it leaves no partial output behind.
    """


def unknown_name(kind: str, name: str, valid) -> InputError:
    """The error for a name missing from a registry: lists every valid name."""
    return InputError(f"unknown {kind} {name!r}; valid: {', '.join(sorted(valid))}")
