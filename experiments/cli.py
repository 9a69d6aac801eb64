"""The ``emvi`` command: run configs, list what ships, re-render reports.

User errors print one line (``emvi: error: ...``) and exit 2; never a traceback.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import warnings
from pathlib import Path

from . import store
from .config import CONFIG_DIR, ConfigError, load

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
        self.quiet, self.bar = quiet, None

    def cell_started(self, experiment, cell, index, total):
        self.prefix = f"[{index + 1}/{total}] {experiment}" + ("" if cell == "all" else f" {cell}")

    def fit_started(self, label, total):
        if self.quiet:
            return
        from tqdm import tqdm

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


def _terminate(signum, frame):
    raise KeyboardInterrupt


def cmd_run(args) -> int:
    from .runner import Interrupted, run

    config = load(args.config, args.set or [], smoke=args.smoke)
    previous = signal.signal(signal.SIGTERM, _terminate)
    bars = Bars(args.quiet)
    try:
        path = run(config, Path(args.out), bars, resume=args.resume)
    except Interrupted as exc:
        print(f"emvi: interrupted; {exc.done} of {exc.total} cells kept in {exc.path}; "
              f"finish with: emvi run {args.config} --resume {exc.path}", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        bars.fit_finished()  # a bar left open by an error would garble the message
        signal.signal(signal.SIGTERM, previous)
    if not args.quiet:
        summarize(path)
    print(f"report: {path / 'report.md'}")
    return 0


def summarize(path: Path) -> None:
    """Print each experiment's comparison: a small table, or one line per sweep cell."""
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

    from models import REGISTRY

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
    return 0


def cmd_report(args) -> int:
    from .report import render

    run_dir = Path(args.run_dir)
    if not (run_dir / "metrics.json").is_file():
        raise ConfigError(str(run_dir), "", "not a finished run directory (no metrics.json)")
    path = render(run_dir, store.read_json(run_dir / "metrics.json"))
    print(f"report: {path}")
    return 0


def parser() -> argparse.ArgumentParser:
    top = Parser(prog="emvi", description="Fit latent-assignment models by EM and by "
                 "TraceEnum_ELBO, and compare them.")
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
    run.set_defaults(func=cmd_run)
    lst = sub.add_parser("list", help="registered models and shipped configs")
    lst.set_defaults(func=cmd_list)
    rep = sub.add_parser("report", help="re-render a run's report and figures")
    rep.add_argument("run_dir")
    rep.set_defaults(func=cmd_report)
    return top


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def main(argv=None) -> int:
    """The command; returns the exit status (0, 2 for an error, 130 when interrupted)."""
    try:
        args = parser().parse_args(argv)
        with warnings.catch_warnings():
            if not os.environ.get("EMVI_DEBUG"):  # results carry notes; library chatter is noise
                warnings.simplefilter("ignore")
            return args.func(args)
    except (UsageError, ConfigError, ValueError, TypeError, OSError) as exc:
        print(f"emvi: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("emvi: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # anything else still answers in one line
        if os.environ.get("EMVI_DEBUG"):
            raise
        print(f"emvi: error: {type(exc).__name__}: {one_line(exc)} (set EMVI_DEBUG=1 for "
              "the traceback)", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
