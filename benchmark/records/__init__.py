"""The records layer: the run record (``record``), the tidy tables derived from records
(``tidy``), the metrics both compute (``metrics``), and crash-safe writes (``atomic``, with the
fault points of the robustness tests, ``faults``). Torch-free, and it imports nothing else of
``benchmark``: it is the one part of ``benchmark`` the report reads (the import contract in
pyproject.toml holds it so)."""
