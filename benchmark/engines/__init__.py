"""The engines: what a run does (``semantics``, shared by every engine), the single engine
(``single``: one run with torch.optim, the reference), the batched engine (``batched``: many
runs of a task as one computation, a chunk of them in ``group``, with ``stacked`` forwards built
from ``layers`` and ``vectorised`` optimizer steps), the models (``models``), device utilities
(``device``) and where a record came from (``provenance``)."""
