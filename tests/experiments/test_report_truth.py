"""Reports that tell the truth: one shared start, one colour per component, failures
flagged in every row and in a "things to look at" list, model selection that decides."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

SHARED = """
model = { name = "gaussian_mixture", k = 3, dim = 1, covariance = "spherical" }
truth = { weights = [0.3, 0.4, 0.3], locs = [[-3.0], [0.0], [3.0]], scales = [1.0, 1.0, 1.0] }
data = { n = 60, seed = 0 }
init = { method = "random_points", seed = 0, restarts = 4 }
em = { max_iter = 300, tol = 1e-9 }
vi = { steps = 60 }
"""

FLAGS = """
[experiments.stopped]
model = { name = "two_coins", k = 2, tosses = 10, weights = [0.5, 0.5] }
truth = { probs = [0.6, 0.2] }
data = { n = 100, seed = 0 }
init = { method = "params", params = { probs = [0.8, 0.7] } }
em = { max_iter = [1, 200] }
vi = { steps = 50 }
plots = { enabled = false }

[experiments.hard]
model = { name = "two_coins", k = 2, tosses = 10, weights = [0.5, 0.5] }
truth = { probs = [0.6, 0.2] }
data = { n = 100, seed = 0 }
init = { method = "params", params = { probs = [0.8, 0.7] } }
em = { max_iter = 200, hard = [false, true] }
vi = { steps = 50 }
plots = { enabled = false }

[experiments.collapse]
model = { name = "gaussian_mixture", k = 2, dim = 1, covariance = "spherical" }
data = { file = "d.csv" }
em = { max_iter = 200 }
vi = { steps = 10 }
plots = { enabled = false }

