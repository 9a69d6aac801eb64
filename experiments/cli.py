"""The ``emvi`` command: run configs, list what ships, re-render reports.

Exit status: 0 done; 2 a user error (a bad command line, config, data file or path),
answered in one line ``emvi: error: ...``; 1 a bug in emvi, answered in one line that
says so (``EMVI_DEBUG=1`` shows the traceback); 130 interrupted (Ctrl-C or SIGTERM).

This module imports only the standard library at the top: torch, Pyro and the models
load inside the commands, after the signal handling is in place, so an interrupt during
start-up ends in one line too.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import traceback
import warnings
from pathlib import Path

EXIT_BUG = 1
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A bad command line."""


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, as for every user error
        raise UsageError(message)


class Bars:
    """tqdm progress bars on stderr: one over cells, one per fit."""

    def __init__(self, quiet: bool):
        self.quiet, self.bar, self.bars_shown = quiet, None, False

    def cell_started(self, experiment, cell, index, total):
        self.prefix = f"[{index + 1}/{total}] {experiment}" + ("" if cell == "all" else f" {cell}")

    def fit_started(self, label, total):
        if self.quiet:
            return
        from tqdm import tqdm

        self.bars_shown = True
        self.bar = tqdm(total=total, desc=f"{self.prefix} {label}", file=sys.stderr,
                        leave=False, dynamic_ncols=True, mininterval=0.2)

    def fit_progress(self, progress):
        if self.bar is not None:
            self.bar.n = progress.iteration
            self.bar.set_postfix_str(f"objective {progress.objective:.6g}", refresh=False)
            self.bar.refresh() if progress.iteration % 20 == 0 else None

    def fit_finished(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def cell_finished(self, experiment, cell, done, total):
        """A line per cell where no fit bars show (cells computed by --jobs workers)."""
        if not self.quiet and not self.bars_shown:
            where = experiment + ("" if cell == "all" else f" {cell}")
            print(f"[{done}/{total}] {where} done", file=sys.stderr, flush=True)


def _terminate(signum, frame):
    raise KeyboardInterrupt


def resume_hint(args, path) -> str:
    """The command that finishes an interrupted run, with the options it was started with."""
    import shlex

    argv = ["emvi", "run", args.config]
    for text in args.set or []:
        argv += ["--set", text]
    if args.smoke:
        argv.append("--smoke")
    if args.threads is not None:
        argv += ["--threads", str(args.threads)]
    if args.jobs != 1:
        argv += ["--jobs", str(args.jobs)]
    if args.device is not None:
        argv += ["--device", args.device]
    argv += ["--out", str(args.out), "--resume", str(path)]
    return shlex.join(argv)


def cmd_run(args) -> int:
    from ..inference.distributed import torchrun_environment

    if args.workers > 1 and args.jobs > 1:
        raise UsageError("--workers and --jobs cannot be combined: --workers shares each fit "
                         "between processes, --jobs computes sweep cells side by side")
    if torchrun_environment():
        if args.workers > 1:
            raise UsageError("--workers: torchrun starts the processes (--nproc_per_node); "
                             "drop --workers")
        return _run_torchrun(args)
    if args.workers > 1:
        return _run_workers(args)
    from .config import load
    from .runner import Interrupted, run

    config = load(args.config, args.set or [], smoke=args.smoke)
    bars = Bars(args.quiet)
    try:
        path = run(config, Path(args.out), bars, resume=args.resume, threads=args.threads,
                   jobs=args.jobs, device=args.device)
    except Interrupted as exc:
        print(f"emvi: interrupted; {exc.done} of {exc.total} cells kept in {exc.path}; "
              f"finish with: {resume_hint(args, exc.path)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        bars.fit_finished()  # a bar left open by an error would garble the message
    if not args.quiet:
        summarize(path)
    print(f"report: {path / 'report.md'}")
    return 0


def _run_workers(args) -> int:
    """``--workers N``: N local ranks share every fit; a failing rank is reported."""
    from .workers import WorkerFailed, launch

    try:
        path = Path(launch(args, args.workers))
    except WorkerFailed as exc:
        print(f"emvi: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR if exc.user else EXIT_BUG
    if not args.quiet:
        summarize(path)
    print(f"report: {path / 'report.md'}")
    return 0


def _run_torchrun(args) -> int:
    """One rank of torchrun's group: rank 0 writes the run and prints as usual."""
    from . import workers

    group = workers.join()
    try:
        path = workers.run_rank(args, group)
    finally:
        workers.leave()
    if path is not None:
        if not args.quiet:
            summarize(path)
        print(f"report: {path / 'report.md'}")
    return 0


def summarize(path: Path) -> None:
    """Print each experiment's comparison: a small table, or one line per sweep cell."""
    from . import store

    metrics = store.read_json(path / "metrics.json")
    for name, exp in metrics["experiments"].items():
        cells = exp["cells"]
        if len(cells) == 1:
            print(comparison_table(name, cells[0]))
            continue
        print(f"{name}: {len(cells)} cells")
        for cell in cells:
            parts = [f"{label} {fit['log_likelihood']:.6f} ({fit['iterations']} it, "
                     f"{cell['timing']['seconds'][label]:.2f}s)"
                     for label, fit in cell["fits"].items()]
            print(f"  {cell['cell']}: " + ", ".join(parts))


def comparison_table(name: str, cell: dict) -> str:
    """EM and VI side by side, with the truth where it is known."""
    fits, comp = cell["fits"], cell["comparison"]
    labels = list(fits)
    rows = [("log-likelihood", [f"{fits[m]['log_likelihood']:.6f}" for m in labels]),
            ("iterations", [str(fits[m]["iterations"]) for m in labels]),
            ("seconds", [f"{cell['timing']['seconds'][m]:.3f}" for m in labels])]
    for param in (comp["truth_errors"] or {}).get(labels[0], {}):
        rows.append((f"max |{param} - truth|", [f"{comp['truth_errors'][m][param]:.3g}"
                                                for m in labels]))
    width = max(len(r[0]) for r in rows) + 2
    lines = [f"{name} ({cell['model_description']}, n={cell['data']['n']})",
             "  " + "".join(["".ljust(width)] + [m.upper().rjust(16) for m in labels])]
    lines += ["  " + label.ljust(width) + "".join(v.rjust(16) for v in values)
              for label, values in rows]
    if len(labels) == 2:
        pair = f"{labels[0]} vs {labels[1]}"
        worst = max(comp["parameter_errors"][pair].values(), default=0.0)
        lines.append(f"  EM vs VI: relative objective gap {comp['relative_gap']:.1e}, "
                     f"largest parameter difference {worst:.1e}")
    return "\n".join(lines)


def cmd_list(args) -> int:
    import tomllib

    from ..models import REGISTRY
    from .config import CONFIG_DIR

    print("models:")
    for name, cls in sorted(REGISTRY.items()):
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        print(f"  {name:<20} {doc}")
    print("configs:")
    for path in sorted(CONFIG_DIR.glob("*.toml")):
        try:
            description = tomllib.loads(path.read_text(encoding="utf-8")).get("description", "")
        except (OSError, tomllib.TOMLDecodeError):
            description = "(unreadable)"
        first = str(description).strip().splitlines()[0] if str(description).strip() else ""
        print(f"  {path.stem:<20} {first}")
    if args.options:
        from ..inference import options

        functions = {"em": "fit_em", "vi": "fit_vi", "init": "initialize",
                     "online": "fit_online_em"}
        for section, table in options.TABLES.items():
            print(f"[{section}] keys of a config = arguments of emvi.{functions[section]}():")
            for line in options.describe(table):
                print(f"  {line}")
    return 0


def cmd_predict(args) -> int:
    from .predict import main_predict

    return main_predict(args)


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("emvi")
    except metadata.PackageNotFoundError:
        return "(not installed)"


def cmd_report(args) -> int:
    from .predict import latest_run
    from .report import render_run

    run_dir = Path(args.run_dir)
    if not (run_dir / "metrics.json").is_file() and run_dir.is_dir():
        run_dir = latest_run(run_dir)  # runs/<config>: its newest finished run
    path, left_out = render_run(run_dir, trust_model_code=args.trust_model_code)
    for code in dict.fromkeys(left_out):
        print(f"emvi: note: figures of the model {code} left out: drawing them runs its code; "
              "pass --trust-model-code to draw them", file=sys.stderr)
    print(f"report: {path}")
    return 0


def _jobs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 1024:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1 to 1024, got {text!r}")
    return value


def parser() -> argparse.ArgumentParser:
    top = Parser(prog="emvi", description="Fit latent-assignment models by EM and by "
                 "TraceEnum_ELBO, and compare them.")
    top.add_argument("--version", action="version", version=f"emvi {_version()}")
    sub = top.add_subparsers(dest="command", required=True, parser_class=Parser)
    run = sub.add_parser("run", help="run a config (a path or a shipped config's name)")
    run.add_argument("config")
    run.add_argument("--out", default="runs", help="root of run directories (default: runs)")
    run.add_argument("--set", action="append", metavar="KEY.PATH=VALUE",
                     help="override a config value, e.g. --set data.n=500 (repeatable)")
    run.add_argument("--smoke", action="store_true", help="tiny data and few iterations")
    run.add_argument("--quiet", action="store_true", help="no progress bars or summary")
    run.add_argument("--resume", type=Path, metavar="RUN_DIR",
                     help="finish an interrupted run (its .partial directory)")
    run.add_argument("--threads", metavar="N", help="torch threads per process: a number or "
                     "auto (default: $EMVI_THREADS, else the config's threads, else auto: "
                     "1 for small runs and with --jobs, else torch's count)")
    run.add_argument("--jobs", type=_jobs, default=1, metavar="N",
                     help="compute sweep cells in N worker processes (default 1); the "
                     "numbers do not depend on N")
    run.add_argument("--workers", type=_jobs, default=1, metavar="N",
                     help="share every fit between N local processes (torch.distributed, "
                     "gloo; default 1); under torchrun, its processes are the workers")
    run.add_argument("--device", metavar="DEVICE", help="where the fits compute: cpu, cuda "
                     "or cuda:N (default: the config's device, else cpu); a device this "
                     "machine lacks is refused before anything runs")
    run.set_defaults(func=cmd_run)
    lst = sub.add_parser("list", help="registered models and shipped configs")
    lst.add_argument("--options", action="store_true",
                     help="also the fitting options: type, range, default, help")
    lst.set_defaults(func=cmd_list)
    rep = sub.add_parser("report", help="re-render a run's report and figures")
    rep.add_argument("run_dir")
    rep.add_argument("--trust-model-code", action="store_true",
                     help="import the model code (.py file or module) the run names, to "
                     "redraw its figures; without it such figures are left out")
    rep.set_defaults(func=cmd_report)
    pre = sub.add_parser("predict", help="label new rows with the model a run fitted")
    pre.add_argument("run_dir", help="a finished run, or runs/<config> for its latest run")
    pre.add_argument("data", help="a CSV file with the columns the model read")
    pre.add_argument("--out", type=Path, help="write the labels here (default: stdout)")
    pre.add_argument("--method", default="em", choices=["em", "vi"],
                     help="which of the run's fits (default: em)")
    pre.add_argument("--experiment", help="which experiment, when the run has several")
    pre.add_argument("--cell", help="which sweep cell, when the experiment has several")
    pre.add_argument("--columns", help="comma-separated value columns, for a run on "
                     "simulated data (default: every column)")
    pre.add_argument("--trust-model-code", action="store_true",
                     help="import the user model file the run names")
    pre.set_defaults(func=cmd_predict)
    return top


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _os_message(exc: OSError) -> str:
    """``Permission denied: /x/y``: an OS error in one line, naming the path(s)."""
    reason = exc.strerror or one_line(exc)
    paths = [p for p in (exc.filename, exc.filename2) if p is not None]
    if not paths:
        return f"system error: {reason}"
    return f"{reason}: " + " -> ".join(os.fsdecode(p) if isinstance(p, bytes) else str(p)
                                       for p in paths)


def _user_code(exc: BaseException) -> str | None:
    """``file line N`` where ``exc`` was raised inside a user's model file, else ``None``."""
    from ..models import registry

    files = registry.user_files()
    frames = traceback.extract_tb(exc.__traceback__) if files else []
    if frames and frames[-1].filename in files:
        return f"{frames[-1].filename} line {frames[-1].lineno}"
    return None


def user_error(exc: BaseException) -> str | None:
    """The one-line message for a user error, or ``None`` when ``exc`` is a bug in emvi.

    User errors: a bad command line, a bad config, data or argument
    (:class:`~models.validation.InputError`, :class:`~models.validation.InputTypeError`,
    which :class:`~experiments.config.ConfigError` extends), an operating-system error on
    a path (permissions, a full disk), and an exception raised inside the user's own model
    file. Everything else is a bug.
    """
    if isinstance(exc, UsageError):
        return one_line(exc)
    if isinstance(exc, OSError):
        return _os_message(exc)
    try:  # loaded already when it could have raised; imported here only on this path
        from ..models.validation import InputError, InputTypeError
    except ImportError:
        return None
    if isinstance(exc, (InputError, InputTypeError)):
        return one_line(exc)
    where = _user_code(exc)
    if where is not None:
        return f"in your model code ({where}): {type(exc).__name__}: {one_line(exc)}"
    return None


def _handle_sigterm():
    """SIGTERM ends the command like Ctrl-C; returns the handler to put back (or ``None``)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _terminate)


def main(argv=None) -> int:
    """The command; returns the exit status (0; 2 a user error; 1 a bug; 130 interrupted)."""
    previous = _handle_sigterm()  # first, before anything heavy is imported
    try:
        args = parser().parse_args(argv)
        with warnings.catch_warnings():
            if not os.environ.get("EMVI_DEBUG"):  # results carry notes; library chatter is noise
                warnings.simplefilter("ignore")
            return args.func(args)
    except KeyboardInterrupt:
        print("emvi: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        message = user_error(exc)
        if os.environ.get("EMVI_DEBUG"):
            raise
        if message is not None:
            print(f"emvi: error: {message}", file=sys.stderr)
            return EXIT_USER_ERROR
        print(f"emvi: internal error: {type(exc).__name__}: {one_line(exc)} -- this is a bug "
              "in emvi, not in your input; run again with EMVI_DEBUG=1 to see the traceback",
              file=sys.stderr)
        return EXIT_BUG
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
