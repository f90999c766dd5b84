"""The catalogue: what can be run, torch-free. Schedules (``schedules``: the registry and its
``schedule`` decorator; ``schedule_core``, ``schedules_pytorch``, ``schedules_beyond``,
``plateau``), tasks (``tasks``), optimizers (``optimizers``), run specs (``spec``), parameter
checking (``params``) and the one error type for bad input (``errors``). Building the command
line, reading a sweep file and checking settings need nothing else, so bad input is answered
in about a second."""
