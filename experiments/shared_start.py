"""One shared start for the comparison of EM and VI; the restarts themselves kept apart.

With ``R`` restarts both paths first fit all ``R`` starts (EM in one vectorised batch,
VI on a restart plate), and each keeps its own best: EM by its objective, VI by its own.
Those are different starts more often than not, so the comparison (tables,
trajectories, objective plots, ``fit_em.pt`` / ``fit_vi.pt``) is drawn from ONE start:
the start whose EM fit is best (VI's best when EM is off), fitted again from that start
alone by both paths. Every trace, iteration count and second of the comparison then
belongs to that one start, and both paths are timed alike (one start each). The final
objective of every restart, both paths, is kept in the cell's ``restarts`` record.
"""

from __future__ import annotations

from ..inference import fit_em, fit_online_em, fit_vi
from ..models.params import Params
from ..models.validation import InputError
from . import workers


def _fit(label: str, cell, model, data, init: Params, reporter, title: str,
         record_params: bool):
    online = cell.em["online"] if label == "em" else None
    em_fit, vi_fit = workers.fitters(model, data, fit_em, fit_vi)  # shared by ranks or not
    reporter.fit_started(title, online["passes"] if online else
                         cell.em["max_iter"] if label == "em" else cell.vi["steps"])
    if online is not None:
        if workers.current() is not None:
            raise InputError("em.online: online EM runs in one process; drop --workers")
        fit = fit_online_em(model, data, init, **online, chunk_size=cell.em["chunk_size"],
                            callback=reporter.fit_progress)
    elif label == "em":
        em = cell.em
        fit = em_fit(model, data, init, max_iter=em["max_iter"], tol=em["tol"],
                     hard=em["hard"], chunk_size=em["chunk_size"],
                     callback=reporter.fit_progress, record_params=record_params)
    else:
        vi = cell.vi
        fit = vi_fit(model, data, init, optimizer=vi["optimizer"], lr=vi["lr"],
                     steps=vi["steps"], tol=vi["tol"], patience=vi["patience"],
                     posterior=vi["posterior"], batch_size=vi["batch_size"], seed=vi["seed"],
                     chunk_size=cell.em["chunk_size"], callback=reporter.fit_progress,
                     record_params=record_params)
    reporter.fit_finished()
    return fit


def _path_record(fit) -> dict:
    """Every restart's final numbers of one path, and the restart it keeps."""
    return {"objectives": fit.restart_objectives.tolist(),
            "log_likelihoods": fit.restart_log_likelihoods.tolist(),
            "converged": [bool(c) for c in fit.restart_converged],
            "best": int(fit.best_restart)}


def fit_paths(cell, model, data, init: Params, reporter) -> tuple[dict, dict, Params]:
    """Fit every enabled path; the comparison from one shared start.

    Args:
        cell: the experiment cell (its ``em``, ``vi`` sections; which paths are enabled).
        init: the starts, ``(R, ...)`` per tensor with restarts, else one set.

    Returns:
        ``(fits, restarts, start)``: ``label -> Fit`` from the shared start; the record
        ``{"count", "shared_start", "chosen_by", "em": {...}, "vi": {...}}`` where each
        path's entry holds every restart's final ``objectives``, ``log_likelihoods``,
        ``converged`` and its own ``best``; and the shared start's parameters.
    """
    labels = [label for label in ("em", "vi") if getattr(cell, label)["enabled"]]
    batch = init.batch_shape(model.specs)
    if not batch:
        fits = {label: _fit(label, cell, model, data, init, reporter, label, True)
                for label in labels}
        record = {label: _path_record(fit) for label, fit in fits.items()}
        chooser = labels[0] if labels else None
        return fits, {"count": 1, "shared_start": 0, "chosen_by": chooser, **record}, init
    count = batch[0]
    every = {label: _fit(label, cell, model, data, init, reporter,
                         f"{label}, {count} restarts", False) for label in labels}
    chooser = labels[0] if labels else None  # EM's best when EM runs
    shared = every[chooser].best_restart if chooser else 0
    start = init.select(shared, model.specs)
    fits = {label: _fit(label, cell, model, data, start, reporter,
                        f"{label} from start {shared}", True) for label in labels}
    record = {label: _path_record(fit) for label, fit in every.items()}
    return fits, {"count": count, "shared_start": shared, "chosen_by": chooser, **record}, start