[experiments.collapse.init]   # component 0 starts narrow on the three zeros
method = "params"
params = { weights = [0.5, 0.5], locs = [[0.0], [3.0]], scales = [0.001, 3.0] }
"""


def _run(emvi, tmp_path: Path, text: str, name: str) -> Path:
    config = tmp_path / f"{name}.toml"
    config.write_text(text, encoding="utf-8")
    code, _, err = emvi("run", config, "--quiet", "--out", tmp_path / "runs")
    assert code == 0, err
    (run,) = [p for p in (tmp_path / "runs" / name).iterdir() if p.is_dir()]
    return run


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory):
    from emvi.experiments.cli import main

    tmp = tmp_path_factory.mktemp("shared")
    (tmp / "shared.toml").write_text(SHARED, encoding="utf-8")
    assert main(["run", str(tmp / "shared.toml"), "--quiet", "--out", str(tmp / "runs")]) == 0
    (run,) = [p for p in (tmp / "runs" / "shared").iterdir() if p.is_dir()]
    return run


def _cell(run: Path) -> tuple[str, dict]:
    metrics = json.loads((run / "metrics.json").read_text())
    ((name, exp),) = metrics["experiments"].items()
    return name, exp["cells"][0]


def _flat(params: dict) -> list[float]:
    return [float(x) for v in params.values() for x in np.ravel(v)]


# -- one shared start ---------------------------------------------------------------------------
def test_comparison_comes_from_one_shared_start_named_in_the_report(shared_run):
    from emvi.experiments import store
    from emvi.inference import initialize
    from emvi.models import registry

    name, cell = _cell(shared_run)
    record = cell["restarts"]
    shared = record["shared_start"]
    assert record["count"] == 4 and record["chosen_by"] == "em"
    # the start whose EM fit is best among all restarts (not start 0 in this set-up)
    lls = record["em"]["log_likelihoods"]
    assert shared == record["em"]["best"] == int(np.argmax(lls)) != 0
    assert cell["init"]["start"] == shared
    # the start saved is start `shared` of the batch the config asks for
    arrays = store.load_arrays(shared_run, name, cell["cell"])
    model = registry.build("gaussian_mixture", k=3, dim=1, covariance="spherical")
    starts = initialize(model, torch.as_tensor(arrays["data"]), method="random_points", seed=0,
                        restarts=4)
    expected = starts.select(shared, model.specs).to_lists()
    assert _flat(cell["init"]["params"]) == pytest.approx(_flat(expected), rel=1e-12)
    # both traces (what the trajectory, density and objective figures draw) begin there
    header, rows = store.read_csv(store.cell_path(shared_run, name, cell["cell"])
                                  / "history.csv")
    first = {row[0]: [float(x) for x in row[5:]] for row in rows if row[1] == "0"}
    assert set(first) == {"em", "vi"} and len(header) > 5
    assert first["em"] == pytest.approx(first["vi"], rel=1e-12)
    assert first["em"] == pytest.approx(_flat(expected), rel=1e-12)
    # EM refitted from that start alone ends where its restart did
    assert cell["fits"]["em"]["log_likelihood"] == pytest.approx(lls[shared], rel=1e-9)
    report = (shared_run / "report.md").read_text()
    assert f"Both paths from start {shared} of 4, EM's best" in report
    assert f"| **{shared}** |" in report  # the restarts table marks it
    assert f"(plots/{name}_restarts.png)" in report
    assert f"(plots/{name}_objective.png)" in report


def test_restart_record_keeps_every_restart_of_both_paths(shared_run):
    _, cell = _cell(shared_run)
    for label in ("em", "vi"):
        path = cell["restarts"][label]
        assert len(path["log_likelihoods"]) == len(path["converged"]) == 4
        assert path["best"] == int(np.argmax(path["objectives"]))


def test_figures_read_the_shared_start_and_colour_component_j_alike(shared_run):
    from emvi.experiments import plots, store

    name, cell = _cell(shared_run)
    header, rows = store.read_csv(store.cell_path(shared_run, name, cell["cell"])
                                  / "history.csv")
    view = plots.CellView(cell, store.load_arrays(shared_run, name, cell["cell"]), header, rows)
    assert view.start == cell["restarts"]["shared_start"]
    fig = plots.trajectories_figure(view, "t")
    for ax in fig.axes:
        lines = [line for line in ax.get_lines() if len(line.get_xdata()) > 1]
        em = [line for line in lines if line.get_linestyle() == "-"]
        vi = [line for line in lines if line.get_linestyle() == "--"]
        assert len(em) == len(vi) == 3
        # component j: the same colour on both paths, and VI drawn above EM
        assert [line.get_color() for line in em] == [plots.color(j) for j in range(3)]
        assert [line.get_color() for line in vi] == [plots.color(j) for j in range(3)]
        assert min(line.get_zorder() for line in vi) > max(line.get_zorder() for line in em)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert {"component 0", "component 1", "component 2"} <= set(legend)
    titles = [ax.get_title() for ax in fig.axes]
    assert any(t.startswith("locs[x₁]") for t in titles), titles
    assert plots.restarts_figure(view, "r") is not None


def test_objective_figure_leaves_exact_zero_gaps_out_and_uses_log_time(shared_run):
    from emvi.experiments import plots, store

    name, cell = _cell(shared_run)
    header, rows = store.read_csv(store.cell_path(shared_run, name, cell["cell"])
                                  / "history.csv")
    view = plots.CellView(cell, store.load_arrays(shared_run, name, cell["cell"]), header, rows)
    fig = plots.objective_figure(view, "o")
    steps, seconds = fig.axes
    assert seconds.get_xscale() == "log" and steps.get_yscale() == "log"
    for ax in fig.axes:
        for line in ax.get_lines():
            y = np.asarray(line.get_ydata(), dtype=float)
            if line.get_marker() != "v":  # a drawn gap is a positive value, never 1e-16 for 0
                assert not np.any(y[np.isfinite(y)] <= 0)
    assert "L-BFGS" in steps.get_xlabel()


# -- failures flagged ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def flags_run(tmp_path_factory):
    from emvi.experiments.cli import main

    tmp = tmp_path_factory.mktemp("flags")
    values = [0.0, 0.0, 0.0, 1.0, 1.3, 0.7, 1.1, 0.9, 1.2, 5.0, 5.2, 4.9, 5.1, 4.8, 5.3]
    (tmp / "d.csv").write_text("x\n" + "\n".join(map(str, values)) + "\n", encoding="utf-8")
    (tmp / "flags.toml").write_text(FLAGS, encoding="utf-8")
    assert main(["run", str(tmp / "flags.toml"), "--quiet", "--out", str(tmp / "runs")]) == 0
    (run,) = [p for p in (tmp / "runs" / "flags").iterdir() if p.is_dir()]
    return run


def _row(report: str, cell: str) -> str:
    (line,) = [line for line in report.splitlines() if line.startswith(f"| {cell} |")]
    return line


def _section(report: str, name: str) -> str:
    return report.split(f"## {name}\n", 1)[1].split("\n## ", 1)[0]


def test_sweep_report_flags_failures_in_rows_and_opens_with_them(flags_run):
    report = (flags_run / "report.md").read_text()
    look = report.split("## Things to look at\n", 1)[1].split("\n## ", 1)[0]
    assert report.index("## Things to look at") < report.index("## stopped")
    # a cell that hit max_iter: its row and the list say so; the converged cell is ok
    stopped = _section(report, "stopped")
    assert "EM not converged" in _row(stopped, "max_iter=1")
    assert _row(stopped, "max_iter=200").endswith("| ok |")
    assert "**stopped** (max_iter=1): EM not converged: max_iter=1 reached" in look
    assert "(max_iter=200)" not in look
    # hard EM and VI converge to different optima from the same start
    hard = _section(report, "hard")
    assert "gap" in _row(hard, "hard=True") and "VI higher" in _row(hard, "hard=True")
    assert _row(hard, "hard=False").endswith("| ok |")
    assert "**hard** (hard=True): EM and VI from the same start end at different optima" in look
    # a component collapsed onto the three zeros
    collapse = _section(report, "collapse")
    assert "EM: component 0 collapsed" in collapse
    assert "collapsed (variance" in look and "**collapse**" in look


def test_a_run_without_failures_has_no_things_to_look_at(flags_run):
    from emvi.experiments.status import things_to_look_at

    metrics = json.loads((flags_run / "metrics.json").read_text())
    clean = {"experiments": {"stopped": {**metrics["experiments"]["stopped"],
                                         "cells": metrics["experiments"]["stopped"]["cells"][1:]}}}
    assert things_to_look_at(clean) == []
    assert len(things_to_look_at(metrics)) >= 4


# -- status of a saved cell (synthetic) --------------------------------------------------------
def _fit(ll=-100.0, converged=True, notes=(), events=(), method="em"):
    return {"log_likelihood": ll, "converged": converged, "notes": list(notes),
            "events": list(events), "method": method}


def _synthetic(em=None, vi=None, gap=0.0, rtol=1e-6, restarts=None, perms=None) -> dict:
    fits = {"em": em or _fit(), "vi": vi or _fit()}
    cell = {"cell": "all", "fits": fits, "comparison": {"rtol": rtol, "relative_gap": gap}}
    if restarts:
        cell["restarts"] = restarts
    if perms:
        cell["alignment"] = {"permutations": perms}
    return cell


def test_status_flags_each_kind_and_nothing_on_a_clean_cell():
    from emvi.experiments.status import cell_flags, status_text

    assert cell_flags(_synthetic()) == [] and status_text([]) == "ok"
    assert cell_flags(_synthetic(gap=1e-6)) == []  # at the tolerance: the same optimum
    (flag,) = cell_flags(_synthetic(gap=2e-6))
    assert flag.kind == "different optima" and flag.paths == ("em", "vi")
    (flag,) = cell_flags(_synthetic(vi=_fit(converged=False,
                                            notes=["not converged: steps=5 reached"])))
    assert flag.kind == "not converged" and flag.paths == ("vi",)
    assert flag.text == "VI not converged: steps=5 reached"
    (flag,) = cell_flags(_synthetic(em=_fit(events=[{"iteration": 3}, {"iteration": 7}])))
    assert flag.kind == "relocated" and "iterations 3, 7" in flag.text
    # a collapse note, its component renumbered to the aligned order (fitted 0 shown as 2)
    note = "component 0 collapsed (variance 1e-06 at the floor: reg_covar=1e-06)"
    (flag,) = cell_flags(_synthetic(em=_fit(notes=[note]), perms={"em": [1, 2, 0],
                                                                  "vi": [0, 1, 2]}))
    assert flag.kind == "collapsed" and flag.short == "EM: component 2 collapsed"


def test_status_flags_a_vi_restart_above_every_em_restart():
    from emvi.experiments.status import cell_flags

    def record(em_lls, vi_lls):
        return {"count": 3, "shared_start": int(np.argmax(em_lls)),
                "em": {"log_likelihoods": em_lls, "best": int(np.argmax(em_lls))},
                "vi": {"log_likelihoods": vi_lls, "best": int(np.argmax(vi_lls))}}

    assert cell_flags(_synthetic(restarts=record([-10.0, -9.0, -11.0],
                                                 [-10.0, -9.0, -9.0]))) == []
    (flag,) = cell_flags(_synthetic(restarts=record([-10.0, -9.0, -11.0],
                                                    [-10.0, -9.0, -8.5])))
    assert flag.kind == "different optima" and "start 2" in flag.text


# -- model selection ----------------------------------------------------------------------------
def _selection_cell(k, cov, bic, ll=-100.0):
    return {"cell": f"k={k},covariance={cov}", "values": {"model.k": k, "model.covariance": cov},
            "fits": {"em": {**_fit(ll), "bic": bic, "aic": bic - 1, "icl": bic + 5,
                            "n_parameters": 3 * k},
                     "vi": {**_fit(ll), "bic": bic, "aic": bic - 1, "icl": bic + 5,
                            "n_parameters": 3 * k}},
            "comparison": {"rtol": 1e-6, "relative_gap": 0.0}}


def _selection_exp():
    bics = {("full", 1): 50.0, ("full", 2): 30.0, ("full", 3): 35.0,
            ("diag", 1): 52.0, ("diag", 2): 31.0, ("diag", 3): 29.5}
    return {"axes": [["model.k", [1, 2, 3]], ["model.covariance", ["full", "diag"]]],
            "cells": [_selection_cell(k, cov, b) for (cov, k), b in bics.items()]}


def test_selection_chooses_the_lowest_bic_per_k_and_covariance():
    from emvi.experiments.report import selection_table
    from emvi.experiments.selection import selection

    chosen = selection(_selection_exp())
    best = chosen["rows"][chosen["chosen"]["bic"]]
    assert (best.k, best.group) == (3, ("diag",))
    assert chosen["groups"] == ["model.covariance"]
    table = "\n".join(selection_table(_selection_exp()))
    assert "**Chosen: K = 3 (covariance = diag)**, the lowest BIC." in table
    (marked,) = [line for line in table.splitlines() if "chosen (lowest BIC)" in line]
    assert marked.startswith("| diag | 3 |") and "**29.50**" in marked
    assert selection({"axes": [["data.n", [1, 2]]], "cells": []}) is None


def test_selection_figure_one_line_per_covariance_type_integer_ticks():
    from emvi.experiments.sweep_plots import selection_figure

    fig = selection_figure("m", _selection_exp(), "m")
    bic = fig.axes[0]
    assert bic.get_xlabel() == "number of components"
    assert list(bic.get_xticks()) == [1, 2, 3]
    lines = [line for line in bic.get_lines() if len(line.get_xdata()) == 3]
    assert len(lines) == 2  # full and diag
    circled = [line for line in bic.get_lines() if line.get_markersize() == 20]
    assert [(float(line.get_xdata()[0]), float(line.get_ydata()[0]))
            for line in circled] == [(3.0, 29.5)]


def test_icl_adds_twice_the_entropy_of_the_responsibilities():
    from emvi.experiments.runner import entropy

    r = torch.full((10, 4), 0.25, dtype=torch.float64)
    assert entropy(r) == pytest.approx(10 * math.log(4), rel=1e-12)
    hard = torch.zeros(5, 3, dtype=torch.float64)
    hard[:, 1] = 1.0
    assert entropy(hard) == 0.0


# -- names -------------------------------------------------------------------------------------
def test_titles_name_models_in_words_and_program_models_by_class():
    from emvi.experiments.naming import axis_label, model_title

    assert model_title({"name": "gaussian_mixture", "k": 3, "dim": 2,
                        "covariance": "full"}) == (
        "Gaussian mixture (k = 3, dim = 2, covariance = full)")
    assert model_title({"name": "models/my.py:ZeroInflated", "k": 2}) == "ZeroInflated (k = 2)"
    assert model_title({"name": "kmeans", "k": 3}, ["weights", "scales"]) == (
        "K-means (k = 3; weights and scales held fixed)")
    assert model_title({"name": "gaussian_mixture", "k": 2}, swept={"k": [1, 2, 3, 4]}) == (
        "Gaussian mixture (k ∈ 1–4)")
    assert axis_label("model.k") == "number of components"


def test_top_level_history_keeps_every_cells_parameters(flags_run):
    from emvi.experiments import store

    header, rows = store.read_csv(flags_run / "history.csv")
    assert header[:7] == ["experiment", "cell", "method", "iteration", "seconds", "objective",
                          "log_likelihood"]
    for column in ("probs[0]", "probs[1]", "weights[0]", "locs[0,0]", "locs[1,0]", "scales[1]"):
        assert column in header
    where = {c: i for i, c in enumerate(header)}
    coins = next(r for r in rows if r[0] == "hard")
    gauss = next(r for r in rows if r[0] == "collapse")
    assert coins[where["probs[0]"]] != "" and coins[where["locs[0,0]"]] == ""
    assert gauss[where["locs[0,0]"]] == "0.0" and gauss[where["probs[0]"]] == ""


def test_log_y_axis_where_every_value_is_positive(shared_run):
    from emvi.experiments import plots, store

    name, cell = _cell(shared_run)
    header, rows = store.read_csv(store.cell_path(shared_run, name, cell["cell"])
                                  / "history.csv")
    view = plots.CellView(cell, store.load_arrays(shared_run, name, cell["cell"]), header, rows)
    log = {"yscale": "log", "iterations": [0, 5]}
    scales = {ax.get_title().split(" ")[0]: ax.get_yscale()
              for ax in plots.trajectories_figure(view, "t", log).axes}
    assert scales["weights"] == "log" and scales["scales"] == "log"
    assert scales["locs[x₁]"] == "linear"  # negative means: the axis stays linear, and says so
    assert all(ax.get_yscale() == "log" for ax in plots.densities_figure(view, "d", log).axes)
    assert all(ax.get_yscale() == "linear"
               for ax in plots.densities_figure(view, "d", {"iterations": [0]}).axes)
    assert all(ax.get_ylabel() for ax in plots.densities_figure(view, "d").axes)


PROGRAM = '''
import pyro
import pyro.distributions as dist
from torch.distributions import constraints
from emvi.models import ParamSpec, PyroModel
from emvi.models.families import pick


class ProgramPoisson(PyroModel):
    def __init__(self, k=2):
        super().__init__(k, {"weights": ParamSpec((k,), constraints.simplex),
                             "rates": ParamSpec((k,), constraints.positive)})

    def program(self, params, data=None, n=None):
        n = data.shape[0] if data is not None else n
        with pyro.plate("data", n):
            z = pyro.sample("assignment", dist.Categorical(params["weights"]),
                            infer={"enumerate": "parallel"})
            pyro.sample("obs", dist.Poisson(pick(params["rates"], z)), obs=data)
'''


def test_a_program_only_model_is_named_by_its_class_and_gets_its_densities(emvi, tmp_path):
    (tmp_path / "prog.py").write_text(PROGRAM, encoding="utf-8")
    run = _run(emvi, tmp_path, """
