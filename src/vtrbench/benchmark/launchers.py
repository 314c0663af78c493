"""Where the runs of a leaderboard execute: on this machine (the default: in this process, or without a GPU in
`workers` worker processes side by side), or one submitit job per run.

    vtrbench leaderboard [launcher=local] ...                        here: `workers` runs at a time
    vtrbench leaderboard launcher=slurm slurm.partition=gpu ...      one SLURM job per run (a job array)
    vtrbench leaderboard launcher=submitit-local ...                 one local subprocess per run (testing)

Every launcher executes a run the same way (`runner.execute` on the run's overrides), so a job writes its
result, weights and config itself, exactly as a local run does, and a failing run leaves a failed result.
A job with several GPUs (`slurm.gpus_per_node`, `slurm.nodes`) runs one task per GPU; the tasks form one
process group (what torchrun would set up) and train one run together.

No pickle is read by the submitting process: when a job ends, its run's `result.json` says how it went
(`job.result()`, which unpickles submitit's output file, is never called). The job itself unpickles the
callable this process submitted (`<logs>/<job id>/<job id>_submitted.pkl`, written by the same call).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from vtrbench.benchmark.config import ConfigError, first_line, parse_overrides, resolve_config, run_dir
from vtrbench.benchmark.locks import LOCK_FILE, RunLockedError, describe, locked_by_another
from vtrbench.benchmark.results import read_result
from vtrbench.processes import end_with_parent, usable_cores
from vtrbench.schema import COMPLETE_STATUSES, RESULT_FILE

LOCAL, SUBMITIT_LOCAL, SLURM = "local", "submitit-local", "slurm"
LAUNCHERS = (LOCAL, SUBMITIT_LOCAL, SLURM)
LAUNCH_KEYS = ("launcher", "slurm", "workers")  # command-line keys of the launcher, never part of a run's config


@dataclass
class SlurmOptions:
    """One job per run. submitit-local honours time_min, gpus_per_node and logs; the rest is SLURM's."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    nodes: int = 1
    gpus_per_node: int = 1  # one task (process) per GPU; 0: a single CPU task
    cpus_per_task: int = 8  # data.num_workers of a run should fit in these
    mem_gb: int | None = None
    time_min: int = 24 * 60
    array_parallelism: int = 32  # how many runs of the job array may run at once
    additional: dict[str, str] = field(default_factory=dict)  # more sbatch options, e.g. {exclude: node12}
    logs: str | None = None  # submitit's folder (scripts, pickles, logs); default: <runs_dir>/.submitit


@dataclass
class LaunchOptions:
    launcher: str = LOCAL
    # launcher=local: how many runs at once, each in a process of its own with cores // workers threads;
    # 0 = auto (`auto_workers`). 1 runs them one after the other in this process.
    workers: int = 0
    slurm: SlurmOptions = field(default_factory=SlurmOptions)


def auto_workers() -> int:
    """One run per CPU core (at most 8) on a machine without a GPU; one run with a GPU.

    On CPU a run's matrices are small: runs side by side with one thread each beat one run with all the
    threads (`python perf/workers.py` measures it; the README gives the numbers), and more threads in
    all than cores make OpenMP threads spin against each other so that every run crawls.
    """
    import torch

    if torch.cuda.is_available():
        return 1
    return max(1, min(8, usable_cores()))


