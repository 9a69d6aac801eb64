"""Streamed cells: data that are never held whole, fitted chunk by chunk.

A cell streams when ``data.stream = true`` or ``data.file`` is a folder of ``.npy`` shards.
A file (a float64 ``.npy``, or the shards) is memory-mapped; simulated data are drawn
``em.chunk_size`` rows at a time (chunk ``i`` from the seed ``(data.seed, i)``) into
``.npy`` shards in a temporary folder, removed when the cell is done. EM (batch or
``em.online``) reads one chunk at a time, VI needs ``vi.batch_size`` (mini-batch VI), so
the process holds about one chunk plus the parameters, whatever n is.

What needs every point at once is taken on a uniform random sample of rows instead, and
says so: the initialisation (:data:`INIT_ROWS` rows), the ARI between the fits and the
figures (:data:`SAMPLE_ROWS` rows, saved as the cell's ``data``). Log-likelihoods, BIC
and AIC are the full data's; ICL (which needs every responsibility) is left out.
"""

from __future__ import annotations

import copy
import hashlib
import math
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..inference import compare, initialize
from ..inference.ondisk import Shards, check_rows, open_npy, open_shards
from ..inference.persist import fit_bytes
from ..models.validation import InputError, InputTypeError
from . import store
from .align import align_fits
from .config import ConfigError, build_model, generator_model
from .naming import model_title
from .shared_start import fit_paths

#: rows per chunk when ``em.chunk_size`` is not given
DEFAULT_CHUNK = 65_536
#: rows of the uniform sample the initialisation sees
INIT_ROWS = 100_000
#: rows of the uniform sample kept for the figures and the ARI between the fits
SAMPLE_ROWS = 2_000


def streams(data: dict) -> bool:
    """Whether a cell's data section asks for streaming (a folder of shards always does)."""
    return bool(data.get("stream")) or (data["file"] is not None and Path(data["file"]).is_dir())


def chunk_rows(cell) -> int:
    return cell.em["chunk_size"] or DEFAULT_CHUNK


def open_file(cell, model, source):
    """The cell's file, memory-mapped (a folder: its shards), checked; smoke mode keeps its
    first rows."""
    path = Path(cell.data["file"])
    try:
        data = open_shards(path) if path.is_dir() else open_npy(path)
    except InputError as exc:
        raise ConfigError(source, "data.file", str(exc).removeprefix("path: ")) from None
    if cell.max_rows is not None:
        data = data[: cell.max_rows]
    return check(model, data, source, "data.file")


def check(model, data, source, key: str):
    try:
        data = check_rows(model, data)
        model.check_fit_data(data)
    except (InputError, InputTypeError) as exc:
        raise ConfigError(source, key, str(exc)) from None
    return data


def simulate_shards(cell, source, folder: Path):
    """``(shards, truth)``: the cell's simulated rows, drawn one chunk at a time into
    ``folder`` (chunk ``i`` seeded by ``(data.seed, i)``), memory-mapped."""
    generator = generator_model(cell, source)
    truth = generator.check_params(cell.truth, "truth")
    n, size = cell.data["n"], chunk_rows(cell)
    balanced = "balanced" if cell.data["assignments"] == "balanced" else None
    paths = []
    for i, start in enumerate(range(0, n, size)):
        seed = int(np.random.SeedSequence([cell.data["seed"], i]).generate_state(1)[0])
        rows = generator.simulate(truth, n=min(size, n - start), seed=seed,
                                  assignments=balanced).data
        path = folder / f"shard-{i:06d}.npy"
        np.save(path, rows.reshape(len(rows), -1).numpy())
        paths.append(path)
        del rows
    tensors = [open_npy(p) for p in paths]
    data = tensors[0] if len(tensors) == 1 else Shards(tensors, paths)
    return data, truth, generator.k


