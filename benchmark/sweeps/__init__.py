"""Sweeps: sweep files and the tuning protocol (``protocol``; the shipped files are
``<name>.toml`` here), running a sweep phase by phase (``runner``), where its runs run
(``executors``), and the results folder's claims and records (``store``)."""
