"""report.md and its figures, rendered from a run directory's saved results.

A results file is data: re-rendering never imports code it names. The figures of a
model given as user code (``file.py:Class`` or ``module:Class``) need that code, so
``emvi report`` draws them only with ``--trust-model-code``; without it the report
keeps its tables and says which figures were left out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..models import registry
from . import store, uncertainty_report
from .config import ConfigError
from .hmm_plots import hmm_figures, is_sequence_model
from .missing_plots import missing_report
from .plots import CellView, cell_figures, save, sweep_figure
from .schema import check_metrics

LABEL = {"em": "EM", "vi": "VI"}


def _fmt(value) -> str:
    """Compact numbers: scalars to 4 significant digits, small arrays inline."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 or value == 0 else f"{value:.6g}"
    array = np.asarray(value, dtype=float)
    if array.size > 24:
        return f"array{tuple(array.shape)}"
    text = np.array2string(array, precision=3, suppress_small=True, separator=", ",
                           max_line_width=10_000)
    return text.replace("\n", " ")


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def cell_tables(cell: dict) -> list[str]:
    """Parameters beside the truth, then the comparison, for one cell."""
    fits, comp = cell["fits"], cell["comparison"]
    labels = list(fits)
    aligned = cell.get("aligned_to_truth") or {}
    truth = cell.get("truth") if comp["truth_errors"] else None  # comparable with the fits
    lines = []
    names = list(next(iter(fits.values()))["params"])
    header = ["parameter"] + (["truth"] if truth else []) + [LABEL.get(m, m) for m in labels]
    rows = []
    fixed = set(cell.get("fixed") or [])
    for name in names:
        row = [f"`{name}`" + (" (fixed)" if name in fixed else "")]
        row += [_fmt(truth[name])] if truth else []
        row += [_fmt((aligned.get(m) or fits[m]["params"])[name]) for m in labels]
        rows.append(row)
    lines += _table(header, rows)
    if aligned:
        lines.append("")
        lines.append("Fitted components are relabelled to match the truth (Hungarian alignment).")
    lines.append("")
    timing = cell["timing"]
    metric_rows = [
        ["log-likelihood"] + [f"{fits[m]['log_likelihood']:.6f}" for m in labels],
        ["iterations / steps"] + [str(fits[m]["iterations"]) for m in labels],
        ["seconds"] + [f"{timing['seconds'][m]:.3f}" for m in labels],
        ["ms per iteration"] + [f"{1e3 * timing['seconds_per_iteration'][m]:.2f}"
                                for m in labels],
        ["converged"] + [str(fits[m]["converged"]) for m in labels],
        [f"iterations to {comp['rtol']:g} of best"] + [
            str(comp["iterations_to_tolerance"][m]) for m in labels],
        [f"seconds to {comp['rtol']:g} of best"] + [
            _fmt(timing["seconds_to_tolerance"][m]) for m in labels],
        ["method / M-step"] + [f"{fits[m]['method']} / {fits[m]['m_step']}" for m in labels],
    ]
    for m in labels:
        if f"{m} vs truth" in comp["ari"]:
            metric_rows.append(["ARI vs true labels"] + [
                f"{comp['ari'][f'{x} vs truth']:.4f}" for x in labels])
            break
    if comp["truth_errors"]:
        for name in comp["truth_errors"][labels[0]]:
            metric_rows.append([f"max \\|{name} − truth\\|"] + [
                f"{comp['truth_errors'][m][name]:.3g}" for m in labels])
    lines += _table(["", *[LABEL.get(m, m) for m in labels]], metric_rows)
    lines.append("")
    if len(labels) == 2:
        pair = f"{labels[0]} vs {labels[1]}"
        worst = max(comp["parameter_errors"][pair].values(), default=0.0)
        lines.append(f"**EM vs VI**: objective gap {comp['objective_gap']:.3g} "
                     f"(relative {comp['relative_gap']:.2g}); largest parameter difference "
                     f"after alignment {worst:.3g}; ARI of MAP assignments "
                     f"{comp['ari'][pair]:.4f}.")
        lines.append("")
    for m in labels:
        for note in fits[m]["notes"]:
            lines.append(f"- {LABEL.get(m, m)}: {note}")
        moved = [e for e in fits[m]["events"]]
        if moved:
            lines.append(f"- {LABEL.get(m, m)}: {len(moved)} empty-component relocation(s) "
                         f"(iterations {', '.join(str(e['iteration']) for e in moved[:10])})")
    return lines


