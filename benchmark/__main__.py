"""``python -m benchmark COMMAND ...``: the command line (``benchmark/cli/``)."""

import sys

try:
    from benchmark.cli import main
except KeyboardInterrupt:  # Ctrl-C while Python loads the command line: one line, no traceback
    print("interrupted (Ctrl-C)", file=sys.stderr)
    sys.exit(130)

if __name__ == "__main__":
    sys.exit(main())
