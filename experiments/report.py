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
from . import pooling_report, store, uncertainty_report
from .align import renumber
from .config import ConfigError
from .hmm_plots import hmm_figures, is_sequence_model
from .missing_plots import missing_report
from .naming import model_title, values_text
from .plots import CellView, cell_figures, save
from .schema import check_metrics
from .selection import CRITERIA, group_name, selection
from .status import cell_flags, status_text, things_to_look_at
from .sweep_plots import selection_figure, sweep_figure

LABEL = {"em": "EM", "vi": "VI"}
#: the figures of one cell a sweep's report draws (of the chosen or the last cell)
SWEEP_FIGURES = ("_fit", "_restarts", "_densities", "_objective")


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


def _aligned(cell: dict, label: str) -> dict:
    """A fit's parameters in the cell's one component order (see :mod:`align`)."""
    params = ((cell.get("alignment") or {}).get("params") or {}).get(label)
    if params is None:
        params = (cell.get("aligned_to_truth") or {}).get(label)
    return params or cell["fits"][label]["params"]


def shared_start_text(cell: dict) -> str | None:
    """``Both paths from start 3 of 10, EM's best; VI's best of its own restarts was start
    7 at -1234.5.`` (``None`` without restarts)."""
    record = cell.get("restarts") or {}
    count = record.get("count", 1)
    if count <= 1:
        return None
    shared, chooser = record["shared_start"], record.get("chosen_by") or "em"
    text = (f"Both paths from start {shared} of {count}, {LABEL.get(chooser, chooser)}'s best "
            f"(restarts numbered from 0).")
    other = "vi" if chooser == "em" else "em"
    if record.get(other):
        own = record[other]["best"]
        lls = record[other]["log_likelihoods"]
        rtol = cell["comparison"]["rtol"]
        if own == shared:
            text += f" {LABEL[other]}'s best of its own restarts is the same start."
        elif lls[own] - lls[shared] <= rtol * abs(lls[shared]):
            text += (f" {LABEL[other]}'s own best restart, start {own} ({lls[own]:.8g}), "
                     f"ties with start {shared} ({lls[shared]:.8g}) within rtol {rtol:g}.")
        else:
            text += (f" {LABEL[other]}'s own best restart was start {own} at {lls[own]:.8g}, "
                     f"above its start {shared} ({lls[shared]:.8g}).")
    return text


def restarts_table(cell: dict) -> list[str]:
    """The final objective of every restart, both paths (hard EM: its objective too)."""
    record = cell.get("restarts") or {}
    if record.get("count", 1) <= 1:
        return []
    labels = [m for m in ("em", "vi") if record.get(m)]
    hard = cell["fits"].get("em", {}).get("method") == "hard-em"
    header = ["start"]
    for m in labels:
        if m == "em" and hard:
            header.append("EM objective (classification)")
        header += [f"{LABEL[m]} log-likelihood", f"{LABEL[m]} converged"]
    rows = []
    for r in range(record["count"]):
        marks = [f"{LABEL[m]}'s best" for m in labels if record[m]["best"] == r]
        row = [f"**{r}**" if r == record["shared_start"] else str(r)]
        for m in labels:
            if m == "em" and hard:
                row.append(f"{record[m]['objectives'][r]:.6f}")
            row += [f"{record[m]['log_likelihoods'][r]:.6f}",
                    "yes" if record[m]["converged"][r] else "**no**"]
        rows.append(row + [", ".join(marks)])
    return _table(header + ["best of"], rows) + [
        "", "Bold: the shared start of the comparison, fitted again from that start alone by "
        "both paths. VI fits its restarts on one restart plate where the model's program "
        "allows it (one optimiser over their sum, so they stop together)."]