def sweep_table(exp: dict) -> list[str]:
    cells = exp["cells"]
    labels = list(cells[0]["fits"])
    header = ["cell"] + [f"{LABEL.get(m, m)} log-lik" for m in labels]
    with_truth = any(c["comparison"]["truth_errors"] for c in cells)
    if with_truth:
        header += [f"{LABEL.get(m, m)} max err" for m in labels]
    header += [f"{LABEL.get(m, m)} it." for m in labels] + [f"{LABEL.get(m, m)} s"
                                                             for m in labels]
    rows = []
    for c in cells:
        row = [c["cell"]] + [f"{c['fits'][m]['log_likelihood']:.4f}" for m in labels]
        if with_truth:
            errs = c["comparison"]["truth_errors"]
            row += [f"{max(errs[m].values()):.3g}" if errs else "—" for m in labels]
        row += [str(c["fits"][m]["iterations"]) for m in labels]
        row += [f"{c['timing']['seconds'][m]:.3f}" for m in labels]
        rows.append(row)
    return _table(header, rows)


def _cell_figures(view: CellView, name: str, plots: dict):
    """The figures that suit the cell's model (sequence models: :mod:`.hmm_plots`)."""
    return (hmm_figures if is_sequence_model(view.model) else cell_figures)(view, name, plots)


def _view(run_dir: Path, name: str, cell: dict) -> CellView:
    header, rows = store.read_csv(store.cell_path(run_dir, name, cell["cell"]) / "history.csv")
    return CellView(cell, store.load_arrays(run_dir, name, cell["cell"]), header, rows)


def render_run(run_dir: Path, trust_model_code: bool = False) -> tuple[Path, list[str]]:
    """Re-render a finished run from its ``metrics.json``, checked first.

    Returns:
        ``(report path, user model code whose figures were left out)``.

    Raises:
        ConfigError: no, unreadable or malformed ``metrics.json`` (one line naming it).
    """
    run_dir = Path(run_dir)
    path = run_dir / "metrics.json"
    if not path.is_file():
        raise ConfigError(str(run_dir), "", "not a finished run directory (no metrics.json)")
    try:
        metrics = store.read_json(path)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), "", f"not a valid results file: {exc}") from None
    check_metrics(metrics, str(path))
    left_out: list[str] = []
    return render(run_dir, metrics, trust_model_code, left_out), left_out


def _model_code(cell: dict) -> str | None:
    name = cell["model"]["name"]
    return name if registry.is_reference(name) else None


def render(run_dir: Path, metrics: dict, trust_model_code: bool = False,
           left_out: list[str] | None = None) -> Path:
    """Draw every figure and write report.md into ``run_dir``; returns the report path.

    Args:
        trust_model_code: import user model code the results name, to draw its figures.
        left_out: collects the user model code whose figures were not drawn.
    """
    run_dir = Path(run_dir)
    left_out = [] if left_out is None else left_out
    lines = [f"# {metrics['config']}", ""]
    if metrics.get("description"):
        lines += [metrics["description"], ""]
    for name, exp in metrics["experiments"].items():
        store.check_name(name, "experiment name")
        lines += [f"## {name}", ""]
        if exp.get("description"):
            lines += [exp["description"], ""]
        cells = exp["cells"]
        first = cells[0]
        source = first["data"]["source"]
        lines += [f"Model: `{first['model_description']}`; data: {first['data']['n']} "
                  f"observations ({source}); "
                  f"init: {first['init']['method']} (seed {first['init']['seed']}, "
                  f"{first['init']['restarts']} restart(s)), shared by both fits.", ""]
        code = _model_code(first)
        drawable = code is None or trust_model_code
        if not drawable:
            left_out.append(code)
        figures = []
        if exp["axes"]:
            lines += sweep_table(exp) + [""]
            fig = sweep_figure(name, exp, f"{name}: EM vs VI across the sweep")
            if fig is not None:
                figures.append((f"{name}_sweep", fig))
            # the convergence figures of the last (largest) cell
            if drawable:
                figures += [(s, f) for s, f in _cell_figures(_view(run_dir, name, cells[-1]),
                                                             name, exp["plots"])
                            if s.endswith("objective")]
        else:
            lines += cell_tables(first) + [""]
            if exp["plots"]["enabled"] and drawable:
                figures += _cell_figures(_view(run_dir, name, first), name, exp["plots"])
        lines += uncertainty_report.section(exp)
        missing_lines, missing_figures = missing_report(name, exp)  # data.missing: shortcuts
        lines += missing_lines
        figures = missing_figures + figures
        if not drawable:
            lines += [f"Figures of the fitted model left out: drawing them imports the model "
                      f"code `{code}`, which `emvi report` does only with "
                      "`--trust-model-code`.", ""]
        for stem, fig in figures:
            save(fig, run_dir / "plots" / f"{stem}.png", run_dir)
            lines += [f"![{stem}](plots/{stem}.png)", ""]
    prov = metrics["provenance"]
    versions = ", ".join(f"{k} {v}" for k, v in prov["versions"].items() if v)
    lines += ["---", "", f"Provenance: {versions}; Python {prov['python']}; "
              f"{prov['torch_threads']} torch threads; git {prov['git_commit'] or 'n/a'}; "
              f"started {prov['started']}.", ""]
    path = run_dir / "report.md"
    store.write_atomic(path, "\n".join(lines), run_dir)
    return path
