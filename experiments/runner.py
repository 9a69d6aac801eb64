"""Run a validated config: data, a shared init, both fits, the comparison; write the run.

config -> model + true params -> data -> init (shared) -> fit_em / fit_vi ->
compare -> ``cells/`` (one per sweep cell) -> metrics.json, history.csv,
plots/*.png, report.md, renamed into place when complete.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import tomli_w
import torch

from ..inference import compare, initialize, permute
from ..inference.persist import fit_bytes
from ..models import registry
from ..models.params import Params
from ..models.validation import InputError, InputTypeError
from . import memory, pooling_report, store, uncertainty_report, workers
from . import missing as missing_entries
from .align import align_fits
from .config import (
    Config,
    ConfigError,
    Experiment,
    build_model,
    generator_model,
    simulated_lengths,
    simulated_size,
    takes_sequences,
)
from .data import as_model_data, as_sequences, data_columns, read_sequences, read_table
from .naming import model_title
from .shared_start import fit_paths

#: parameter columns are written to history.csv up to this many scalars
MAX_TRACE_SCALARS = 400


class Interrupted(Exception):
    """Ctrl-C or SIGTERM during a run: finished cells are kept in ``path``."""

    def __init__(self, path: Path, done: int, total: int):
        self.path, self.done, self.total = path, done, total
        super().__init__(f"interrupted: {done} of {total} cells kept in {path}")


class Reporter:
    """Progress hooks; the CLI shows them as progress bars. This one stays silent."""

    def cell_started(self, experiment: str, cell: str, index: int, total: int) -> None: ...

    def fit_started(self, label: str, total: int) -> None: ...

    def fit_progress(self, progress) -> None: ...

    def fit_finished(self) -> None: ...

    def cell_finished(self, experiment: str, cell: str, done: int, total: int) -> None: ...


def param_columns(params) -> list[str]:
    """Column names of flattened parameters, e.g. ``locs[0,1]`` (in the params' order)."""
    names = []
    for name, value in params.items():
        if value.dim() == 0:
            names.append(name)
        else:
            names += [f"{name}[{','.join(map(str, i))}]" for i in np.ndindex(*value.shape)]
    return names


def history_table(model, fits: dict) -> tuple[list[str], list[list]]:
    """``history.csv``'s header and rows: every path's trace, with its parameters per
    iteration when they are at most :data:`MAX_TRACE_SCALARS` numbers."""
    first = next(iter(fits.values()))
    with_params = sum(v.numel() for v in first.params.values()) <= MAX_TRACE_SCALARS
    header = ["method", "iteration", "seconds", "objective", "log_likelihood"]
    if with_params:
        header += param_columns({name: first.params[name] for name in model.specs})
    rows = [row for label, fit in fits.items() for row in history_rows(label, fit, with_params)]
    return header, rows


def history_rows(label: str, fit, with_params: bool) -> list[list]:
    rows = []
    for i in range(len(fit.objective)):
        row = [label, i, float(fit.seconds[i]), float(fit.objective[i]),
               float(fit.log_likelihood_trace[i])]
        if with_params:
            values = fit.param_trace[i]
            row += [float(x) for name in fit.model.specs for x in values[name].reshape(-1)]
        rows.append(row)
    return rows


def fit_summary(fit, data) -> dict:
    """A fit's numbers for metrics.json (timings are kept apart; every restart's final
    numbers are in the cell's ``restarts`` record)."""
    bic = fit.bic(data)
    return {
        "method": fit.method,
        "params": fit.params.to_lists(),
        "log_likelihood": fit.log_likelihood,
        "iterations": fit.iterations,
        "converged": fit.converged,
        "m_step": fit.m_step,
        "n_parameters": fit.n_parameters(),
        "bic": bic,
        "aic": fit.aic(data),
        "icl": bic + 2 * entropy(fit.responsibilities),
        "notes": list(fit.notes),
        "events": list(fit.events),
    }


def entropy(responsibilities: torch.Tensor) -> float:
    """``-sum r log r`` over points and components (0 log 0 = 0): ICL = BIC + 2 entropy
    (mclust's convention, lower-is-better form)."""
    return float(-torch.special.xlogy(responsibilities, responsibilities).sum())


def matches(model, truth) -> bool:
    """Whether true parameters have the fitted model's names and shapes (a generator
    with another covariance type, say, has not)."""
    return set(truth) == set(model.specs) and all(
        tuple(truth[name].shape) == tuple(spec.shape) for name, spec in model.specs.items())


def check_memory(cell: Experiment, model, n: int, event_numel: int, source, key: str) -> int:
    """Refuse a cell whose estimated memory exceeds what the machine has available; return
    the estimate (bytes).

    Raises:
        ConfigError: naming ``key`` (``data.n`` or ``data.file``) and both numbers.
    """
    need = memory.cell_bytes(n, event_numel, model.k, cell.init["restarts"],
                             cell.em["chunk_size"])
    have = memory.available_bytes()
    if have is not None and need > have:
        raise ConfigError(source, key, f"n={n} observations of {event_numel} value(s) with "
                          f"k={model.k} need about {memory.gib(need)} of memory, but "
                          f"{memory.gib(have)} are available; use fewer observations")
    return need


def simulated_event_numel(cell: Experiment, source) -> int:
    """Values per simulated observation (a 1-point simulation; nothing of size n is made)."""
    generator = generator_model(cell, source)
    try:
        one = generator.simulate(generator.check_params(cell.truth, "truth"), n=1)
        return max(1, one.data[0].numel())
    except (InputError, InputTypeError):  # the cell itself reports it, when run
        return 1


def check_plan_memory(config: Config, jobs: int = 1) -> None:
    """Before a run starts: every simulated cell's memory, and with ``jobs`` worker
    processes the ``jobs`` largest cells at once (they may run side by side)."""
    from .stream import chunk_rows, streams

    needs = []
    for exp in config.experiments:
        for _, _, cell in exp.cells():
            if cell.data["file"] is not None:
                continue  # checked once the file is read, before any fitting
            key = "data.n" if len(config.experiments) == 1 else f"experiments.{exp.name}.data.n"
            size = simulated_size(cell.data)
            if streams(cell.data):  # one chunk at a time
                size = min(size, chunk_rows(cell))
            needs.append(check_memory(cell, build_model(cell.model, config.source), size,
                                      simulated_event_numel(cell, config.source),
                                      config.source, key))
    together = sum(sorted(needs, reverse=True)[:jobs])
    have = memory.available_bytes()
    if jobs > 1 and len(needs) > 1 and have is not None and together > have:
        raise InputError(f"--jobs: {jobs} cells at once need about {memory.gib(together)} of "
                         f"memory, but {memory.gib(have)} are available; use fewer jobs")


def problem_size(config: Config) -> int:
    """The largest cell's observations x values x components x restarts (a data file
    counts its bytes / 8 as observations x values): what ``auto`` threads look at."""
    largest = 0
    for exp in config.experiments:
        for _, _, cell in exp.cells():
            if cell.data["file"] is not None:
                path = Path(cell.data["file"])
                files = sorted(path.glob("*.npy")) if path.is_dir() else [path]
                values = sum(p.stat().st_size for p in files) // 8
            else:
                values = simulated_size(cell.data) * simulated_event_numel(cell, config.source)
            k = build_model(cell.model, config.source).k
            largest = max(largest, values * k * cell.init["restarts"])
    return largest


def make_data(cell: Experiment, model, source):
    """``(data, true assignments or None, truth or None, generator k)`` for one cell."""
    if cell.data["file"] is not None:
        if takes_sequences(model):
            data = as_sequences(model, read_sequences(cell.data, source, cell.max_rows), source)
        else:
            table = read_table(cell.data["file"], cell.data["columns"], source, cell.max_rows)
            data = as_model_data(model, table, source)
        check_memory(cell, model, *data_size(model, data), source, "data.file")
        truth = None
        if cell.truth is not None:
            truth = model.check_params(cell.truth, "truth")
        return data, None, truth, model.k
    generator = generator_model(cell, source)
    truth = generator.check_params(cell.truth, "truth")
    assignments = "balanced" if cell.data["assignments"] == "balanced" else None
    lengths = simulated_lengths(cell.data)
    sim = generator.simulate(truth, n=cell.data["n"], seed=cell.data["seed"],
                             assignments=assignments,
                             **({} if lengths is None else {"lengths": lengths}))
    return sim.data, sim.assignments, truth, generator.k


def data_size(model, data) -> tuple[int, int]:
    """``(observations, values per observation)`` of rows or of sequences."""
    shape = data.event_shape if hasattr(data, "event_shape") else tuple(data.shape[1:])
    return model.n_observations(data), max(1, math.prod(shape))


def make_init(cell: Experiment, model, data):
    init = cell.init
    if init["method"] == "params":
        return model.check_params(init["params"], "init.params")
    return initialize(model, data, method=init["method"], seed=init["seed"],
                            restarts=init["restarts"])


def vi_posterior(model, fits: dict, permutations: dict) -> dict | None:
    """A VI posterior's ``{parameter: {"mean", "sd", "em"}}`` (lists; ``em``: EM's estimate
    when EM ran), in the cell's one component order (``permutations``: each fit's
    alignment); ``None`` for a point estimate."""
    fit = fits.get("vi")
    if fit is None or not fit.posterior:
        return None

    def aligned(values: dict, label: str) -> Params:
        perm = permutations.get(label)
        values = Params(values)
        return values if perm is None else permute(model, values, perm)

    means = aligned({name: mean for name, (mean, _) in fit.posterior.items()}, "vi")
    sds = aligned({name: sd for name, (_, sd) in fit.posterior.items()}, "vi")
    em = aligned(dict(fits["em"].params), "em") if "em" in fits else {}
    return {name: {"mean": means[name].tolist(), "sd": sds[name].tolist(),
                   **({"em": em[name].tolist()} if name in em else {})} for name in means}


def run_cell(cell: Experiment, source, reporter: Reporter) -> tuple[dict, str, dict, dict]:
    """Fit one cell both ways; returns ``(result, history csv, arrays, files)`` where
    ``files`` are the fitted models (``fit_em.pt``, ``fit_vi.pt``)."""
    from .stream import run_streamed_cell, streams

    if streams(cell.data):  # never held whole: chunk by chunk
        return run_streamed_cell(cell, source, reporter)
    model = build_model(cell.model, source)
    data, assignments, truth, true_k = make_data(cell, model, source)
    complete, data = data, missing_entries.remove(
        data, missing_entries.check_spec(cell.data["missing"], source), cell.data["seed"], source)
    n = model.n_observations(data)
    if n < model.k:
        raise ConfigError(source, "data", f"{n} observations for k={model.k}")
    try:
        model.check_fit_data(data)  # e.g. a column with every entry missing
    except (InputError, InputTypeError) as exc:
        raise ConfigError(source, "data.file" if cell.data["file"] else "data", str(exc)) from None
    try:
        init = make_init(cell, model, data)
    except (InputError, InputTypeError) as exc:
        raise ConfigError(source, "init", str(exc)) from None

    if not (cell.em["enabled"] or cell.vi["enabled"]):
        raise ConfigError(source, "em.enabled", "both em and vi are disabled: nothing to fit")
    fits, restarts, start = fit_on_device(cell, model, data, init, reporter, source)
    if workers.follower():  # rank 0 compares and writes
        return None

    comparable = truth is not None and true_k == model.k and matches(model, truth)
    sure = uncertainty_report.summarize(cell.uncertainty, fits, model,
                                        truth if comparable else None, cell.em, source)
    pooling = pooling_report.summarize(model, data, fits, truth if comparable else None, cell.em)
    comparison = compare(*fits.values(), names=list(fits),
                         truth=truth if comparable else None,
                         truth_assignments=assignments if true_k == model.k else None,
                         rtol=cell.compare["rtol"])
    header, rows = history_table(model, fits)
    fixed = [name for name, spec in model.specs.items() if spec.fixed]
    alignment = align_fits(model, truth if comparable else None,
                           {label: fit.params for label, fit in fits.items()})
    spread = vi_posterior(model, fits, alignment["permutations"])
    result = {
        "model": dict(cell.model),
        "model_description": model.describe(),
        "model_title": model_title(cell.model, fixed),
        "fixed": fixed,
        "truth": truth.to_lists() if truth is not None else None,
        "truth_k": true_k,
        "truth_comparable": comparable,
        "data": {"source": cell.data["file"] or "simulated", "n": n,
                 "seed": cell.data["seed"] if cell.data["file"] is None else None,
                 "columns": data_columns(cell.data["file"], cell.data["columns"])},
        "init": {"method": cell.init["method"], "seed": cell.init["seed"],
                 "restarts": cell.init["restarts"], "start": restarts["shared_start"],
                 "params": start.to_lists()},
        "restarts": restarts,
        "torch_threads": torch.get_num_threads(),  # what this cell computed with
        "device": cell.device,
        "fits": {label: fit_summary(fit, data) for label, fit in fits.items()},
        "comparison": comparison.to_dict(),
        "aligned_to_truth": {k: v.to_lists() for k, v in comparison.aligned_params.items()},
        **sure,
        **({"vi_posterior": spread} if spread else {}),
        **({"pooling": pooling} if pooling else {}),
        "alignment": alignment,
        "timing": {**comparison.timings(),
                   "seconds_per_iteration": {label: fit.elapsed / max(fit.iterations, 1)
                                             for label, fit in fits.items()}},
    }
    if data is not complete:  # exact EM beside the shortcuts, against the removed values
        result["missing"] = missing_entries.evaluate(cell, model, complete, data, fits, truth,
                                                     comparable)
    arrays = data.numpy_arrays() if hasattr(data, "numpy_arrays") else {"data": data.numpy()}
    if assignments is not None:
        arrays["assignments"] = assignments.numpy()
    for label, fit in fits.items():
        arrays[f"responsibilities_{label}"] = fit.responsibilities.numpy()
    files = {f"fit_{label}.pt": fit_bytes(fit) for label, fit in fits.items()}
    return result, store.csv_text(header, rows), arrays, files


def fit_on_device(cell: Experiment, model, data, init, reporter, source):
    """:func:`fit_paths` on the cell's device: the data and starts (made on the CPU, so
    every device starts alike) moved there, the fits brought back to the CPU for the
    comparison, the report and the files."""
    if cell.device == "cpu":
        return fit_paths(cell, model, data, init, reporter)
    from ..inference.device import fit_on_cpu, to_device

    if not torch.is_tensor(data):
        raise ConfigError(source, "device", f"{cell.device!r}: {cell.model['name']} takes "
                          "sequences, which are fitted on the CPU only so far; use 'cpu'")
    fits, restarts, start = fit_paths(cell, model, to_device(data, cell.device),
                                      to_device(init, cell.device), reporter)
    return ({label: fit_on_cpu(fit, data) for label, fit in fits.items()}, restarts,
            start.map(lambda t: t.cpu()))


def _clean(value):
    """JSON-safe numbers: NaN and infinities become None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def resolved_toml(config: Config) -> str:
    return tomli_w.dumps(config.to_dict())


def input_files(config: Config) -> list[str]:
    """The files a run reads: data files and user model files (absolute paths)."""
    files = []
    for exp in config.experiments:
        if exp.data["file"] is not None:
            files.append(exp.data["file"])
        name = exp.model["name"]
        if registry.is_reference(name):
            where = name.rpartition(":")[0]
            if where.endswith(".py") or "/" in where:
                files.append(where)
    return sorted(set(files))


def inputs(config: Config) -> dict:
    """What a resumed run must find unchanged: each input file's SHA-256, torch threads
    (the run's count, set by :func:`run`: the numbers may differ in round-off with it)."""
    from .stream import folder_digest

    return {"files": {path: folder_digest(Path(path)) if Path(path).is_dir()
                      else store.sha256(Path(path)) for path in input_files(config)},
            "torch_threads": torch.get_num_threads()}


def changed_inputs(recorded: dict, now: dict) -> list[str]:
    """What differs between two :func:`inputs` records, one phrase each."""
    changes = []
    before, after = recorded.get("files"), now["files"]
    before = before if isinstance(before, dict) else {}
    for path in sorted(set(before) | set(after)):
        if path not in after:
            changes.append(f"{path} is no longer an input")
        elif path not in before:
            changes.append(f"{path} is a new input")
        elif before[path] != after[path]:
            changes.append(f"{path} changed (sha256 {before[path][:12]}... now "
                           f"{after[path][:12]}...)")
    threads = recorded.get("torch_threads")
    if threads != now["torch_threads"]:
        changes.append(f"torch threads: the run started with {threads}, now "
                       f"{now['torch_threads']} (pass --threads {threads})")
    return changes


def start(config: Config, root: Path, resume: Path | None, threads=None,
          jobs: int = 1) -> tuple[Path, int, list[Path]]:
    """The ``.partial`` run directory, locked: new, or the one being resumed (checked).

    Returns:
        ``(run directory, lock, folders created for it)``.
    """
    text = resolved_toml(config)
    record = inputs(config)
    if resume is None:
        run, created = store.new_run(root, config.name)
        try:
            fd = store.lock(run)
            store.write_atomic(run / "config.toml", text, run)
            store.write_json(run / "inputs.json", record, run)
            prov = store.provenance()
            if threads is not None:  # how the count was chosen, and the worker processes
                prov.update(threads_source=threads.source, jobs=jobs)
            if workers.current() is not None:  # ranks sharing every fit
                prov.update(workers=workers.current().world_size)
            store.write_json(run / "provenance.json", prov, run)
        except BaseException:
            store.remove_run(run, created)
            raise
        return run, fd, created
    run = Path(resume)
    if not run.is_dir() or not (run / "config.toml").is_file():
        raise ConfigError(str(resume), "--resume", "not a run directory (no config.toml)")
    if not run.name.endswith(store.PARTIAL):
        raise ConfigError(str(resume), "--resume", "this run is already complete")
    fd = store.lock(run)  # one process at a time; then look again, under the lock
    try:
        if not (run / "config.toml").is_file():
            raise ConfigError(str(resume), "--resume", "not a run directory (no config.toml)")
        if (run / "config.toml").read_text(encoding="utf-8") != text:
            raise ConfigError(str(resume), "--resume", "the run was started from a different "
                              "config (or other --set/--smoke options)")
        try:
            recorded = store.read_json(run / "inputs.json")
        except (OSError, ValueError) as exc:
            raise ConfigError(str(resume), "--resume", f"cannot check the run's inputs "
                              f"(inputs.json: {exc})") from None
        changes = changed_inputs(recorded if isinstance(recorded, dict) else {}, record)
        if changes:
            more = f" (and {len(changes) - 1} more)" if len(changes) > 1 else ""
            raise ConfigError(str(resume), "--resume", f"the inputs differ from the run's: "
                              f"{changes[0]}{more}; start a new run instead")
    except BaseException:
        store.unlock(fd)
        raise
    return run, fd, []


def run(config: Config, root: Path = Path("runs"), reporter: Reporter | None = None,
        resume: Path | None = None, threads: int | str | None = None, jobs: int = 1,
        device: str | None = None, group=None) -> Path | None:
    """Run every cell of every experiment that is not already on disk; return the run dir.

    Each cell runs with torch's global random state forked and seeded (nothing should
    draw from it; if anything does, it repeats), so the caller's state is unchanged.

    Args:
        threads: torch threads (``--threads``); ``None``: ``EMVI_THREADS``, the config's
            ``threads``, else auto (see :mod:`experiments.threads`). Set for the run only.
        jobs: worker processes computing cells (each with ``threads`` threads); the
            numbers are the same whatever ``jobs`` is.
        device: where the fits compute (``--device``); ``None``: the config's ``device``,
            else the CPU. A device this machine lacks is refused before anything runs.
        group: a :class:`~inference.distributed.Group` sharing every fit (``--workers``,
            torchrun; see :mod:`experiments.workers`): rank 0 writes the run and returns
            its directory, the other ranks compute the fits and return ``None``.

    Raises:
        Interrupted: on Ctrl-C/SIGTERM, with the finished cells kept.
        ConfigError: for user errors found while running; a fresh run leaves nothing.
    """
    from .threads import resolve, using

    reporter = reporter or Reporter()
    place_device(config, device)
    check_plan_memory(config, jobs)
    ranks = 1 if group is None else group.world_size  # processes, as --jobs (threads)
    chosen = resolve(threads, config.threads, problem_size(config), max(jobs, ranks))
    with using(chosen.count), workers.active(group):
        if workers.follower():
            return workers.follow(config, reporter)
        return _run(config, Path(root), reporter, resume, chosen, jobs)


def place_device(config: Config, device: str | None) -> None:
    """Check the run's device (``--device`` over the config's ``device``) and give it to
    every experiment.

    Raises:
        InputError: ``--device`` names a device this machine lacks; ConfigError: the
            config's does, or streamed cells would compute off the CPU.
    """
    from ..inference.device import resolve
    from .config import place
    from .stream import streams

    if device is not None:
        chosen = str(resolve(device, "--device"))
    elif config.device is not None:
        try:
            chosen = str(resolve(config.device, "device"))
        except InputError as exc:
            raise ConfigError(config.source, "device", str(exc).removeprefix("device: ")) \
                from None
    else:
        chosen = "cpu"
    place(config, chosen)
    for exp in config.experiments:
        if chosen != "cpu" and streams(exp.data):
            raise ConfigError(config.source, "device", f"{chosen!r}: streamed data are read "
                              "from disk chunk by chunk and fitted on the CPU; use 'cpu'")


def _run(config: Config, root: Path, reporter: Reporter, resume: Path | None, threads,
         jobs: int) -> Path:
    run_dir, fd, created = start(config, root, resume, threads, jobs)
    plan = [(exp, ident, values, cell) for exp in config.experiments
            for ident, values, cell in exp.cells()]
    done, results = 0, None
    try:
        todo = [(index, exp, ident, values, cell)
                for index, (exp, ident, values, cell) in enumerate(plan)
                if store.load_cell(run_dir, exp.name, ident) is None]
        done = len(plan) - len(todo)
        workers.share_plan([item[0] for item in todo])  # the other ranks fit the same cells
        if jobs > 1 and len(todo) > 1:
            from .parallel import compute

            results = compute(todo, config.source, threads.count, jobs)
        else:
            results = _sequential(todo, config.source, reporter, len(plan))
        for (index, exp, ident, values, _), (result, history, arrays, files) in results:
            result = {"experiment": exp.name, "cell": ident, "values": values, **result}
            store.save_cell(run_dir, exp.name, ident, _clean(result), history, arrays, files)
            workers.cell_done(index)
            done += 1
            reporter.cell_finished(exp.name, ident, done, len(plan))
        final = finalize(run_dir, config)
    except KeyboardInterrupt:
        store.unlock(fd)
        raise Interrupted(run_dir, done, len(plan)) from None
    except BaseException:
        if resume is None:  # a fresh run that failed leaves nothing behind
            store.remove_run(run_dir, created)
        store.unlock(fd)
        raise
    finally:
        if results is not None:
            results.close()  # worker processes, if any, are stopped before anything else
    store.unlock(fd, final)
    return final


def compute_cell(cell: Experiment, source, reporter: Reporter):
    """:func:`run_cell` with torch's global random state forked and seeded: the same
    numbers in this process or in a worker."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return run_cell(cell, source, reporter)


def _sequential(todo: list, source, reporter: Reporter, total: int):
    for item in todo:
        index, exp, ident, _, cell = item
        reporter.cell_started(exp.name, ident, index, total)
        yield item, compute_cell(cell, source, reporter)


def finalize(run_dir: Path, config: Config) -> Path:
    """Aggregate the cells into metrics.json, history.csv, plots and report; rename."""
    from .report import render

    metrics = aggregate(run_dir, config)
    store.write_json(run_dir / "metrics.json", metrics, run_dir)
    store.write_atomic(run_dir / "history.csv", combined_history(run_dir, metrics), run_dir)
    render(run_dir, metrics, trust_model_code=True)  # the config named this model's code
    return store.finish(run_dir)


def aggregate(run_dir: Path, config: Config) -> dict:
    experiments = {}
    for exp in config.experiments:
        cells = [store.load_cell(run_dir, exp.name, ident) for ident, _, _ in exp.cells()]
        experiments[exp.name] = {
            "description": exp.description,
            "axes": [[key, list(values)] for key, values in exp.axes],
            "plots": exp.plots,
            "cells": cells,
        }
    return {
        "config": config.name,
        "source": config.source,
        "description": config.description,
        "provenance": store.read_json(run_dir / "provenance.json"),
        "experiments": experiments,
    }


def combined_history(run_dir: Path, metrics: dict) -> str:
    """All cells' histories in one table, with experiment and cell columns in front.

    Cells whose models have other parameters (a sweep over k) keep every column: the
    header is the union of the cells' columns, blank where a cell has no such parameter.
    """
    header: list[str] = []
    tables = []
    for name, exp in metrics["experiments"].items():
        for cell in exp["cells"]:
            cell_header, cell_rows = store.read_csv(
                store.cell_path(run_dir, name, cell["cell"]) / "history.csv")
            header += [column for column in cell_header if column not in header]
            tables.append((name, cell["cell"], cell_header, cell_rows))
    header = _ordered_columns(header)
    rows = []
    for name, ident, cell_header, cell_rows in tables:
        where = {column: i for i, column in enumerate(cell_header)}
        for row in cell_rows:
            rows.append([name, ident, *(row[where[c]] if c in where else "" for c in header)])
    return store.csv_text(["experiment", "cell", *header], rows)


def _ordered_columns(columns: list[str]) -> list[str]:
    """Parameter columns grouped by parameter (first-seen order), indices in order:
    ``weights[0], weights[1], locs[0,0], ...`` whatever k each cell had."""
    names: list[str] = []

    def key(column: str):
        name, _, index = column.partition("[")
        if name not in names:
            names.append(name)
        return names.index(name), tuple(int(i) for i in index.rstrip("]").split(",") if i)

    for column in columns:
        key(column)
    return sorted(columns, key=key)