def uniform_rows(n: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """``(count,)`` distinct row numbers below ``n``, uniformly without replacement, in
    order: draws with replacement, each repeat dropped (memory of ``count``, not of ``n``
    as a permutation would take)."""
    chosen = np.empty(0, dtype=np.int64)
    while len(chosen) < count:
        more = torch.randint(n, (2 * (count - len(chosen)),), generator=generator).numpy()
        draws = np.concatenate([chosen, more])
        _, first = np.unique(draws, return_index=True)
        chosen = draws[np.sort(first)]  # in the order drawn: the first count are uniform
    return torch.from_numpy(np.sort(chosen[:count]))


def sample_rows(data, count: int, seed: int) -> torch.Tensor:
    """``(min(count, n), ...)`` rows drawn uniformly without replacement (in file order)."""
    n = len(data)
    if n <= count:
        return data[0:n].clone()
    return data[uniform_rows(n, count, torch.Generator().manual_seed(seed))].clone()


def folder_digest(path: Path) -> str:
    """SHA-256 over a folder's ``.npy`` shards: their names and their contents' digests."""
    digest = hashlib.sha256()
    for shard in sorted(p for p in path.iterdir() if p.suffix == ".npy"):
        digest.update(f"{shard.name}\0{store.sha256(shard)}\n".encode())
    return digest.hexdigest()


def fit_summary(fit, n: int) -> dict:
    """A fit's numbers for metrics.json: the full data's log-likelihood, BIC and AIC."""
    p = fit.n_parameters()
    return {"method": fit.method, "params": fit.params.to_lists(),
            "log_likelihood": fit.log_likelihood, "iterations": fit.iterations,
            "converged": fit.converged, "m_step": fit.m_step, "n_parameters": p,
            "bic": -2 * fit.log_likelihood + p * math.log(n),
            "aic": -2 * fit.log_likelihood + 2 * p, "icl": None,
            "notes": list(fit.notes), "events": list(fit.events)}


def on_sample(fit, sample: torch.Tensor):
    """A shallow copy of ``fit`` whose per-point numbers are those of ``sample``."""
    out = copy.copy(fit)
    out.data, out.chunk_size, out._responsibilities = sample, None, None
    return out


def run_streamed_cell(cell, source, reporter) -> tuple[dict, str, dict, dict]:
    """:func:`~experiments.runner.run_cell` for a streamed cell (same outputs)."""
    with tempfile.TemporaryDirectory(prefix="emvi-shards-") as scratch:
        return _run(cell, source, reporter, Path(scratch))


def _run(cell, source, reporter, scratch: Path):
    from .runner import check_memory, history_table, matches

    model = build_model(cell.model, source)
    cell = copy.deepcopy(cell)
    cell.em["chunk_size"] = chunk_rows(cell)
    if cell.data["file"] is not None:
        data = open_file(cell, model, source)
        truth = None if cell.truth is None else model.check_params(cell.truth, "truth")
        true_k = model.k
    else:
        data, truth, true_k = simulate_shards(cell, source, scratch)
        data = check(model, data, source, "data")
    n = model.n_observations(data)
    event = max(1, math.prod(data.shape[1:]))
    check_memory(cell, model, min(n, cell.em["chunk_size"]), event, source, "em.chunk_size")
    if n < model.k:
        raise ConfigError(source, "data", f"{n} observations for k={model.k}")
    seed = cell.init["seed"]
    try:
        start_rows = sample_rows(data, INIT_ROWS, seed)
        init = initialize(model, start_rows, method=cell.init["method"], seed=seed,
                          restarts=cell.init["restarts"]) if cell.init["method"] != "params" \
            else model.check_params(cell.init["params"], "init.params")
    except (InputError, InputTypeError) as exc:
        raise ConfigError(source, "init", str(exc)) from None
    del start_rows
    fits, restarts, start = fit_paths(cell, model, data, init, reporter)

    sample = sample_rows(data, SAMPLE_ROWS, seed + 1)
    shown = {label: on_sample(fit, sample) for label, fit in fits.items()}
    comparable = truth is not None and true_k == model.k and matches(model, truth)
    comparison = compare(*shown.values(), names=list(shown),
                         truth=truth if comparable else None, rtol=cell.compare["rtol"])
    header, rows = history_table(model, fits)
    fixed = [name for name, spec in model.specs.items() if spec.fixed]
    alignment = align_fits(model, truth if comparable else None,
                           {label: fit.params for label, fit in fits.items()})
    shards = len(data.shards) if isinstance(data, Shards) else 1
    result = {
        "model": dict(cell.model), "model_description": model.describe(),
        "model_title": model_title(cell.model, fixed), "fixed": fixed,
        "truth": truth.to_lists() if truth is not None else None, "truth_k": true_k,
        "truth_comparable": comparable,
        "data": {"source": cell.data["file"] or "simulated", "n": n,
                 "seed": cell.data["seed"] if cell.data["file"] is None else None,
                 "columns": None,
                 "streamed": {"chunk_size": cell.em["chunk_size"], "shards": shards,
                              "init_rows": min(n, INIT_ROWS), "sample_rows": len(sample)}},
        "init": {"method": cell.init["method"], "seed": seed,
                 "restarts": cell.init["restarts"], "start": restarts["shared_start"],
                 "params": start.to_lists()},
        "restarts": restarts,
        "torch_threads": torch.get_num_threads(),
        "fits": {label: fit_summary(fit, n) for label, fit in fits.items()},
        "comparison": comparison.to_dict(),
        "aligned_to_truth": {k: v.to_lists() for k, v in comparison.aligned_params.items()},
        "alignment": alignment,
        "timing": {**comparison.timings(),
                   "seconds_per_iteration": {label: fit.elapsed / max(fit.iterations, 1)
                                             for label, fit in fits.items()}},
    }
    for label in fits:
        result["fits"][label]["notes"].append(
            f"streamed: {n} rows in chunks of {cell.em['chunk_size']}; the ARI and the figures "
            f"use a uniform sample of {len(sample)} rows, the start {min(n, INIT_ROWS)}")
    arrays = {"data": sample.numpy()}
    for label, fit in shown.items():
        arrays[f"responsibilities_{label}"] = fit.responsibilities.numpy()
    files = {f"fit_{label}.pt": fit_bytes(fit) for label, fit in fits.items()}
    return result, store.csv_text(header, rows), arrays, files
