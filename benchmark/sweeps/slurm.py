"""The ``slurm`` executor: a submitit job array whose tasks take whole groups of runs (``Shard``),
each task under the sweep's deadline on its own, checkpointed and requeued on Slurm's warning
before its time limit. Registered in ``executors.EXECUTORS`` (which imports this module)."""

import time
from collections.abc import Iterator

from benchmark.catalogue.spec import RunSpec
from benchmark.sweeps.deadline import Deadline
from benchmark.sweeps.executors import (
    Options,
    Outcome,
    as_dicts,
    executor,
    import_plugins,
    one_line,
    run_group,
    units,
    uses_cuda,
)
from benchmark.sweeps.store import Store


class Shard:
    """A Slurm array task: the units of a shard, (train, pending) each, in turn, each started
    only when it fits the deadline (at the costs measured in this task).

    On SIGUSR2, Slurm's warning before the time limit (or a preemption), submitit calls
    ``checkpoint``, requeues the task and ends it: its claims go with it, and the group in
    progress is lost. The requeued task runs the same shard: the finished runs are skipped,
    the lost group runs again whole.
    """

    def __call__(self, shard: list[tuple[list[dict], list[dict]]], options: Options):
        import_plugins(options.plugins)
        deadline, out = Deadline(options.deadline), []
        for train, pending in shard:
            group = [RunSpec.from_dict(s) for s in train]
            if not deadline.fits(group):
                out += [Outcome(RunSpec.from_dict(s).key, "deferred") for s in pending]
                continue
            t0 = time.perf_counter()
            out += run_group(train, pending, options)
            for spec in group:
                deadline.costs.add(spec, (time.perf_counter() - t0) / len(group))
        return out

    def checkpoint(self, shard, options):
        """What the requeued task runs: the same shard."""
        import submitit

        return submitit.helpers.DelayedSubmission(self, shard, options)


@executor("slurm")
def slurm(
    phase: list[RunSpec], pending: list[RunSpec], options: Options, deadline: Deadline
) -> Iterator[Outcome]:
    """A submitit job array: ``array_parallelism`` tasks, each running its groups in turn
    under ``options.deadline`` (``Shard``), requeued after Slurm's warning."""
    import submitit

    settings = dict(options.slurm)
    cluster = settings.pop("cluster", None)  # tests: submitit's "local" or "debug"
    ex = submitit.AutoExecutor(folder=options.results / "slurm" / "%j", cluster=cluster)
    parallel = settings.get("array_parallelism", 16)
    todo = units(phase, pending, options, uses_cuda(options))
    tasks = min(len(todo), parallel)
    ex.update_parameters(
        timeout_min=settings.get("time_min", 60),
        gpus_per_node=settings.get("gpus_per_task", 0),
        slurm_partition=settings.get("partition"),
        slurm_array_parallelism=tasks,
    )
    shards = [[as_dicts(u) for u in todo[i::tasks]] for i in range(tasks)]
    jobs = ex.map_array(Shard(), shards, [options] * tasks)
    waiting = dict(zip(jobs, shards, strict=True))
    while waiting:
        for job in [job for job in waiting if job.done()]:
            shard = waiting.pop(job)
            try:
                outcomes = job.result()
            except Exception as err:  # the array task died: its unfinished runs failed
                keys = [RunSpec.from_dict(s).key for _, pending in shard for s in pending]
                store = Store(options.results)
                error = one_line(err)
                outcomes = [Outcome(k, "failed", error=error) for k in keys if not store.done(k)]
            deadline.reached |= any(o.status == "deferred" for o in outcomes)
            yield from outcomes
        time.sleep(0.2 if waiting else 0)
