"""The `vtrbench` command: list, run, tune, leaderboard, params, metrics, data, report."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import os
import re
import sys
from pathlib import Path

from vtrbench.benchmark.config import (
    HARNESS_KEYS,
    ConfigError,
    computing_defaults,
    offline_rates_elsewhere,
    resolve_config,
    untuned_rate,
    untuned_rate_note,
)
from vtrbench.benchmark.locks import RunLockedError, is_run_writer
from vtrbench.benchmark.metrics import DivergedError
from vtrbench.registry import DATASETS, METHODS, UnknownNameError


def cmd_list(args: argparse.Namespace) -> int:
    if args.what == "backbones":
        from vtrbench.methods.backbone import backbone_rows

        print_columns([("backbone", "backbone.pretrained", "activation (auto)", "source"), *backbone_rows()])
        return 0
    registry = METHODS if args.what == "methods" else DATASETS
    print_columns([(entry.name, entry.source, summary(entry.name, registry.get(entry.name)))
                   for entry in registry.entries()])
    return 0


def print_columns(rows: list[tuple[str, ...]]) -> None:
    """Rows as aligned columns, each as wide as its longest cell (a plugin's long package name too); the
    last column unpadded."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join([*(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)), row[-1]]))


def summary(name: str, obj: object) -> str:
    """What a registered method or dataset is, in a line: its module docstring's first clause, without the
    name it opens with (`dgl: Dynamic Global-Local prompt tuning (...)` -> `Dynamic Global-Local ...`)."""
    doc = inspect.getdoc(inspect.getmodule(obj)) or inspect.getdoc(obj) or ""
    first = " ".join(doc.split("\n\n", 1)[0].split())
    first = re.sub(rf"^{re.escape(name)}\b[^:]*: ", "", first)
    return re.split(r": |\. (?=[A-Z])", first, maxsplit=1)[0].rstrip(".")


def cmd_run(args: argparse.Namespace) -> int:
    """One run; under `torchrun --nproc_per_node=N -m vtrbench run ...` the N processes train it together."""
    from vtrbench.benchmark import distributed as dist
    from vtrbench.benchmark.config import run_dir
    from vtrbench.benchmark.results import reuse_note
    from vtrbench.benchmark.runner import execute_or_reuse, record_failure

    config = resolve_config(args.overrides)
    if untuned_rate(config, args.overrides) and is_run_writer():  # said once in a torchrun group
        print(untuned_rate_note({(config.method, config.dataset): config.train.lr}), file=sys.stderr, flush=True)
    elsewhere = offline_rates_elsewhere(config)
    if elsewhere and is_run_writer():
        print(elsewhere, file=sys.stderr, flush=True)
    try:
        result, ran = execute_or_reuse(config)
        prints = dist.is_main()  # every process holds the result; one prints it
    except (KeyboardInterrupt, RunLockedError):  # a locked run belongs to its holder: nothing recorded
        raise
    except Exception as err:
        record_failure(config, err)
        raise
    finally:
        dist.shutdown()
    if prints:
        if not ran:
            print(f"{run_dir(config)}: finished earlier with this config, reused{reuse_note(result)}",
                  file=sys.stderr, flush=True)
        print(json.dumps({"run": str(run_dir(config)), "status": result["status"], "params": result.get("params"),
                          "metrics": result.get("metrics"), "skipped": skipped_counts(result)}, indent=2))
    return 0


def skipped_counts(result: dict) -> dict[str, int]:
    """How many clips each split set aside (ids and reasons are in result.json's `skipped`)."""
    return {split: value if isinstance(value, int) else len(value)
            for split, value in (result.get("skipped") or {}).items()}


def cmd_params(args: argparse.Namespace) -> int:
    """Count tuned parameters without weights or data: a random init has the same shapes."""
    from vtrbench.benchmark.tuning import parameter_counts

    overrides = [f"method={args.method}", f"backbone.name={args.backbone}", "backbone.pretrained=random"]
    own_options = {f.name for f in dataclasses.fields(METHODS.get(args.method).Config)}
    for item in args.overrides:  # a bare `key=value` is one of the method's own options
        key = item.split("=", 1)[0]
        top = key.split(".", 1)[0]
        # an option of the method wins over a harness key of the same name (vop's `variant=P`)
        harness = key not in own_options and (top in HARNESS_KEYS or top == args.method)
        overrides.append(item if harness else f"{args.method}.{item}")
    config = resolve_config(overrides)
    counts = parameter_counts(config)
    print(json.dumps({"method": config.method, "variant": config.variant, "backbone_name": config.backbone.name,
                      **counts, "tuned_M": float(f"{counts['tuned'] / 1e6:.3g}")}, indent=2))
    return 0


def cmd_metrics(args: argparse.Namespace) -> int:
    from vtrbench.benchmark.metrics import degenerate_reason, metrics_and_ties

    similarity = _load_npy(args.similarity)
    caption_video = _load_npy(args.caption_video) if args.caption_video else None
    try:
        metrics, _, ties = metrics_and_ties(similarity, caption_video)
    except ValueError as err:  # non-finite scores or shapes: name the file(s)
        files = f"{args.similarity} with {args.caption_video}" if args.caption_video else args.similarity
        raise ValueError(f"{files}: {err}") from err
    print(json.dumps({**metrics, "ties": ties}, indent=2))
    if ties["degenerate"]:
        print(f"vtrbench metrics: degenerate: {degenerate_reason(ties)}", file=sys.stderr)
        return 1
    return 0


def _load_npy(path: str):
    """A .npy array of numbers; pickled or object data is never loaded (allow_pickle=False)."""
    import numpy as np

    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (ValueError, EOFError, OSError) as err:
        if "pickle" in str(err) or "Object arrays" in str(err):
            raise ValueError(f"{path}: not a .npy array of numbers (it holds pickled or object data, or is not a "
                             f".npy file; vtrbench never unpickles)") from err
        raise ValueError(f"{path}: truncated or corrupt .npy file ({err})") from err
    if not isinstance(array, np.ndarray):  # an .npz archive of several arrays
        raise ValueError(f"{path}: an .npz archive ({', '.join(array.files) or 'empty'}); expected one .npy array "
                         f"(np.save)")
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        # complex scores would lose their imaginary part, strings or bools mean nothing as scores
        raise ValueError(f"{path}: holds {array.dtype} values; expected real numbers (integers or floats)")
    return array


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from vtrbench.benchmark.leaderboard import run_leaderboard

    return run_leaderboard(args.overrides, quiet=args.quiet)


def cmd_tune(args: argparse.Namespace) -> int:
    from vtrbench.benchmark.tuning import run_tune

    run_tune(args.overrides, quiet=args.quiet)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from vtrbench.reports import write_report

    out = Path(args.out) if args.out else Path("reports")
    paths = write_report(Path(args.runs_dir), out, reference_method=args.reference, resamples=args.resamples,
                         published=not args.no_published, defaults=computing_defaults)
    for kind, path in paths.items():
        print(f"{kind:10s} {path}")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from vtrbench.benchmark import data_commands

    if args.verb == "check":
        return data_commands.data_check(args.dataset, args.overrides, show=args.show)
    return data_commands.data_prepare(args.dataset, args.overrides, splits=args.split)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vtrbench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help=(text := "registered methods, datasets or backbones"), description=text)
    p.add_argument("what", choices=["methods", "datasets", "backbones"])
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("run", help="one run: vtrbench run method=dgl dataset=msrvtt [key=value ...]",
                       description="One run of method=<name> on dataset=<name> (both required), written to "
                                   "runs/<dataset>/<backbone>/<method>[.<variant>]/seed<n>/ (output.runs_dir); any "
                                   "other setting as key=value, e.g. train.lr=0.01 seed=1 dgl.latent=transformer.")
    p.add_argument("overrides", nargs="*", default=[], help="method=.. dataset=.. and key=value settings")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("tune", help=(text := "choose a method's settings on the val split: vtrbench tune method=dgl "
                       "dataset=msrvtt [seed=..] [key=value ...], or methods=[..] datasets=[..]"),
                       description=text + "; prints every trial, the choice and the preset rule")
    p.add_argument("overrides", nargs="*", default=[],
                   help="method=/dataset= or methods=[..]/datasets=[..], and run keys")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("leaderboard", help="every method x dataset x seed, then the report",
                       description="Every method x dataset x seed of the preset (offline: 12 methods, 4 datasets, "
                                   "seeds 0-2), then the report under reports/. workers=N runs N at once without a "
                                   "GPU (default: one per core). Lists are written without spaces: "
                                   "methods=[zero_shot,dgl].")
    p.add_argument("overrides", nargs="*", default=[], help="methods=[..] datasets=[..] seeds=[..] workers=N and run "
                   "keys; tune=true "
                   "chooses each method's settings on val first; launcher=local|slurm|submitit-local and slurm.* "
                   "(partition, gpus_per_node, nodes, time_min..)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_leaderboard)

    p = sub.add_parser("params", help=(text := "tuned-parameter count of a method (no weights, no data)"),
                       description=text + ", e.g. `vtrbench params dgl latent=transformer data.num_frames=12`")
    p.add_argument("method")
    p.add_argument("--backbone", default="ViT-B-32", help="open_clip model name or vtrbench-tiny (default ViT-B-32)")
    p.add_argument("overrides", nargs="*", default=[], help="the method's options, e.g. latent=linear")
    p.set_defaults(func=cmd_params)

    p = sub.add_parser("metrics", help=(text := "retrieval metrics of a saved [captions, videos] similarity matrix"),
                       description=text + ", with its ties; a NaN or inf score is an error (exit 2), a degenerate "
                                          "matrix exits 1")
    p.add_argument("similarity", help=".npy file, rows = captions, columns = videos")
    p.add_argument("--caption-video", help=".npy file with the video column of each caption (multi-caption)")
    p.set_defaults(func=cmd_metrics)

    p = sub.add_parser("data", help=(text := "check a dataset's files, or cache its frames"), description=text)
    verbs = p.add_subparsers(dest="verb", required=True)
    v = verbs.add_parser("check", help=(text := "train/val/test sizes, captions, missing/unreadable/short videos"),
                         description=text)
    v.add_argument("dataset")
    v.add_argument("overrides", nargs="*", default=[], help="e.g. vatex.root=/data/vatex")
    v.add_argument("--show", type=int, default=10, help="ids listed per problem")
    v.set_defaults(func=cmd_data)
    v = verbs.add_parser("prepare", help=(text := "decode every clip once into a frame cache"),
                         description=text + ", with the preset and settings of the runs that read it (preset=paper "
                                            "for the published recipes)")
    v.add_argument("dataset")
    v.add_argument("overrides", nargs="*", default=[], help="e.g. vatex.root=/data/vatex backbone.name=ViT-B-32")
    v.add_argument("--split", action="append", choices=["train", "val", "test"], help="default: all three")
    v.set_defaults(func=cmd_data)

    p = sub.add_parser("report", help=(text := "tables, plots and confidence intervals from result files"),
                       description=text + " (every result.json under RUNS_DIR)")
    p.add_argument("runs_dir")
    p.add_argument("--out", help="output folder (default: reports/)")
    p.add_argument("--reference", default=None,
                   help="method the paired bootstrap compares against (default zero_shot); a name given must be "
                        "a method of the runs")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples B (default 1000)")
    p.add_argument("--no-published", action="store_true", help="leave out the published reference rows")
    p.set_defaults(func=cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # `key=value` overrides may follow an option (`vtrbench params vop --backbone ViT-B-32 data.num_frames=12`):
    # argparse stops collecting positionals at the first option, so gather the rest into the overrides
    args, extra = parser.parse_known_args(argv)
    if extra:
        flag = next((item for item in extra if item.startswith("-")), None)
        if flag is not None:  # `--lr 0.1`: settings are key=value, and the usage to show is the command's
            print(f"vtrbench {args.command}: error: {flag!r}: not an option of this command; settings are written "
                  f"key=value (e.g. train.lr=0.1; `vtrbench {args.command} --help`)", file=sys.stderr)
            return 2
        if not hasattr(args, "overrides") or any("=" not in item for item in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    try:
        return args.func(args)
    except BrokenPipeError:  # `vtrbench list backbones | head`: the reader left; nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush cannot fail too
        return 141  # 128 + SIGPIPE, as a shell reports a process the signal ended
    except (ConfigError, UnknownNameError, OSError, ValueError, RunLockedError, DivergedError) as err:  # one line
        message = " ".join(str(err).split("\n"))
        print(f"vtrbench {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"vtrbench {args.command}: interrupted; finished runs are kept, the next call resumes",
              file=sys.stderr)
        return 130

