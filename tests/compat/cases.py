"""DVC's templating test cases as small projects: files in, rendered stages out.

Each case names the DVC test it mirrors (iterative/dvc `tests/func/parsing/*.py`,
`tests/unit/test_context.py`). DVC tests its resolver on dicts; here the same data is written
as a real `dvc.yaml` (and params files) and loaded by `pipeline`, so every case also covers
the loader. `stages` gives, per stage in order, the fields to compare: `cmd` (one string),
`deps`, `outs`, `params` ({file: {key: value}}), `wdir`, `frozen`, `missing` (`params:` keys the
file lacks). `error` is a substring of the one-line load error. `change` rewrites files after a
first `repro`; `status` is then what the plan says for each stage.
"""

from __future__ import annotations

import itertools
import shlex
from dataclasses import dataclass, field
from typing import Any

FUNC = "dvc tests/func/parsing/"
UNIT = "dvc tests/unit/test_context.py::"


@dataclass(frozen=True)
class Case:
    """One small project and what DVC makes of it."""

    id: str
    mirrors: str
    files: dict[str, Any]  # path → text, or data to dump as YAML/JSON by extension
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    error: str | None = None
    change: dict[str, Any] = field(default_factory=dict)
    status: dict[str, list[str]] = field(default_factory=dict)


def _dvc(stages: dict[str, Any], vars_: list[Any] | None = None) -> dict[str, Any]:
    return {**({"vars": vars_} if vars_ is not None else {}), "stages": stages}


# tests/func/parsing/__init__.py
TEMPLATED = {
    "stage1": {
        "cmd": "python script.py ${dict.foo} --out ${dict.bar}",
        "outs": ["${dict.bar}"],
        "deps": ["${dict.foo}"],
        "frozen": "${freeze}",
    },
    "stage2": {"cmd": "echo ${dict.foo} ${dict.bar}"},
}
CONTEXT_DATA = {"dict": {"foo": "foo", "bar": "bar"}, "list": ["param1", "param2"], "freeze": True}
USED = {
    "stage1": {"dict.bar": "bar", "dict.foo": "foo", "freeze": True},
    "stage2": {"dict.bar": "bar", "dict.foo": "foo"},
}
RESOLVED = {
    "stage1": {"cmd": "python script.py foo --out bar", "outs": ["bar"], "deps": ["foo"]},
    "stage2": {"cmd": "echo foo bar"},
}
DATA = {"models": {"bar": "bar", "foo": "foo"}}
SUB = {"sub1": "sub1", "sub2": "sub2"}
MATRIX_DATA = {
    "os": ["win", "linux"],
    "pyv": [3.7, 3.8],
    "dict": [{"arg1": 1}, {"arg2": 2}],
    "list": [["out1", "out11"], ["out2", "out22"]],
}
MIXED = "quote\"'d"


def _resolved(params_file: str) -> dict[str, dict[str, Any]]:
    return {
        name: {**RESOLVED[name], "params": {params_file: USED[name]}}
        for name in ("stage1", "stage2")
    }


def _cmd_dict(config: str | None, bool_style: str, list_style: str) -> Case:
    data = {
        "dict": {
            "foo": "foo",
            "bar": 2,
            "string": "spaced string",
            "mixed_quote_string": MIXED,
            "bool": True,
            "bool-false": False,
            "list": [1, 2, "foo", MIXED],
            "nested": {"foo": "foo"},
        }
    }
    bools = " --bool" + (" --no-bool-false" if bool_style == "boolean_optional" else "")
    values = ["1", "2", "foo", shlex.quote(MIXED)]
    if list_style == "append":
        lists = "".join(f" --list {v}" for v in values)
    else:
        lists = " --list " + " ".join(values)
    cmd = (
        "python script.py --foo foo --bar 2 --string 'spaced string'"
        f" --mixed_quote_string {shlex.quote(MIXED)}{bools}{lists} --nested.foo foo"
    )
    files: dict[str, Any] = {
        "params.yaml": data,
        "dvc.yaml": _dvc({"stage1": {"cmd": "python script.py ${dict}"}}),
    }
    if config is not None:
        files[".dvc/config"] = config
    return Case(
        f"cmd_dict-{bool_style}-{list_style}" + ("-default" if config is None else ""),
        FUNC + "test_interpolated_entry.py::test_cmd_dict",
        files,
        {"stage1": {"cmd": cmd}},
    )


def _already_loaded(vars_: list[str], *, local: bool) -> Case:
    stage: dict[str, Any] = {"cmd": "echo ${sub1} ${sub2}"}
    if local:
        stage["vars"] = vars_
    manifest = _dvc({"build": stage}, None if local else vars_)
    return Case(
        f"vars_already_loaded-{'local' if local else 'global'}-{'+'.join(vars_)}",
        FUNC + "test_interpolated_entry.py::test_vars_already_loaded_message",
        {"test_params.yaml": SUB, "dvc.yaml": manifest},
        error="partially",
    )


