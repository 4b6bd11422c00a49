"""PyYAML specifics: params are read with YAML 1.2 scalars, as DVC reads them."""

from __future__ import annotations

from pathlib import Path

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.api import ReproOptions, repro
from pipeline.core.yamlparse import _StrictLoader, parse
from pipeline.errors import ManifestError
from tests.conftest import Project


def test_yaml_12_scalars_render_like_dvc(p: Project) -> None:
    p.params("country: no\nanswer: yes\n")
    p.manifest("stages:\n  a:\n    cmd: echo ${country} ${answer} > out.txt\n    outs: [out.txt]\n")
    repro(ReproOptions(root=p.root, jobs=1))
    assert p.read("out.txt") == "no yes\n"  # DVC: the strings 'no' and 'yes'


_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=6)
    | st.sampled_from(["yes", "no", "017", "0o17", "0x1F", "1e-5", ".inf", "-.NaN", "~", "1:30"])
)
_DATA = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=20,
)
_TEXTS = st.sampled_from(
    [
        "base: &b {x: 1, y: [1, 2]}\nd:\n  <<: *b\n  y: 3\n",
        "when: 2020-01-02\nat: 2020-01-02 03:04:05\n",
        "bin: !!binary aGVsbG8=\nset: !!set {a, b}\nom: !!omap [a: 1, b: 2]\n",
        "a: &a [1, {b: 2}]\nc: [*a, *a]\n",
        "!!str 5",
        "k: !!float 1\nj: !!int '7'\nb: !!bool yes\n",
        "[a, b, {c: d}]",
        "? [1, 2]\n: x\n",
    ]
)


@settings(max_examples=150, deadline=None)
@given(st.tuples(_DATA, st.booleans()).map(lambda d: _dump_shared(*d)) | _TEXTS)
def test_the_fast_constructor_builds_what_pyyaml_builds(text: str) -> None:
    """`construct_tree` is PyYAML's construction, faster: same values, same errors."""
    loader = _StrictLoader(text)
    try:
        expected: object = loader.construct_document(loader.get_single_node())
    except yaml.YAMLError as exc:
        expected = type(exc)
    finally:
        loader.dispose()
    try:
        got: object = parse(text, Path("x.yaml"))[0]
    except ManifestError:
        got = yaml.constructor.ConstructorError
    assert repr(got) == repr(expected)


def _dump_shared(data: object, flow: bool) -> str:
    """A dump in which shared values become anchors and aliases."""
    return yaml.safe_dump({"a": data, "b": data}, default_flow_style=flow)
