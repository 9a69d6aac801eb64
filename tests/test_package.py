"""One import name: installed, emvi puts ``emvi`` (and the ``emvi`` command) on a user's
path and nothing else, so a project's own ``models.py`` neither breaks nor is broken."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

SCRIPT = '''
import models, inference, experiments          # the user's own modules
import emvi
from emvi import GaussianMixture, compare, fit_em, fit_vi, initialize

assert models.WHO == inference.WHO == experiments.WHO == "mine", models.WHO
assert models.GaussianMixture is not GaussianMixture
model = GaussianMixture(k=2, dim=1, covariance="spherical")
truth = model.params(weights=[0.5, 0.5], locs=[-4.0, 4.0], scales=[1.0, 1.0])
data = model.simulate(truth, n=300, seed=0).data
init = initialize(model, data, seed=0)
em, vi = fit_em(model, data, init), fit_vi(model, data, init, steps=50)
assert compare(em, vi).relative_gap < 1e-6
print("fitted", emvi.__version__)
'''


def test_a_projects_own_models_py_does_not_shadow_emvi(tmp_path):
    for name in ("models", "inference", "experiments"):
        (tmp_path / f"{name}.py").write_text("WHO = 'mine'\nclass GaussianMixture:\n    pass\n")
    (tmp_path / "script.py").write_text(SCRIPT)
    out = subprocess.run([sys.executable, "script.py"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("fitted")


def test_the_distribution_installs_one_import_name():
    top = metadata.distribution("emvi").read_text("top_level.txt").split()
    assert top == ["emvi"]
    providers = metadata.packages_distributions()
    assert [name for name, dists in providers.items() if "emvi" in dists] == ["emvi"]


def test_the_public_api_reads_from_emvi():
    import emvi

    for name in ("GaussianMixture", "KMeans", "fit_em", "fit_vi", "compare", "initialize",
                 "Fit", "Family", "PyroModel", "InputError"):
        assert hasattr(emvi, name), name
    assert set(emvi.__all__) <= set(dir(emvi))


def test_models_do_not_import_inference():
    """The dependency points down: inference uses models, never the other way round."""
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[1] / "models"
    for path in root.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "inference" not in [line.split()[1].lstrip(".").split(".")[0]
                                   for line in text.splitlines()
                                   if line.strip().startswith(("from ", "import "))
                                   and len(line.split()) > 1], path