def threads_per_worker(workers: int) -> int:
    return max(1, usable_cores() // max(1, workers))


def split_launch_options(overrides: list[str]) -> tuple[LaunchOptions, list[str]]:
    """The launcher's own `launcher=` / `slurm.*` keys, checked, and the overrides left for the runs."""
    own = [o for o in overrides if o.split("=", 1)[0].split(".", 1)[0] in LAUNCH_KEYS]
    schema = OmegaConf.structured(LaunchOptions)
    try:
        merged = OmegaConf.merge(schema, parse_overrides(own))
    except OmegaConfBaseException as err:
        raise ConfigError(f"command line: launcher options: {first_line(err)}") from err
    options: LaunchOptions = OmegaConf.to_object(merged)
    if options.launcher not in LAUNCHERS:
        raise ConfigError(f"launcher={options.launcher!r}: expected one of {', '.join(LAUNCHERS)}")
    if options.workers < 0:
        raise ConfigError(f"workers={options.workers}: expected 0 (auto) or a number of runs at once")
    if options.workers > 1 and options.launcher != LOCAL:
        raise ConfigError(f"workers={options.workers} is launcher=local's option; {options.launcher} runs a "
                          f"job per run (slurm.array_parallelism sets how many at once)")
    if options.launcher == SUBMITIT_LOCAL and options.slurm.nodes != 1:
        raise ConfigError("launcher=submitit-local runs on this machine only: slurm.nodes must be 1")
    return options, [o for o in overrides if o not in own]


@dataclass
class PendingRun:
    """A leaderboard run that has no finished result yet."""

    label: str  # "[3/8] msrvtt dgl seed0", for progress lines
    overrides: list[str]  # its `vtrbench run` command line
    config: DictConfig
    elsewhere: bool = False  # set when another live process was found running it: not run here
    finished_elsewhere: bool = False  # set when another process finished it before this one could start it
    unrecorded: bool = False  # set when it failed and its folder could not take the failure's result file


def launch(runs: list[PendingRun], options: LaunchOptions, quiet: bool = False) -> int:
    """Execute `runs` with the chosen launcher, printing one line per run; returns how many failed."""
    if options.launcher == LOCAL:
        workers = min(options.workers or auto_workers(), len(runs))
        if workers <= 1:
            return run_in_process(runs, quiet)
        return run_in_workers(runs, workers, quiet)
    return run_as_submitit_jobs(runs, options, quiet)


def summary_line(result: dict) -> str:
    t2v = result["metrics"]["t2v"]
    skipped = len(result.get("skipped", {}).get("test") or ())
    degenerate = f"DEGENERATE, not ranked: {result.get('reason', '')}; " if result["status"] == "degenerate" else ""
    return (f"{degenerate}T2V R@1 {t2v['R1']:.1f}, tuned {result['params']['tuned']:,}, "
            f"train {result['timing']['train_s']:.0f} s"
            + (f", on a smaller test set: {skipped} test clip(s) skipped" if skipped else ""))


def run_in_process(runs: list[PendingRun], quiet: bool) -> int:
    from vtrbench.benchmark.runner import execute_or_reuse, record_failure

    failed = 0
    for run in runs:
        print(f"{run.label}: running", flush=True)
        if quiet:
            run.config.quiet = True
        try:
            result, ran = execute_or_reuse(run.config)
        except RunLockedError as err:  # started by another process since the leaderboard looked
            run.elsewhere = True
            print(f"{run.label}: not run here: {err}", flush=True)
            continue
        except Exception as err:  # one failing run must not stop the others
            failed += 1
            failure = record_failure(run.config, err)
            run.unrecorded = bool(failure.get("unrecorded"))
            print(f"{run.label}: {failure['status'].upper()}: {failure['error']}", flush=True)
            continue
        run.finished_elsewhere = not ran
        print(f"{run.label}: {'finished by another process meanwhile: ' if not ran else ''}{summary_line(result)}",
              flush=True)
    return failed


def _start_worker(threads: int, parent: int) -> None:
    import torch

    end_with_parent(parent)  # a leaderboard killed (SIGTERM, SIGKILL) takes its workers and their runs with it
    torch.set_num_threads(threads)


def _run_in_worker(overrides: list[str]) -> tuple[str, str]:
    """One run in a worker process: ("finished" | "reused" | "elsewhere" | "failed" | "unrecorded", its line or
    error). Only these two strings come back to the leaderboard; the run writes its own result files."""
    from vtrbench.benchmark.runner import execute_or_reuse

    config = resolve_config(overrides)
    try:
        result, ran = execute_or_reuse(config)
    except RunLockedError as err:
        return "elsewhere", str(err)
    except Exception as err:  # one failing run must not stop the others
        return record_failure_of(config, err)
    return ("finished" if ran else "reused"), summary_line(result)


# A run whose worker process died this many times while it ran fails; the others start again in new workers.
WORKER_DEATHS = 2


def run_in_workers(runs: list[PendingRun], workers: int, quiet: bool) -> int:
    """`workers` runs at a time, each in a worker process of its own with `threads_per_worker` threads.

    Workers are started fresh (spawn, not fork: this process has used OpenMP already) and reused for many
    runs, so torch is imported once per worker. A run prints its line when it ends. A worker that dies (killed,
    out of memory) breaks its pool, and the runs not finished then start again in a new one: only a run whose
    worker died `WORKER_DEATHS` times while it ran fails. Interrupted, the leaderboard starts no further run
    and stops the workers, whose runs resume at the next call."""
    import multiprocessing
    import time
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    threads = threads_per_worker(workers)
    print(f"{len(runs)} run(s) on {workers} worker process(es), {threads} thread(s) each", flush=True)
    failed, deaths = 0, {id(run): 0 for run in runs}
    context = multiprocessing.get_context("spawn")
    waiting = list(runs)
    while waiting:
        started, broken = time.time(), []
        pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                                   initargs=(threads, os.getpid()))
        try:
            futures = {pool.submit(_run_in_worker, [*run.overrides, *(["quiet=true"] if quiet else [])]): run
                       for run in waiting}
            for future in as_completed(futures):
                run = futures[future]
                try:
                    status, line = future.result()
                except BrokenProcessPool:  # a worker died: this run was running or waiting beside it
                    broken.append(run)
                    continue
                except Exception as err:  # anything else that stopped the run in its worker
                    status, line = record_failure_of(run.config, err)
                if status == "elsewhere":
                    run.elsewhere = True
                    print(f"{run.label}: not run here: {line}", flush=True)
                    continue
                run.unrecorded = status == "unrecorded"
                failed += status in ("failed", "unrecorded")
                run.finished_elsewhere = status == "reused"
                prefix = {"failed": "FAILED: ", "unrecorded": "FAILED: ",
                          "reused": "finished by another process meanwhile: "}.get(status, "")
                print(f"{run.label}: {prefix}{line}", flush=True)
        except BaseException:  # Ctrl-C: start nothing more, stop the workers (their runs resume next time)
            _stop(pool)
            raise
        pool.shutdown(wait=True)
        running = [run for run in broken if _locked_since(run, started)] or broken  # whose worker it may be
        for run in running:
            deaths[id(run)] += 1
        waiting = []
        for run in broken:
            if deaths[id(run)] >= WORKER_DEATHS:
                failed += 1
                error = RuntimeError(f"its worker process died {deaths[id(run)]} times while it ran (killed, or "
                                     f"out of memory)")
                status, line = record_failure_of(run.config, error)
                run.unrecorded = status == "unrecorded"
                print(f"{run.label}: FAILED: {line}", flush=True)
            else:
                waiting.append(run)
        if waiting:
            print(f"a worker process died (killed, or out of memory): {len(waiting)} run(s) not finished start "
                  f"again in new worker processes", flush=True)
    return failed


