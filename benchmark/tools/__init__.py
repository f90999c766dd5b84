"""Tools beside the sweeps: the lr range test (``lr_find``), the throughput benchmark
(``perf``) and the schedule listing and gallery (``gallery``)."""