def _load_partial(vars_: list[str], *, local: bool) -> Case:
    stage: dict[str, Any] = {"cmd": "echo ${bar}"}
    if local:
        stage["vars"] = vars_
    return Case(
        f"vars_load_partial-{'local' if local else 'global'}-{'+'.join(vars_)}",
        FUNC + "test_interpolated_entry.py::test_vars_load_partial",
        {
            "test_params.yaml": {"bar": "bar", "foo": "foo"},
            "dvc.yaml": _dvc({"build": stage}, None if local else vars_),
        },
        {"build": {"cmd": "echo bar", "params": {"test_params.yaml": {"bar": "bar"}}}},
    )


def _matrix(*, refs: bool, cmd: str, expect: str) -> Case:
    matrix = {k: "${" + k + "}" for k in MATRIX_DATA} if refs else MATRIX_DATA
    stages = {}
    for os_, pyv, (d, dv), (lst, lv) in itertools.product(
        ["win", "linux"], [3.7, 3.8], enumerate(MATRIX_DATA["dict"]), enumerate(MATRIX_DATA["list"])
    ):
        key = f"{os_}-{pyv}-dict{d}-list{lst}"
        flags = " ".join(f"--{k} {v}" for k, v in dv.items())
        text = expect.format(os=os_, pyv=pyv, dict=flags, l0=lv[0], l1=lv[1], key=key)
        stages[f"build@{key}"] = {"cmd": text}
    name = "matrix_interpolated" if "item.os" in cmd else "matrix_key_present"
    return Case(
        f"{name}-{'refs' if refs else 'inline'}",
        FUNC + f"test_matrix.py::test_{name}",
        {"params.yaml": MATRIX_DATA, "dvc.yaml": _dvc({"build": {"matrix": matrix, "cmd": cmd}})},
        stages,
    )


def _foreach_wdir_vars(local_import: str) -> Case:
    files: dict[str, Any] = {"params.yaml": {"models": {"model1": {"thresh": "foo"}}}}
    stages = {}
    for i in range(5):
        files[f"model-{i}/params.yaml"] = {"train": {"epochs": 1 + i}, "prepare": {"nums": 10 * i}}
        stages[f"build@{i}"] = {
            "cmd": f"echo {i} {1 + i} {10 * i}",
            "wdir": f"model-{i}",
            "params": {f"model-{i}/params.yaml": {"prepare.nums": 10 * i, "train.epochs": 1 + i}},
        }
    do = {
        "wdir": "model-${item}",
        "vars": [local_import],
        "cmd": "echo ${item} ${train.epochs} ${prepare.nums}",
    }
    files["dvc.yaml"] = _dvc({"build": {"foreach": [0, 1, 2, 3, 4], "do": do}})
    return Case(
        f"foreach_interpolated_wdir_and_local_vars-{local_import}",
        FUNC + "test_foreach.py::test_foreach_with_interpolated_wdir_and_local_vars",
        files,
        stages,
    )


def _foreach_imported(local_import: str) -> Case:
    do = {"vars": [local_import], "cmd": "echo ${item} ${train.epochs}"}
    tracked = {"test_params.yaml": {"train.epochs": 10}}
    return Case(
        f"foreach_with_imported_vars-{local_import}",
        FUNC + "test_foreach.py::test_foreach_with_imported_vars",
        {
            "params.yaml": {"models": {"model1": {"thresh": "foo"}}},
            "test_params.yaml": {"train": {"epochs": 10}, "prepare": {"nums": 25}},
            "dvc.yaml": _dvc({"build": {"foreach": ["foo", "bar"], "do": do}}),
        },
        {
            "build@foo": {"cmd": "echo foo 10", "params": tracked},
            "build@bar": {"cmd": "echo bar 10", "params": tracked},
        },
    )


def _composite(foreach_def: str, data: Any, result: dict[str, str]) -> Case:
    return Case(
        f"foreach_interpolate_composite-{foreach_def}-{type(data).__name__}",
        FUNC + "test_foreach.py::test_foreach_interpolate_with_composite_data",
        {
            "dvc.yaml": _dvc(
                {"build": {"foreach": "${models}", "do": {"cmd": f"echo {foreach_def}"}}},
                [{"models": data}],
            )
        },
        {name: {"cmd": cmd, "params": {}} for name, cmd in result.items()},
    )


def _expects_list_or_dict(foreach: str) -> Case:
    return Case(
        f"foreach_data_expects_list_or_dict-{foreach}",
        FUNC + "test_errors.py::test_foreach_data_expects_list_or_dict",
        {
            "dvc.yaml": _dvc(
                {"build": {"foreach": foreach, "do": {"cmd": "echo"}}},
                [{"foo": "bar", "dct": {"model1": "a-out"}, "lst": ["foo", "bar"]}],
            )
        },
        error="expected a list or a mapping, got str",
    )


MODELS_DICT = {"model1": {"thresh": "foo"}, "model2": {"thresh": "bar"}}
MODELS_LIST = [{"thresh": "foo"}, {"thresh": "bar"}]