def _result_stamp(run: PendingRun) -> tuple[int, int, int] | None:
    """Which result file the run's folder holds (inode, size, modification time; None: none): results are
    written to a new file renamed into place, so a new result has another stamp, whatever the clocks say."""
    try:
        stat = (run_dir(run.config) / RESULT_FILE).stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def _locked_since(run: PendingRun, since: float) -> bool:
    """Whether a worker took this run's lock in this round: it was running, not waiting, when its pool broke
    (a killed worker leaves the lock file; one that ends well removes it)."""
    try:
        return (run_dir(run.config) / LOCK_FILE).stat().st_mtime >= since
    except OSError:
        return False


def _stop(pool) -> None:
    """Cancel the runs not started and end the workers now (shutdown would wait for every queued run)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()


def record_failure_of(config: DictConfig, error: BaseException) -> tuple[str, str]:
    """Record a run's failure: ("failed", or "unrecorded" when its folder could not take the file; the error)."""
    from vtrbench.benchmark.runner import record_failure

    failure = record_failure(config, error)
    return ("unrecorded" if failure.get("unrecorded") else "failed"), str(failure.get("error"))


@dataclass
class RunJob:
    """One run as a submitit job: what `vtrbench run <overrides>` does, in the folder it was submitted from
    (relative `output.runs_dir` and data paths mean the same there). Every task of the job calls it."""

    overrides: list[str]
    workdir: str

    def __call__(self) -> dict:
        import submitit

        from vtrbench.benchmark import distributed as dist
        from vtrbench.benchmark.runner import execute, record_failure

        os.chdir(self.workdir)
        if submitit.JobEnvironment().num_tasks > 1:
            # RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT for init_from_environment; every task keeps
            # all of the node's GPUs visible and picks cuda:LOCAL_RANK, as under torchrun
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        config = resolve_config(self.overrides)
        try:
            return execute(config)
        except RunLockedError:  # another process runs it: its result is not this job's to write
            raise
        except Exception as err:
            if dist.is_main():
                record_failure(config, err)
            raise
        finally:
            dist.shutdown()