def cell_tables(cell: dict) -> list[str]:
    """Parameters beside the truth, then the comparison, for one cell."""
    fits, comp = cell["fits"], cell["comparison"]
    labels = list(fits)
    truth = cell.get("truth") if comp["truth_errors"] else None  # comparable with the fits
    lines = []
    names = list(next(iter(fits.values()))["params"])
    header = ["parameter"] + (["truth"] if truth else []) + [LABEL.get(m, m) for m in labels]
    rows = []
    fixed = set(cell.get("fixed") or [])
    for name in names:
        row = [f"`{name}`" + (" (fixed)" if name in fixed else "")]
        row += [_fmt(truth[name])] if truth else []
        row += [_fmt(_aligned(cell, m)[name]) for m in labels]
        rows.append(row)
    lines += _table(header, rows)
    reference = (cell.get("alignment") or {}).get("reference")
    if reference or cell.get("aligned_to_truth"):
        to = "the truth" if reference in (None, "truth") else f"{LABEL.get(reference)}'s fit"
        lines += ["", f"Components are relabelled to match {to} (Hungarian alignment): "
                  "component j is row j here and colour j in every figure."]
    lines.append("")
    timing = cell["timing"]
    flags = cell_flags(cell)
    metric_rows = [
        ["log-likelihood"] + [f"{fits[m]['log_likelihood']:.6f}" for m in labels],
        ["iterations / steps"] + [str(fits[m]["iterations"]) for m in labels],
        ["seconds"] + [f"{timing['seconds'][m]:.3f}" for m in labels],
        ["ms per iteration"] + [f"{1e3 * timing['seconds_per_iteration'][m]:.2f}"
                                for m in labels],
        ["converged"] + [str(fits[m]["converged"]) if fits[m]["converged"] else "**False**"
                         for m in labels],
        [f"iterations to {comp['rtol']:g} of best"] + [
            _fmt(comp["iterations_to_tolerance"][m]) for m in labels],
        [f"seconds to {comp['rtol']:g} of best"] + [
            _fmt(timing["seconds_to_tolerance"][m]) for m in labels],
        ["method / M-step"] + [f"{fits[m]['method']} / {fits[m]['m_step']}" for m in labels],
        ["status"] + [status_text([f for f in flags if m in f.paths and len(f.paths) == 1])
                      for m in labels],
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
        verdict = next((f.text for f in flags if f.kind == "different optima"
                        and f.short.startswith("gap")), None)
        lines.append(f"**EM vs VI**: objective gap {comp['objective_gap']:.3g} "
                     f"(relative {comp['relative_gap']:.2g}); largest parameter difference "
                     f"after alignment {worst:.3g}; ARI of MAP assignments "
                     f"{comp['ari'][pair]:.4f}." + (f" **{verdict}.**" if verdict else ""))
        lines.append("")
    perms = (cell.get("alignment") or {}).get("permutations") or {}
    for m in labels:
        for note in fits[m]["notes"]:
            lines.append(f"- {LABEL.get(m, m)}: {renumber(note, perms.get(m))}")
        moved = fits[m]["events"]
        if moved:
            lines.append(f"- {LABEL.get(m, m)}: {len(moved)} empty-component relocation(s) "
                         f"(iterations {', '.join(str(e['iteration']) for e in moved[:10])})")
    return lines


def sweep_table(exp: dict) -> list[str]:
    """One row per cell, its status last."""
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
        status = status_text(cell_flags(c))
        rows.append(row + [status if status == "ok" else f"**{status}**"])
    return _table(header + ["status"], rows)


def selection_table(exp: dict) -> list[str]:
    """BIC, AIC and ICL per K (and group), the choice marked; empty without a K sweep."""
    chosen = selection(exp)
    if chosen is None:
        return []
    rows, groups = chosen["rows"], chosen["groups"]
    best = chosen["chosen"]
    header = ([g.split(".", 1)[1] for g in groups] + ["K", "log-lik", "parameters"]
              + [c.upper() for c in CRITERIA] + ["from", "status", "choice"])
    table = []
    for i, r in sorted(enumerate(rows), key=lambda item: (str(item[1].group), item[1].k)):
        values = []
        for c in CRITERIA:
            v = r.criteria.get(c)
            text = "—" if v is None else f"{v:.2f}"
            values.append(f"**{text}**" if best[c] == i else text)
        status = status_text(r.flags)
        table.append([*map(str, r.group), str(r.k), f"{r.log_likelihood:.2f}",
                      str(r.n_parameters if r.n_parameters is not None else "—"), *values,
                      LABEL.get(r.source, r.source), status if status == "ok" else
                      f"**{status}**", "◀ **chosen (lowest BIC)**" if best["bic"] == i else ""])
    lines = []
    if best["bic"] is not None:
        r = rows[best["bic"]]
        where = f" ({group_name(groups, r.group)})" if groups else ""
        lines.append(f"**Chosen: K = {r.k}{where}**, the lowest BIC.")
        others = []
        for c in ("aic", "icl"):
            if best[c] is not None:
                o = rows[best[c]]
                at = f" ({group_name(groups, o.group)})" if groups else ""
                others.append(f"{c.upper()} is lowest at K = {o.k}{at}")
        if others:
            lines[-1] += " " + "; ".join(others) + "."
        lines.append("")
    lines += _table(header, table)
    lines += ["", "All three in the lower-is-better form: BIC = −2 log L + p log n, "
              "AIC = −2 log L + 2p, ICL = BIC + 2·EN with EN = −Σₙ Σⱼ rₙⱼ log rₙⱼ the entropy of "
              "the responsibilities (Biernacki, Celeux & Govaert's ICL as McLachlan & Peel's "
              "ICL-BIC). mclust reports the negatives (higher is better), and its `icl()` uses "
              "the MAP classification in place of the entropy. Each row's numbers come from "
              "the better of its two fits (the higher log-likelihood; column \"from\"); the "
              "lowest value of each criterion is in bold."]
    return lines


def _cell_figures(view: CellView, name: str, plots: dict, *title):
    """The figures that suit the cell's model (sequence models: :mod:`.hmm_plots`)."""
    if is_sequence_model(view.model):
        return hmm_figures(view, name, plots)
    return cell_figures(view, name, plots, *title)


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


def experiment_header(exp: dict) -> list[str]:
    """Model, data and start of an experiment; a sweep names every swept value."""
    cells = exp["cells"]
    first = cells[0]
    swept = {key: values for key, values in exp["axes"]}
    model_swept = {k.split(".", 1)[1]: v for k, v in swept.items() if k.startswith("model.")}
    title = model_title(first["model"], first.get("fixed") or [], model_swept)

    def value(key: str, shown) -> str:
        return values_text(swept[key]) if key in swept else str(shown)

    data = first["data"]
    if data["source"] == "simulated":
        where = f"simulated, seed {value('data.seed', data.get('seed'))}"
    else:
        columns = data.get("columns")
        where = f"from `{Path(data['source']).name}`" + (
            f", columns {', '.join(map(str, columns))}" if columns else "")
    init = first["init"]
    if init["method"] == "params" and "init.method" not in swept:
        start = "the given parameters"
    else:
        start = (f"{value('init.method', init['method'])} (seed {value('init.seed', init['seed'])}"
                 f"), {value('init.restarts', init['restarts'])} restart(s)")
    lines = [f"Model: {title}.", "",
             f"Data: n = {value('data.n', data['n'])} observations ({where}).", "",
             f"Start: {start}; EM and VI are compared from one shared start"
             + (" (in every cell)." if swept else "."), ""]
    if swept:
        grid = " × ".join(f"{key} ∈ {values_text(values)}" for key, values in exp["axes"])
        lines += [f"Sweep: {grid}: {len(cells)} cells.", ""]
    return lines


def _figure_cell(exp: dict) -> tuple[dict, str]:
    """The sweep cell whose figures are drawn, and why: the chosen model, else the first
    cell with something to look at, else the last cell."""
    chosen = selection(exp)
    if chosen is not None and chosen["chosen"]["bic"] is not None:
        return exp["cells"][chosen["chosen"]["bic"]], "the chosen model"
    flagged = next((c for c in exp["cells"] if cell_flags(c)), None)
    if flagged is not None:
        return flagged, f"the first flagged cell: {status_text(cell_flags(flagged))}"
    return exp["cells"][-1], "the last cell"


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
    described = {(exp.get("description") or "").strip()
                 for exp in metrics["experiments"].values()}
    if metrics.get("description") and metrics["description"].strip() not in described:
        lines += [metrics["description"].strip(), ""]
    look = things_to_look_at(metrics)
    if look:
        lines += ["## Things to look at", "", *look, ""]
    for name, exp in metrics["experiments"].items():
        store.check_name(name, "experiment name")
        lines += [f"## {name}", ""]
        if exp.get("description"):
            lines += [exp["description"].strip(), ""]
        lines += experiment_header(exp)
        cells = exp["cells"]
        first = cells[0]
        code = _model_code(first)
        drawable = code is None or trust_model_code
        if not drawable:
            left_out.append(code)
        plots = exp["plots"]

        def place(figures: list) -> list[str]:
            out = []
            for stem, fig in figures:
                save(fig, run_dir / "plots" / f"{stem}.png", run_dir)
                out += [f"![{stem}](plots/{stem}.png)", ""]
            return out

        if exp["axes"]:
            chosen = selection_table(exp)
            if chosen:
                lines += ["### Model selection", "", *chosen, ""]
                fig = (selection_figure(name, exp, f"{name}: model selection", plots)
                       if plots["enabled"] else None)
                lines += place([(f"{name}_selection", fig)] if fig is not None else [])
            lines += ["### Every cell", ""] + sweep_table(exp) + [""]
            fig = (sweep_figure(name, exp, f"{name}: EM vs VI across the sweep", plots)
                   if plots["enabled"] else None)
            lines += place([(f"{name}_sweep", fig)] if fig is not None else [])
            shown, why = _figure_cell(exp)
            if drawable and plots["enabled"]:
                view = _view(run_dir, name, shown)
                lines += [f"### The cell {shown['cell']} ({why})", ""]
                start = shared_start_text(shown)
                lines += [start, ""] if start else []
                lines += place([(s, f) for s, f in _cell_figures(view, name, plots,
                                                                 f"{name} ({shown['cell']})")
                                if s.endswith(SWEEP_FIGURES)])
        else:
            start = shared_start_text(first)
            if start:
                lines += [start, ""]
            lines += cell_tables(first) + [""]
            restarts = restarts_table(first)
            if restarts:
                lines += ["Every restart, both paths:", "", *restarts, ""]
            if plots["enabled"] and drawable:
                lines += place(_cell_figures(_view(run_dir, name, first), name, plots))
        lines += uncertainty_report.section(exp)
        lines += [] if exp["axes"] else pooling_report.section(first)
        missing_lines, missing_figures = missing_report(name, exp)  # data.missing: shortcuts
        lines += missing_lines + (place(missing_figures) if plots["enabled"] else [])
        if not drawable:
            lines += [f"Figures of the fitted model left out: drawing them imports the model "
                      f"code `{code}`, which `emvi report` does only with "
                      "`--trust-model-code`.", ""]
    prov = metrics["provenance"]
    versions = ", ".join(f"{k} {v}" for k, v in prov["versions"].items() if v)
    lines += ["---", "", f"Provenance: {versions}; Python {prov['python']}; "
              f"{prov['torch_threads']} torch threads; git {prov['git_commit'] or 'n/a'}; "
              f"started {prov['started']}.", ""]
    path = run_dir / "report.md"
    store.write_atomic(path, "\n".join(lines), run_dir)
    return path