CASES: list[Case] = [
    # -- tests/func/parsing/test_interpolated_entry.py ------------------------------------
    Case(
        "simple",
        FUNC + "test_interpolated_entry.py::test_simple",
        {"params.yaml": CONTEXT_DATA, "dvc.yaml": _dvc(TEMPLATED)},
        {
            **_resolved("params.yaml"),
            "stage1": {**_resolved("params.yaml")["stage1"], "frozen": True},
        },
    ),
    Case(
        "vars_import",
        FUNC + "test_interpolated_entry.py::test_vars_import",
        {"params2.yaml": CONTEXT_DATA, "dvc.yaml": _dvc(TEMPLATED, ["params2.yaml"])},
        _resolved("params2.yaml"),
    ),
    Case(
        "vars_and_params_import",
        FUNC + "test_interpolated_entry.py::test_vars_and_params_import",
        {
            "params.yaml": {"dict": {"bar": "bar"}},
            "dvc.yaml": _dvc(
                {"stage1": {"cmd": "echo ${dict.foo} ${dict.bar}"}},
                ["params.yaml", {"dict": {"foo": "foobar"}}],
            ),
        },
        {"stage1": {"cmd": "echo foobar bar", "params": {"params.yaml": {"dict.bar": "bar"}}}},
    ),
    Case(
        "stage_with_wdir",
        FUNC + "test_interpolated_entry.py::test_stage_with_wdir",
        {
            "params.yaml": {"dict": {"bar": "bar"}},
            "data/params.yaml": {"dict": {"foo": "foo"}},
            "dvc.yaml": _dvc(
                {
                    "stage1": {
                        "cmd": "echo ${dict.foo} ${dict.bar}",
                        "params": ["value1"],
                        "wdir": "data",
                        "vars": ["params.yaml"],
                    }
                }
            ),
        },
        {
            "stage1": {
                "cmd": "echo foo bar",
                "wdir": "data",
                "params": {
                    "data/params.yaml": {"dict.foo": "foo"},
                    "params.yaml": {"dict.bar": "bar"},
                },
                # DVC resolves this project; `value1` fails the stage only when it runs
                "missing": ["data/params.yaml:value1"],
            }
        },
    ),
    Case(
        "with_templated_wdir",
        FUNC + "test_interpolated_entry.py::test_with_templated_wdir",
        {
            "params.yaml": {"dict": {"bar": "bar", "ws": "data"}},
            "data/params.yaml": {"dict": {"foo": "foo"}},
            "dvc.yaml": _dvc(
                {
                    "stage1": {
                        "cmd": "echo ${dict.foo} ${dict.bar}",
                        "params": ["value1"],
                        "wdir": "${dict.ws}",
                        "vars": ["params.yaml"],
                    }
                }
            ),
        },
        {
            "stage1": {
                "cmd": "echo foo bar",
                "wdir": "data",
                "params": {
                    "data/params.yaml": {"dict.foo": "foo"},
                    "params.yaml": {"dict.bar": "bar", "dict.ws": "data"},
                },
            }
        },
    ),
    Case(
        "resolve_local_tries_to_load_globally_used_files",
        FUNC + "test_interpolated_entry.py::test_resolve_local_tries_to_load_globally_used_files",
        {
            "params.json": {"bar": "bar", "foo": "foo"},
            "dvc.yaml": _dvc(
                {
                    "build": {
                        "cmd": "command --value ${bar}",
                        "params": [{"params.json": ["foo"]}],
                        "vars": ["params.json"],
                    }
                },
                ["params.json"],
            ),
        },
        {
            "build": {
                "cmd": "command --value bar",
                "params": {"params.json": {"bar": "bar", "foo": "foo"}},
            }
        },
    ),
    Case(
        "resolve_local_tries_to_load_globally_used_params_yaml",
        FUNC
        + "test_interpolated_entry.py::test_resolve_local_tries_to_load_globally_used_params_yaml",
        {
            "params.yaml": {"bar": "bar", "foo": "foo"},
            "dvc.yaml": _dvc(
                {
                    "build": {
                        "cmd": "command --value ${bar}",
                        "params": [{"params.yaml": ["foo"]}],
                        "vars": ["params.yaml"],
                    }
                }
            ),
        },
        {
            "build": {
                "cmd": "command --value bar",
                "params": {"params.yaml": {"bar": "bar", "foo": "foo"}},
            }
        },
    ),
    Case(
        "vars_relpath_overwrite",
        FUNC + "test_interpolated_entry.py::test_vars_relpath_overwrite",
        {
            "params.yaml": {"bar": "bar", "foo": "foo"},
            "dvc.yaml": _dvc(
                {"build": {"wdir": "data", "cmd": "echo ${bar}", "vars": ["../params.yaml"]}},
                ["params.yaml"],
            ),
        },
        {"build": {"cmd": "echo bar", "params": {"params.yaml": {"bar": "bar"}}}},
    ),
    *(
        _load_partial(v, local=local)
        for local in (True, False)
        for v in (
            ["test_params.yaml:bar", "test_params.yaml:foo"],
            ["test_params.yaml:foo,bar"],
            ["test_params.yaml"],
            ["test_params.yaml", "test_params.yaml"],
        )
    ),
    _cmd_dict(None, "store_true", "nargs"),
    _cmd_dict("[parsing]\n    bool = store_true\n    list = nargs\n", "store_true", "nargs"),
    _cmd_dict(
        "[core]\n    remote = storage\n[parsing]\n    bool = boolean_optional\n    list = append\n",
        "boolean_optional",
        "append",
    ),
    *(
        _already_loaded(v, local=local)
        for local in (True, False)
        for v in (
            ["test_params.yaml", "test_params.yaml:sub1"],
            ["test_params.yaml:sub1", "test_params.yaml"],
            ["test_params.yaml:sub1", "test_params.yaml:sub1,sub2"],
        )
    ),
    # -- tests/func/parsing/test_resolver.py ----------------------------------------------
    Case(
        "default_params_file",
        FUNC + "test_resolver.py::test_default_params_file",
        {
            "params.yaml": DATA,
            "dvc.yaml": _dvc({"s": {"cmd": "echo ${models.foo}"}}, ["params.yaml"]),
        },
        {"s": {"cmd": "echo foo", "params": {"params.yaml": {"models.foo": "foo"}}}},
    ),
    Case(
        "load_vars_from_file",
        FUNC + "test_resolver.py::test_load_vars_from_file",
        {
            "params.yaml": DATA,
            "params.json": {"datasets": ["foo", "bar"]},
            "dvc.yaml": _dvc(
                {"s": {"cmd": "echo ${models.bar} ${datasets.1}"}}, ["params.yaml", "params.json"]
            ),
        },
        {
            "s": {
                "cmd": "echo bar bar",
                "params": {
                    "params.json": {"datasets.1": "bar"},
                    "params.yaml": {"models.bar": "bar"},
                },
            }
        },
    ),
    Case(
        "load_vars_with_relpath",
        FUNC + "test_resolver.py::test_load_vars_with_relpath",
        {
            "params.yaml": DATA,
            "dvc.yaml": _dvc(
                {"s": {"wdir": "sub", "cmd": "echo ${models.bar}", "vars": ["../params.yaml"]}}
            ),
        },
        {"s": {"cmd": "echo bar", "wdir": "sub", "params": {"params.yaml": {"models.bar": "bar"}}}},
    ),
    Case(
        "global_overwrite_error_on_imports",
        FUNC + "test_resolver.py::test_global_overwrite_error_on_imports",
        {
            "params.yaml": DATA,
            "params.json": DATA,
            "dvc.yaml": _dvc({}, ["params.yaml", "params.json"]),
        },
        error="cannot redefine 'models.bar' from params.json",
    ),
    Case(
        "global_overwrite_vars",
        FUNC + "test_resolver.py::test_global_overwrite_vars",
        {"params.yaml": DATA, "dvc.yaml": _dvc({}, [DATA])},
        error="cannot redefine 'models.bar' from vars[0]: it is already set in params.yaml",
    ),
    Case(
        "local_declared_vars_overwrite",
        FUNC + "test_resolver.py::test_local_declared_vars_overwrite",
        {"params.yaml": DATA, "dvc.yaml": _dvc({}, [DATA["models"], DATA["models"]])},
        error="cannot redefine 'bar' from vars[1]",
    ),
    Case(
        "specified_params_file_not_exist",
        FUNC + "test_resolver.py::test_specified_params_file_not_exist",
        {"dvc.yaml": _dvc({}, ["not_existing_params.yaml"])},
        error="not_existing_params.yaml does not exist",
    ),
    Case(
        "partial_vars_doesnot_exist",
        FUNC + "test_resolver.py::test_partial_vars_doesnot_exist",
        {"test_params.yaml": {"sub1": "sub1"}, "dvc.yaml": _dvc({}, ["test_params.yaml:sub2"])},
        error="could not find 'sub2' in test_params.yaml",
    ),
    Case(
        "local_overwrite_error",
        FUNC + "test_resolver.py::test_local_overwrite_error",
        {
            "params.yaml": DATA,
            "params.json": DATA,
            "dvc.yaml": _dvc({"build": {"cmd": "echo ${models.foo}", "vars": ["params.json"]}}),
        },
        error="cannot redefine 'models.bar' from params.json",
    ),
    # -- tests/func/parsing/test_foreach.py -----------------------------------------------
    Case(
        "with_simple_list_data",
        FUNC + "test_foreach.py::test_with_simple_list_data",
        {
            "dvc.yaml": _dvc(
                {"build": {"foreach": ["foo", "bar", "baz"], "do": {"cmd": "echo ${item}"}}}
            )
        },
        {f"build@{v}": {"cmd": f"echo {v}", "params": {}} for v in ("foo", "bar", "baz")},
    ),
    Case(
        "with_dict_data",
        FUNC + "test_foreach.py::test_with_dict_data",
        {
            "dvc.yaml": _dvc(
                {
                    "build": {
                        "foreach": {"model1": "foo", "model2": "bar"},
                        "do": {"cmd": "echo ${key} ${item}"},
                    }
                }
            )
        },
        {"build@model1": {"cmd": "echo model1 foo"}, "build@model2": {"cmd": "echo model2 bar"}},
    ),
    Case(
        "with_composite_list",
        FUNC + "test_foreach.py::test_with_composite_list",
        {
            "dvc.yaml": _dvc(
                {"build": {"foreach": MODELS_LIST, "do": {"cmd": "echo ${item.thresh}"}}}
            )
        },
        {
            "build@0": {"cmd": "echo foo", "params": {}},
            "build@1": {"cmd": "echo bar", "params": {}},
        },
    ),
    Case(
        "with_dict_data_non_string_key",
        FUNC + "test_foreach.py::test_with_dict_data_non_string_key",
        {
            "dvc.yaml": "stages:\n  build:\n    foreach:\n      0: foo\n      0.1: bar\n"
            "      0.2: baz\n      true: really?\n    do:\n      cmd: echo ${key} ${item}\n"
        },
        {
            "build@0": {"cmd": "echo 0 foo"},
            "build@0.1": {"cmd": "echo 0.1 bar"},
            "build@0.2": {"cmd": "echo 0.2 baz"},
            "build@true": {"cmd": "echo true really?"},
        },
    ),
    Case(
        "foreach_over_params_with_non_string_keys",
        FUNC + "test_foreach.py::test_with_dict_data_non_string_key (data from params.yaml)",
        {
            "params.yaml": "models:\n  1: a\n  0.5: b\n",
            "dvc.yaml": _dvc({"build": {"foreach": "${models}", "do": {"cmd": "echo ${item}"}}}),
        },
        {"build@1": {"cmd": "echo a"}, "build@0.5": {"cmd": "echo b"}},
    ),
    Case(
        "foreach_interpolated_simple_list",
        FUNC + "test_foreach.py::test_foreach_interpolated_simple_list",
        {
            "dvc.yaml": _dvc(
                {"build": {"foreach": "${models}", "do": {"cmd": "echo ${item}"}}},
                [{"models": ["foo", "bar", "baz"]}],
            )
        },
        {f"build@{v}": {"cmd": f"echo {v}", "params": {}} for v in ("foo", "bar", "baz")},
    ),
    *(
        _composite(d, data, result)
        for d in ("${item.thresh}", "${item[thresh]}")
        for data, result in (
            (MODELS_DICT, {"build@model1": "echo foo", "build@model2": "echo bar"}),
            (MODELS_LIST, {"build@0": "echo foo", "build@1": "echo bar"}),
        )
    ),
    Case(
        "params_file_with_dict_tracked",
        FUNC + "test_foreach.py::test_params_file_with_dict_tracked",
        {
            "params.yaml": {"models": MODELS_DICT},
            "dvc.yaml": _dvc(
                {"build": {"foreach": "${models}", "do": {"cmd": "echo ${item.thresh}"}}}
            ),
        },
        {
            "build@model1": {
                "cmd": "echo foo",
                "params": {"params.yaml": {"models.model1.thresh": "foo"}},
            },
            "build@model2": {
                "cmd": "echo bar",
                "params": {"params.yaml": {"models.model2.thresh": "bar"}},
            },
        },
    ),
    Case(
        "params_file_tracked_for_composite_list",
        FUNC + "test_foreach.py::test_params_file_tracked_for_composite_list",
        {
            "params.yaml": {"models": MODELS_LIST},
            "dvc.yaml": _dvc(
                {"build": {"foreach": "${models}", "do": {"cmd": "echo ${item.thresh}"}}}
            ),
        },
        {
            "build@0": {"cmd": "echo foo", "params": {"params.yaml": {"models.0.thresh": "foo"}}},
            "build@1": {"cmd": "echo bar", "params": {"params.yaml": {"models.1.thresh": "bar"}}},
        },
    ),
    Case(
        "foreach_data_from_nested_vars",
        FUNC + "test_foreach.py::test_foreach_data_from_nested_vars",
        {
            "dvc.yaml": _dvc(
                {"build": {"foreach": "${models.lst}", "do": {"cmd": "echo ${item.thresh}"}}},
                [{"models": {"lst": [{"thresh": 10}, {"thresh": 15}]}}],
            )
        },
        {"build@0": {"cmd": "echo 10", "params": {}}, "build@1": {"cmd": "echo 15", "params": {}}},
    ),
    Case(
        "foreach_partial_interpolations",
        FUNC + "test_foreach.py::test_foreach_partial_interpolations",
        {
            "dvc.yaml": _dvc(
                {
                    "build": {
                        "foreach": {"model1": "foo", "model2": "${bar}"},
                        "do": {"cmd": "echo ${item}"},
                    }
                },
                [{"bar": "bar"}],
            )
        },
        {"build@model1": {"cmd": "echo foo"}, "build@model2": {"cmd": "echo bar"}},
    ),
    Case(
        "mixed_vars_for_foreach_data",
        FUNC + "test_foreach.py::test_mixed_vars_for_foreach_data",
        {
            "params.yaml": {"models": {"model1": "foo"}},
            "test_params.yaml": {"models": {"model2": "bar"}},
            "dvc.yaml": _dvc(
                {"build": {"foreach": "${models}", "do": {"cmd": "echo ${item}"}}},
                ["test_params.yaml"],
            ),
        },
        {
            "build@model1": {
                "cmd": "echo foo",
                "params": {"params.yaml": {"models.model1": "foo"}},
            },
            "build@model2": {
                "cmd": "echo bar",
                "params": {"test_params.yaml": {"models.model2": "bar"}},
            },
        },
    ),
    Case(
        "mixed_vars_for_foreach_data_2",
        FUNC + "test_foreach.py::test_mixed_vars_for_foreach_data_2",
        {
            "params.yaml": {"models": {"model1": {"thresh": 10}, "model2": {"thresh": 15}}},
            "test_params.yaml": {"models": {"model1": {"epochs": 5}, "model2": {"epochs": 10}}},
            "dvc.yaml": _dvc(
                {
                    "build": {
                        "foreach": "${models}",
                        "do": {"cmd": "echo ${item.thresh} ${item.epochs}"},
                    }
                },
                ["test_params.yaml"],
            ),
        },
        {
            "build@model1": {
                "cmd": "echo 10 5",
                "params": {
                    "params.yaml": {"models.model1.thresh": 10},
                    "test_params.yaml": {"models.model1.epochs": 5},
                },
            },
            "build@model2": {
                "cmd": "echo 15 10",
                "params": {
                    "params.yaml": {"models.model2.thresh": 15},
                    "test_params.yaml": {"models.model2.epochs": 10},
                },
            },
        },
    ),
    Case(
        "foreach_with_interpolated_wdir",
        FUNC + "test_foreach.py::test_foreach_with_interpolated_wdir",
        {
            "dvc.yaml": _dvc(
                {
                    "build": {
                        "foreach": ["foo", "bar"],
                        "do": {"wdir": "${item}", "cmd": "echo hello"},
                    }
                }
            )
        },
        {
            "build@foo": {"cmd": "echo hello", "wdir": "foo"},
            "build@bar": {"cmd": "echo hello", "wdir": "bar"},
        },
    ),
    Case(
        "foreach_with_local_vars",
        FUNC + "test_foreach.py::test_foreach_with_local_vars",
        {
            "dvc.yaml": _dvc(
                {
                    "build": {
                        "foreach": ["foo", "bar"],
                        "do": {"vars": [{"foobar": "foobar"}], "cmd": "echo ${item} ${foobar}"},
                    }
                }
            )
        },
        {"build@foo": {"cmd": "echo foo foobar"}, "build@bar": {"cmd": "echo bar foobar"}},
    ),
    *(
        _foreach_imported(i)
        for i in ("test_params.yaml", "test_params.yaml:train", "test_params.yaml:train,prepare")
    ),
    *(_foreach_wdir_vars(i) for i in ("params.yaml", "params.yaml:train,prepare")),
    # -- tests/func/parsing/test_matrix.py ------------------------------------------------
    *(
        _matrix(
            refs=refs,
            cmd="echo ${item.os} ${item.pyv} ${item.dict} -- ${item.list.0} ${item.list.1}",
            expect="echo {os} {pyv} {dict} -- {l0} {l1}",
        )
        for refs in (False, True)
    ),
    *(_matrix(refs=refs, cmd="echo ${key}", expect="echo {key}") for refs in (False, True)),
    Case(
        "matrix_items_from_params_are_tracked",
        FUNC + "test_matrix.py::test_matrix_interpolated (tracking, issue 14)",
        {
            "params.yaml": MATRIX_DATA,
            "dvc.yaml": _dvc(
                {
                    "build": {
                        "matrix": {"os": "${os}", "list": "${list}"},
                        "cmd": "echo ${item.os} ${item.list.1}",
                    }
                }
            ),
        },
        {
            "build@win-list0": {
                "cmd": "echo win out11",
                "params": {"params.yaml": {"list.0.1": "out11", "os.0": "win"}},
            },
            "build@win-list1": {"cmd": "echo win out22"},
            "build@linux-list0": {"cmd": "echo linux out11"},
            "build@linux-list1": {
                "cmd": "echo linux out22",
                "params": {"params.yaml": {"list.1.1": "out22", "os.1": "linux"}},
            },
        },
    ),
    # -- tests/func/parsing/test_errors.py ------------------------------------------------
    Case(
        "specified_key_does_not_exist",
        FUNC + "test_errors.py::test_specified_key_does_not_exist",
        {
            "dvc.yaml": _dvc(
                {"build": {"cmd": "echo ${models.foobar}"}}, [{"models": {"foo": "foo"}}]
            )
        },
        error="unknown parameter 'models.foobar'",
    ),
    *(
        Case(
            f"foreach_data_key_does_not_exist-{key}",
            FUNC + "test_errors.py::test_foreach_data_key_does_not_exists",
            {"dvc.yaml": _dvc({"build": {"foreach": "${" + key + "}", "do": {"cmd": "echo"}}})},
            error=f"unknown parameter '{key}'",
        )
        for key in ("modelss", "modelss.123")
    ),
    *(_expects_list_or_dict(f) for f in ("${foo}", "${dct.model1}", "${lst.0}", "foobar")),
    Case(
        "foreach_do_definition_item_does_not_exist",
        FUNC + "test_errors.py::test_foreach_do_definition_item_does_not_exist",
        {
            "dvc.yaml": _dvc(
                {"build": {"foreach": [{"thresh": "10"}, {}], "do": {"cmd": "${item.thresh}"}}}
            )
        },
        error="unknown parameter 'item.thresh'",
    ),
    Case(
        "foreach_wdir_key_does_not_exist",
        FUNC + "test_errors.py::test_foreach_wdir_key_does_not_exist",
        {
            "dvc.yaml": _dvc(
                {
                    "build": {
                        "foreach": "${models}",
                        "do": {"wdir": "${ite}", "cmd": "echo ${item}"},
                    }
                },
                [{"models": ["foo", "bar"]}],
            )
        },
        error="unknown parameter 'ite'",
    ),
    Case(
        "local_vars_params_file_not_exist",
        FUNC + "test_errors.py::test_local_vars_params_file_not_exist",
        {
            "dvc.yaml": _dvc(
                {"build": {"vars": ["not_existing_params.yaml"], "cmd": "echo ${models.foo}"}}
            )
        },
        error="not_existing_params.yaml does not exist",
    ),
    Case(
        "local_partial_vars_doesnot_exist",
        FUNC + "test_errors.py::test_partial_vars_doesnot_exist",
        {
            "test_params.yaml": SUB,
            "dvc.yaml": _dvc(
                {"build": {"vars": ["test_params.yaml:sub3"], "cmd": "echo ${sub1} ${sub2}"}}
            ),
        },
        error="could not find 'sub3' in test_params.yaml",
    ),
    # -- tests/unit/test_context.py -------------------------------------------------------
    Case(
        "select",
        UNIT + "test_select",
        {
            "params.yaml": {
                "foo": "foo",
                "lst": [{"foo0": "foo0", "bar0": "bar0"}, {"foo1": "foo1"}],
            },
            "dvc.yaml": _dvc({"s": {"cmd": "echo ${foo} ${lst.0.bar0} ${lst.1.foo1}"}}),
        },
        {
            "s": {
                "cmd": "echo foo bar0 foo1",
                "params": {
                    "params.yaml": {"foo": "foo", "lst.0.bar0": "bar0", "lst.1.foo1": "foo1"}
                },
            }
        },
    ),
    Case(
        "select_missing_index",
        UNIT + "test_select (lst.2 is not in the context)",
        {"params.yaml": {"lst": [1, 2]}, "dvc.yaml": _dvc({"s": {"cmd": "echo ${lst.2}"}})},
        error="unknown parameter 'lst.2'",
    ),
    Case(
        "resolve_resolves_dict_keys",
        UNIT + "test_resolve_resolves_dict_keys",
        {
            "params.yaml": {"dct": {"foo": "foobar", "persist": True}},
            "dvc.yaml": _dvc(
                {"s": {"cmd": "echo", "outs": [{"${dct.foo}": {"persist": "${dct.persist}"}}]}}
            ),
        },
        {"s": {"outs": ["foobar"], "persist": [True]}},
    ),
    Case(
        "resolve_resolves_boolean_value",
        UNIT + "test_resolve_resolves_boolean_value",
        {
            "params.yaml": {"enabled": True, "disabled": False},
            "dvc.yaml": _dvc(
                {"s": {"cmd": "run --flag ${enabled} --other ${disabled}", "frozen": "${disabled}"}}
            ),
        },
        {"s": {"cmd": "run --flag true --other false", "frozen": False}},
    ),
    Case(
        "track",
        UNIT + "test_track",
        {
            "params.yaml": {
                "lst": [{"foo0": "foo0", "bar0": "bar0"}, {"foo1": "foo1"}],
                "dct": {"foo": "foo", "bar": "bar"},
            },
            "dvc.yaml": _dvc({"s": {"cmd": "echo ${dct.foo} ${lst.0.foo0}"}}),
        },
        {"s": {"params": {"params.yaml": {"dct.foo": "foo", "lst.0.foo0": "foo0"}}}},
    ),
    Case(
        "track_from_multiple_files",
        UNIT + "test_track_from_multiple_files",
        {
            "params.yaml": {"Train": {"us": {"lr": 10}}},
            "params2.yaml": {"Train": {"us": {"layers": 100}}},
            "dvc.yaml": _dvc(
                {"s": {"cmd": "echo ${Train.us.lr} ${Train.us.layers}"}}, ["params2.yaml"]
            ),
        },
        {
            "s": {
                "cmd": "echo 10 100",
                "params": {
                    "params.yaml": {"Train.us.lr": 10},
                    "params2.yaml": {"Train.us.layers": 100},
                },
            }
        },
    ),
    Case(
        "merge_dict",
        UNIT + "test_merge_dict",
        {
            "params.yaml": {"Train": {"us": {"lr": 10}}},
            "dvc.yaml": _dvc({}, [{"Train": {"us": {"lr": 15}}}]),
        },
        error="cannot redefine 'Train.us.lr'",
    ),
    Case(
        "merge_list",
        UNIT + "test_merge_list",
        {"params.yaml": {"lst": [1, 2, 3]}, "dvc.yaml": _dvc({}, [{"lst": [10, 11, 12]}])},
        error="cannot redefine 'lst'",
    ),
    # -- issue 14: DVC behaviour the tests above do not pin -------------------------------
    Case(
        "raw_cmd_expands_to_several_arguments_and_globs",
        "dvc docs: templating (values are substituted as they are)",
        {
            "params.yaml": {"opts": "--a 1 --b 2", "pattern": "data/*.csv"},
            "dvc.yaml": _dvc({"s": {"cmd": "python train.py ${opts} ${pattern}"}}),
        },
        {"s": {"cmd": "python train.py --a 1 --b 2 data/*.csv"}},
    ),
    Case(
        "mlproject_quotes_every_value",
        "pipeline: MLproject values are data (not a DVC test)",
        {
            "params.yaml": {"opts": "--a 1 --b 2", "pattern": "data/*.csv"},
            "MLproject": _dvc({"s": {"cmd": "python train.py ${opts} ${pattern}"}}),
        },
        {"s": {"cmd": "python train.py '--a 1 --b 2' 'data/*.csv'"}},
    ),
    Case(
        "list_index_in_deps_and_outs",
        UNIT + "test_select_unwrap (lst.0)",
        {
            "params.yaml": {"files": ["a.csv", "b.csv"], "runs": [{"out": "r0"}, {"out": "r1"}]},
            "dvc.yaml": _dvc(
                {
                    "s": {
                        "cmd": "cat ${files.0} > ${runs.1.out}",
                        "deps": ["${files.0}"],
                        "outs": ["${runs.1.out}"],
                    }
                }
            ),
        },
        {"s": {"cmd": "cat a.csv > r1", "deps": ["a.csv"], "outs": ["r1"]}},
    ),
    Case(
        "missing_params_key_fails_only_that_stage",
        "dvc behaviour: repro fails only the stage whose params key is missing",
        {
            "params.yaml": {"lr": 1},
            "dvc.yaml": _dvc(
                {
                    "a": {"cmd": "echo a > a.txt", "params": ["nope", "lr"], "outs": ["a.txt"]},
                    "b": {"cmd": "echo b > b.txt", "outs": ["b.txt"]},
                }
            ),
        },
        {
            "a": {"params": {"params.yaml": {"lr": 1}}, "missing": ["params.yaml:nope"]},
            "b": {"missing": []},
        },
        status={"a": ["param params.yaml:nope missing"], "b": []},
    ),
    Case(
        "foreach_item_params_change_is_a_param_change",
        FUNC + "test_foreach.py::test_params_file_with_dict_tracked (status, issue 14)",
        {
            "params.yaml": {"models": {"m1": {"thresh": 1}, "m2": {"thresh": 2}}},
            "dvc.yaml": _dvc(
                {
                    "build": {
                        "foreach": "${models}",
                        "do": {"cmd": "echo ${item.thresh} > ${key}.txt", "outs": ["${key}.txt"]},
                    }
                }
            ),
        },
        {"build@m1": {"cmd": "echo 1 > m1.txt"}, "build@m2": {"cmd": "echo 2 > m2.txt"}},
        change={"params.yaml": {"models": {"m1": {"thresh": 5}, "m2": {"thresh": 2}}}},
        status={"build@m1": ["param models.m1.thresh 1→5"], "build@m2": []},
    ),
    Case(
        "matrix_item_params_change_is_a_param_change",
        FUNC + "test_matrix.py::test_matrix_interpolated (status, issue 14)",
        {
            "params.yaml": {"lrs": [0.1, 0.2]},
            "dvc.yaml": _dvc(
                {
                    "t": {
                        "matrix": {"lr": "${lrs}"},
                        "cmd": "echo ${item.lr} > t${key}.txt",
                        "outs": ["t${key}.txt"],
                    }
                }
            ),
        },
        {
            "t@0.1": {"cmd": "echo 0.1 > t0.1.txt", "params": {"params.yaml": {"lrs.0": 0.1}}},
            "t@0.2": {"cmd": "echo 0.2 > t0.2.txt", "params": {"params.yaml": {"lrs.1": 0.2}}},
        },
        change={"params.yaml": {"lrs": [0.1, 0.3]}},
        status={"t@0.1": [], "t@0.3": ["new stage"]},
    ),
    Case(
        "list_index_param_change_is_a_param_change",
        UNIT + "test_select (lst.0, status, issue 14)",
        {
            "params.yaml": {"sizes": [1, 2]},
            "dvc.yaml": _dvc({"s": {"cmd": "echo ${sizes.1} > s.txt", "outs": ["s.txt"]}}),
        },
        {"s": {"params": {"params.yaml": {"sizes.1": 2}}}},
        change={"params.yaml": {"sizes": [1, 7]}},
        status={"s": ["param sizes.1 2→7"]},
    ),
]