model = { name = "prog.py:ProgramPoisson", k = 2 }
truth = { weights = [0.4, 0.6], rates = [2.0, 12.0] }
data = { n = 80, seed = 0 }
init = { method = "random_points", seed = 0 }
em = { max_iter = 50 }
vi = { steps = 15 }
plots = { iterations = [0] }
""", "prog")
    report = (run / "report.md").read_text()
    assert "Model: ProgramPoisson (k = 2)." in report
    assert "pyro_model" not in report and "ProgramPoisson(k=" not in report
    assert (run / "plots" / "prog_densities.png").is_file()


def test_a_sweep_draws_its_first_flagged_cell_else_its_last():
    from emvi.experiments.report import _figure_cell

    cells = [{**_synthetic(), "cell": "n=1"}, {**_synthetic(gap=0.1), "cell": "n=2"},
             {**_synthetic(), "cell": "n=3"}]
    exp = {"axes": [["data.n", [1, 2, 3]]], "cells": cells}
    shown, why = _figure_cell(exp)
    assert shown["cell"] == "n=2" and why.startswith("the first flagged cell: gap")
    exp["cells"] = [cells[0], cells[2]]
    assert _figure_cell(exp) == (cells[2], "the last cell")


def test_restarts_at_one_optimum_are_not_ranked_by_round_off():
    from types import SimpleNamespace

    from emvi.experiments.plots import restarts_figure

    def view(em_lls, vi_lls):
        record = {"count": 3, "shared_start": 1,
                  "em": {"log_likelihoods": em_lls, "best": int(np.argmax(em_lls))},
                  "vi": {"log_likelihoods": vi_lls, "best": int(np.argmax(vi_lls))}}
        return SimpleNamespace(result={"restarts": record, "comparison": {"rtol": 1e-6},
                                       "fits": {"vi": {"log_likelihood": em_lls[1]}}})

    tied = restarts_figure(view([-1000.0, -1000.0 + 1e-10, -1000.0 - 2e-10],
                                [-1000.0 + 3e-10, -1000.0, -1000.0]), "r")
    (ax,) = tied.axes
    low, high = ax.get_ylim()
    assert high - low == pytest.approx(2 * 5 * 1e-6 * 1000.0, rel=1e-6)
    assert "one optimum" in ax.get_title() and not ax.texts
    apart = restarts_figure(view([-1010.0, -1000.0, -1020.0], [-1000.0, -1000.0, -1005.0]),
                            "r")
    (ax,) = apart.axes
    assert "one optimum" not in ax.get_title()
    assert sorted(t.get_text() for t in ax.texts) == ["EM's best",
                                                      "VI's best (2 tie within rtol)"]
