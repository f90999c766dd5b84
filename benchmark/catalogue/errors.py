"""The one exception type for bad input: the CLI prints its message as one line and exits 2."""

import difflib


class InputError(Exception):
    """Bad user input or missing/corrupt data: says what is wrong and what is valid.

    Raised before anything is written, so catching it leaves no partial output behind.
    """


def unknown_name(kind: str, name: str, valid) -> InputError:
    """The error for a name missing from a registry: the closest names, and every valid one."""
    close = difflib.get_close_matches(str(name), list(valid), n=2, cutoff=0.6)
    guess = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
    return InputError(f"unknown {kind} {name!r}; {guess}valid: {', '.join(sorted(valid))}")
