"""Fuzzing the config loader: mutated configs get exit 0 or one line with exit 2, never a
traceback."""

from __future__ import annotations

import pytest
import tomli_w
import tomllib
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from experiments.config import CONFIG_DIR

#: small shipped configs (the fuzz runs what survives, in smoke mode)
CONFIGS = ["two_coins", "kmeans", "gmm_1d", "poisson", "regression"]
EXAMPLES = 60

scalars = st.one_of(
    st.text(max_size=12),
    st.integers(min_value=-10**30, max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.sampled_from(["kmeans", "gaussian_mixture", "random", "lbfgs", "adam", "spherical",
                     "données.csv", "missing.py:Model", "ünïcödé", "", "1e400"]),
)
values = st.one_of(scalars, st.lists(scalars, max_size=3),
                   st.dictionaries(st.text(max_size=6), scalars, max_size=2))


def paths(tree: dict, prefix=()) -> list[tuple]:
    out = []
    for key, value in tree.items():
        out.append(prefix + (key,))
        if isinstance(value, dict):
            out += paths(value, prefix + (key,))
    return out


@st.composite
def mutated(draw):
    name = draw(st.sampled_from(CONFIGS))
    tree = tomllib.loads((CONFIG_DIR / f"{name}.toml").read_text(encoding="utf-8"))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths(tree)))
        node = tree
        for key in path[:-1]:
            node = node[key]
        action = draw(st.sampled_from(["delete", "replace", "add"]))
        if action == "delete":
            node.pop(path[-1], None)
        elif action == "replace":
            node[path[-1]] = draw(values)
        else:
            node[draw(st.text(min_size=1, max_size=10))] = draw(values)
        if not tree:
            break
    overrides = draw(st.lists(st.tuples(st.sampled_from(["data.n", "em.tol", "model.k",
                                                         "vi.lr", "init.method", "x.y"]),
                                        st.text(max_size=8)), max_size=1))
    return tree, [f"{k}={v}" for k, v in overrides]


@pytest.mark.slow
@settings(max_examples=EXAMPLES, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=mutated())
def test_mutated_configs_never_crash(case, tmp_path_factory, capsys):
    from experiments.cli import main

    tree, overrides = case
    folder = tmp_path_factory.mktemp("fuzz")
    path = folder / "fuzzed.toml"
    try:
        path.write_text(tomli_w.dumps(tree), encoding="utf-8")
    except (TypeError, ValueError):  # not representable in TOML: nothing to test
        return
    args = ["run", str(path), "--smoke", "--quiet", "--out", str(folder / "runs")]
    for text in overrides:
        args += ["--set", text]
    code = main(args)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    assert code in (0, 2), (code, err)
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("emvi: error: "), err
    else:
        assert out.strip().startswith("report: ") and err == ""