def make_executor(options: LaunchOptions, runs_dir: Path) -> Any:
    try:
        import submitit
    except ImportError as err:
        raise ConfigError(f"launcher={options.launcher} needs submitit: pip install 'vtrbench[cluster]'") \
            from err
    slurm = options.slurm
    folder = Path(slurm.logs) if slurm.logs else runs_dir / ".submitit"
    cluster = "slurm" if options.launcher == SLURM else "local"
    try:
        executor = submitit.AutoExecutor(folder=folder / "%j", cluster=cluster)
    except RuntimeError as err:  # no srun on this machine
        raise ConfigError(f"launcher={options.launcher}: {err}") from err
    executor.update_parameters(  # None: not asked for, left to the cluster's defaults
        name="vtrbench",
        timeout_min=slurm.time_min,
        nodes=slurm.nodes,
        gpus_per_node=slurm.gpus_per_node or None,
        tasks_per_node=max(1, slurm.gpus_per_node),
        cpus_per_task=slurm.cpus_per_task,
        mem_gb=slurm.mem_gb,
        slurm_partition=slurm.partition,
        slurm_account=slurm.account,
        slurm_qos=slurm.qos,
        slurm_constraint=slurm.constraint,
        slurm_array_parallelism=slurm.array_parallelism,
        slurm_additional_parameters=dict(slurm.additional) or None,
    )
    return executor


def run_as_submitit_jobs(runs: list[PendingRun], options: LaunchOptions, quiet: bool = False) -> int:
    """Submit every run as one job of a job array, then wait and report each as it ends."""
    if not runs:
        return 0
    import submitit

    from vtrbench.benchmark.runner import record_failure

    executor = make_executor(options, Path(runs[0].config.output.runs_dir))
    workdir = str(Path.cwd())
    before = {id(run): _result_stamp(run) for run in runs}  # a result file that is still this is not the job's
    with executor.batch():
        # quiet=true as the local launcher sets it, so that both save the same config.yaml
        jobs = [executor.submit(RunJob([*run.overrides, *(["quiet=true"] if quiet else [])], workdir))
                for run in runs]
    run_of_job = {job.job_id: run for job, run in zip(jobs, runs, strict=True)}
    for job, run in zip(jobs, runs, strict=True):
        print(f"{run.label}: job {job.job_id}, log {job.paths.stderr}", flush=True)
    failed = 0
    # a local job's state is a process's; SLURM's is a scheduler query, which submitit rate-limits anyway
    poll_s = 1.0 if options.launcher == SUBMITIT_LOCAL else 30.0
    for job in submitit.helpers.as_completed(jobs, poll_frequency=poll_s):
        run = run_of_job[job.job_id]
        # The run's own result.json tells how it ended, if it was written since the job was submitted (an older
        # one, a failure of an earlier call, says nothing of this job); submitit's result pickle is never read
        # (job.result() would unpickle it), so this process unpickles nothing.
        result = read_result(run_dir(run.config)) if _result_stamp(run) != before[id(run)] else None
        if result is not None and result.get("status") in COMPLETE_STATUSES:
            print(f"{run.label}: {summary_line(result)}", flush=True)
            continue
        holder = locked_by_another(run_dir(run.config))
        if holder is not None:  # the job found another process running it, which still does: not this job's
            run.elsewhere = True
            print(f"{run.label}: not run here: {run_dir(run.config)} is being run by {describe(holder)}",
                  flush=True)
            continue
        failed += 1
        log = job.paths.stderr
        if result is not None and result.get("status") in ("failed", "diverged"):  # the job's own account
            reason = result["error"]
        else:  # killed (time limit, memory) before it could write one
            reason = f"job {job.job_id} ended ({job.state}) without a result"
            record_failure(run.config, RuntimeError(f"{reason}; see {log}"))
        print(f"{run.label}: FAILED (job {job.job_id}): {reason}\n    log: {log}", flush=True)
    return failed
