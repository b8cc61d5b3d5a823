"""Property tests of the validator: whatever a flow file holds, ``validate_files`` and ``careloop flows validate``
answer with problems (file, node id or "-", reason) and never raise.

The cases are built two ways: by mutating the real library flows (wrong types at every level, deleted and
duplicated ids, cycles, unknown kinds, bad expressions and templates, damaged YAML text and bytes) and from
scratch (any YAML document, any text, any bytes, huge and deeply nested documents). The runs are bounded and
derandomized, so CI sees the same cases every time.
"""

from __future__ import annotations

import atexit
import copy
import io
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from careloop.cli import run
from careloop.settings import Settings
from flows.definition import load_flow, read_yaml
from flows.problems import FlowValidationError, Problem, printable
from flows.registry import LIBRARY_DIR, FlowLibrary
from flows.validate import validate_files

# Derandomized: the same cases on every run, so a failure prints a case that reproduces. No shrinking: on these
# large documents it can take minutes, and the case as generated already names the file content at fault.
BOUNDED = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)

LIBRARY_FILES = sorted(LIBRARY_DIR.glob("*.yaml"))
LIBRARY_TEXTS = {path.name: path.read_text(encoding="utf-8") for path in LIBRARY_FILES}


def _library_data(text: str) -> Any:
    problems: list[Problem] = []
    data = read_yaml(text, "<library>", problems)
    assert not problems
    return data


LIBRARY_DATA = {name: _library_data(text) for name, text in LIBRARY_TEXTS.items()}

# -- values of every type, for "a list where a mapping is expected, numbers for strings, null everywhere" ----
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["", " ", "~", "null", "yes", "no", "0", "-1", "1e309", "nan", "{", "}", "{x}", "\t"]),
)
JUNK = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=12), st.integers(), st.booleans(), st.none()), children,
                        max_size=4),
    ),
    max_leaves=12,
)
BAD_EXPRESSIONS = st.one_of(
    st.sampled_from([
        "", "(", ")", "1 +", "score >", "no_such_name > 1", "__import__('os').system('x')", "lambda: 1",
        "[x for x in (1, 2)]", "().__class__", "a.b.c.d", "f(x=1)", "1 if", "'unterminated", "\x00", "\ud800",
        "(" * 200 + "1" + ")" * 200, "1" + " + 1" * 400, "not " * 500 + "true", "x" * 2000, "{**a}",
        "yield 1", "await x", "a := 1", "1; 2", "\n\n", "score[0][1][2]", "len()", "max(*a)",
        "9" * 5000, "1e9999", "0x" + "f" * 300, "-" * 300 + "1", "'a' * 10**9", "2 ** 2 ** 2 ** 99",
    ]),
    st.text(max_size=40),
)
BAD_TEMPLATES = st.one_of(
    st.sampled_from([
        "{", "}", "{{", "}}", "{}", "{0}", "{nope}", "{a.b.c}", "{__class__}", "{nps.__class__}", "{ nps }",
        "{nps!r}", "{nps:>10}", "{" * 100, "}" * 100, "{disclaimer}", "{obs}", "{age.x}", "{profile}",
        "{" + "a" * 500 + "}", "{\ud800}", "{é}",
    ]),
    st.text(alphabet="{}.:!abc_0 ", max_size=20),
)
UNKNOWN_KINDS = st.one_of(st.sampled_from(["questionn", "Question", "", "end ", "branches", "__init__", "base"]),
                          JUNK)


# -- walking and changing a document ---------------------------------------------------------------------
def _children(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return list(value)
    if isinstance(value, list):
        return list(range(len(value)))
    return []


@st.composite
def _path(draw: st.DrawFn, document: Any) -> list[Any]:
    """Draw a path from the root into ``document`` (a list of keys and indexes; empty: the root)."""
    path: list[Any] = []
    here = document
    while _children(here) and draw(st.integers(0, 4), label="descend") > 0:
        key = draw(st.sampled_from(_children(here)), label="key")
        path.append(key)
        here = here[key]
    return path


def _parent(document: Any, path: list[Any]) -> Any:
    here = document
    for key in path[:-1]:
        here = here[key]
    return here


def _nodes(document: Any) -> list[dict[Any, Any]]:
    if isinstance(document, dict) and isinstance(document.get("nodes"), list):
        return [node for node in document["nodes"] if isinstance(node, dict)]
    return []


def _text_fields(value: Any) -> Iterator[dict[Any, Any]]:
    """Yield every ``{zh: ..., en: ...}`` mapping inside ``value``."""
    if isinstance(value, dict):
        if value and set(value) <= {"zh", "en"}:
            yield value
        for item in value.values():
            yield from _text_fields(item)
    elif isinstance(value, list):
        for item in value:
            yield from _text_fields(item)


def _expression_holders(value: Any) -> Iterator[tuple[dict[Any, Any], str]]:
    if isinstance(value, dict):
        for key in ("when", "value", "expression"):
            if key in value:
                yield value, key
        for item in value.values():
            yield from _expression_holders(item)
    elif isinstance(value, list):
        for item in value:
            yield from _expression_holders(item)


@st.composite
def _mutate_once(draw: st.DrawFn, document: Any) -> Any:
    """Apply one change to ``document`` (in place where possible); return the document."""
    nodes = _nodes(document)
    how = draw(st.sampled_from([
        "replace", "replace", "delete", "add_field", "duplicate_item", "node_kind", "node_id_twice", "node_id_gone",
        "node_id_junk", "cycle", "self_loop", "unknown_target", "bad_expression", "bad_template", "bad_version",
        "references",
    ]), label="how")
    if how in ("replace", "delete", "add_field", "duplicate_item") or not nodes:
        path = draw(_path(document), label="path")
        if not path:
            return draw(JUNK, label="new document") if how == "replace" else document
        parent = _parent(document, path)
        key = path[-1]
        if how == "replace" or (how == "add_field" and not isinstance(parent, dict)):
            parent[key] = draw(JUNK, label="new value")
        elif how == "delete":
            del parent[key]
        elif how == "add_field":
            parent[draw(st.text(max_size=10), label="field")] = draw(JUNK, label="value")
        elif isinstance(parent, list):
            parent.insert(key, copy.deepcopy(parent[key]))
        else:
            parent[f"{key}_copy"] = copy.deepcopy(parent[key])
        return document
    node = draw(st.sampled_from(nodes), label="node")
    other = draw(st.sampled_from(nodes), label="other node")
    if how == "node_kind":
        node["kind"] = draw(UNKNOWN_KINDS, label="kind")
    elif how == "node_id_twice":
        node["id"] = other.get("id")
    elif how == "node_id_gone":
        node.pop("id", None)
    elif how == "node_id_junk":
        node["id"] = draw(st.one_of(JUNK, st.sampled_from(["A", "1st", "with space", "a" * 100, "中文", "a\nb"])),
                          label="id")
    elif how == "cycle":
        other["next"] = node.get("id")
        node["next"] = other.get("id")
        node["kind"] = "message"
        node.setdefault("text", {"zh": "循环", "en": "loop"})
    elif how == "self_loop":
        node["next"] = node.get("id")
    elif how == "unknown_target":
        node["next"] = draw(st.sampled_from(["nowhere", "", "Nowhere", "end"]), label="target")
    elif how == "bad_expression":
        holders = list(_expression_holders(document))
        holder, key = draw(st.sampled_from(holders), label="holder") if holders else (node, "when")
        holder[key] = draw(BAD_EXPRESSIONS, label="expression")
    elif how == "bad_template":
        texts = list(_text_fields(document))
        if texts:
            text = draw(st.sampled_from(texts), label="text")
            lang = draw(st.sampled_from(sorted(text, key=str)), label="lang")
            text[lang] = f"{text[lang]}{draw(BAD_TEMPLATES, label='template')}"
    elif how == "bad_version":
        document["version"] = draw(st.one_of(JUNK, st.sampled_from([0, -1, 10**12, 1.5, "2", True])), label="v")
    else:
        node["kind"] = draw(st.sampled_from(["start_flow", "schedule_followup"]), label="ref kind")
        node["flow"] = draw(st.sampled_from(["no_such_flow", "phq9", node.get("id"), "", 7]), label="flow")
    return document


@st.composite
def mutated_library_document(draw: st.DrawFn) -> Any:
    """One of the library flows, changed one to four times."""
    name = draw(st.sampled_from(sorted(LIBRARY_DATA)), label="flow")
    document = copy.deepcopy(LIBRARY_DATA[name])
    for _ in range(draw(st.integers(1, 4), label="changes")):
        document = draw(_mutate_once(document), label="change")
    return document


def _dump(document: Any) -> str:
    try:
        return yaml.safe_dump(document, allow_unicode=True, sort_keys=False)
    except (yaml.YAMLError, ValueError, TypeError, RecursionError):
        return repr(document)


YAML_NOISE = st.text(alphabet=":-[]{}&*!|>'\"%@`#,?\t\n \\", min_size=1, max_size=8)


@st.composite
def damaged_text(draw: st.DrawFn) -> str:
    """A library flow's YAML text (or a mutated document's), cut, spliced or sprinkled with YAML syntax."""
    if draw(st.booleans(), label="from library text"):
        text = LIBRARY_TEXTS[draw(st.sampled_from(sorted(LIBRARY_TEXTS)), label="flow")]
    else:
        text = _dump(draw(mutated_library_document(), label="document"))
    for _ in range(draw(st.integers(1, 3), label="cuts")):
        at = draw(st.integers(0, len(text)), label="at")
        how = draw(st.sampled_from(["truncate", "insert", "delete", "repeat_line", "indent"]), label="how")
        if how == "truncate":
            text = text[:at]
        elif how == "insert":
            text = text[:at] + draw(st.one_of(YAML_NOISE, st.text(max_size=8)), label="noise") + text[at:]
        elif how == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 200), label="length"):]
        else:
            lines = text.splitlines(keepends=True) or [""]
            line = min(at, len(lines) - 1)
            if how == "repeat_line":
                lines.insert(line, lines[line])
            else:
                lines[line] = draw(st.sampled_from(["  ", "\t", " "]), label="indent") + lines[line]
            text = "".join(lines)
    return text


@st.composite
def damaged_bytes(draw: st.DrawFn) -> bytes:
    """A library flow's bytes with bytes that are not UTF-8 (or a BOM, or NULs) put in."""
    data = LIBRARY_TEXTS[draw(st.sampled_from(sorted(LIBRARY_TEXTS)), label="flow")].encode("utf-8")
    for _ in range(draw(st.integers(1, 3), label="splices")):
        at = draw(st.integers(0, len(data)), label="at")
        noise = draw(st.one_of(
            st.sampled_from([b"\xff", b"\xfe\xff", b"\x80", b"\xc3", b"\xed\xa0\x80", b"\x00", b"\xef\xbb\xbf",
                             "中".encode("gbk"), b"\xe4\xb8"]),
            st.binary(min_size=1, max_size=6),
        ), label="noise")
        data = data[:at] + noise + data[at:]
    return data


def _deep(depth: int, kind: str) -> str:
    if kind == "lists":
        return "nodes: " + "[" * depth + "]" * depth + "\n"
    if kind == "mappings":
        return "nodes: " + "{a: " * depth + "1" + "}" * depth + "\n"
    if kind == "indent":
        return "".join(f"{' ' * level}k{level}:\n" for level in range(depth)) + " " * depth + "v\n"
    if kind == "self_reference":
        return "id: x\nversion: 1\ntitle: &t {zh: a, en: *t}\nnodes: &n [*n, {id: a, kind: end, text: *t}]\n"
    # Aliases of aliases: a document that is small as text and huge as a tree.
    lines = ["id: laughs", "version: 1", "title: {zh: 笑, en: laugh}",
             "a0: &a0 [{id: n, kind: end, text: {zh: 好, en: ok}}]"]
    for level in range(1, depth):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 9) + "]")
    lines.append(f"nodes: *a{depth - 1}")
    return "\n".join(lines) + "\n"


HUGE_OR_DEEP = st.one_of(
    st.builds(_deep, st.integers(50, 3000), st.sampled_from(["lists", "mappings", "indent"])),
    st.builds(_deep, st.integers(2, 12), st.just("laughs")),
    st.just(_deep(0, "self_reference")),
    st.builds(lambda n: "id: big\nversion: 1\ntitle: {zh: 大, en: big}\nnodes:\n"
              + "".join(f"  - {{id: n{i}, kind: message, text: {{zh: 好, en: ok}}}}\n" for i in range(n)),
              st.integers(500, 3000)),
    st.builds(lambda n: "id: big\nversion: 1\ntitle: {zh: 大, en: big}\nnodes:\n"
              + "".join(f"  - {{id: n{i}, kind: message, next: n{(i + 1) % n}, text: {{zh: 好, en: ok}}}}\n"
                        for i in range(n)),
              st.integers(200, 1500)),
    st.builds(lambda n: "x" * n, st.sampled_from([1_000_001, 1_500_000])),
    st.builds(lambda n: "id: big\nversion: 1\ndescription: {zh: " + "长" * n + ", en: long}\n",
              st.integers(1, 400_000)),
)
SCRATCH_FLOW = st.fixed_dictionaries(
    {},
    optional={
        "id": JUNK, "version": JUNK, "title": JUNK, "languages": JUNK, "start": JUNK, "expiry_hours": JUNK,
        "reminders": JUNK, "texts": JUNK, "code": JUNK, "disclaimer": JUNK,
        "nodes": st.one_of(JUNK, st.lists(st.fixed_dictionaries({}, optional={
            "id": st.one_of(JUNK, st.sampled_from(["a", "b", "c"])),
            "kind": st.one_of(st.sampled_from(["question", "message", "branch", "compute", "end", "set_profile",
                                               "notify_staff", "add_tag", "record_observation", "start_flow"]),
                              UNKNOWN_KINDS),
            "next": st.one_of(JUNK, st.sampled_from(["a", "b", "c"])), "text": JUNK, "type": JUNK,
            "choices": JUNK, "cases": JUNK, "default": JUNK, "when": st.one_of(JUNK, BAD_EXPRESSIONS),
            "value": st.one_of(JUNK, BAD_EXPRESSIONS), "result": JUNK, "field": JUNK, "bands": JUNK,
        }), max_size=5)),
    },
)

#: Every kind of file content the validator may meet: str is written as UTF-8, bytes as they are.
ANY_CONTENT = st.one_of(
    st.builds(_dump, mutated_library_document()),
    damaged_text(),
    damaged_bytes(),
    st.builds(_dump, SCRATCH_FLOW),
    st.builds(_dump, JUNK),
    st.text(max_size=200),
    st.binary(max_size=200),
    HUGE_OR_DEEP,
)

# Hypothesis runs many cases per test, so the files live in one folder of the module's, removed at exit.
_WORK = Path(tempfile.mkdtemp(prefix="careloop-validate-"))
atexit.register(shutil.rmtree, _WORK, ignore_errors=True)
_names = iter(range(10**9))


def write(content: str | bytes, name: str | None = None) -> Path:
    """Write ``content`` to a file of its own (a directory per case, so directories can be validated too)."""
    folder = _WORK / f"case{next(_names)}"
    folder.mkdir()
    path = folder / (name or "flow.yaml")
    if isinstance(content, str):
        path.write_bytes(content.encode("utf-8", "surrogatepass"))
    else:
        path.write_bytes(content)
    return path


def _is_one_line(text: str) -> bool:
    return bool(text) and text.isprintable() and text == text.strip()


def check_problems(problems: list[Problem], files: set[str]) -> None:
    """Every problem names one of ``files``, a node (or none) and a reason, each printable on one line."""
    for problem in problems:
        assert isinstance(problem, Problem)
        assert problem.file in files
        assert problem.node_id is None or (isinstance(problem.node_id, str) and _is_one_line(problem.node_id))
        assert isinstance(problem.reason, str)
        assert problem.reason.strip()
        assert problem.reason.isprintable(), problem.reason
        assert _is_one_line(problem.kind)
        assert problem.kind != "internal_error", problem.reason
        assert str(problem).isprintable(), str(problem)
        assert str(problem).startswith(f"{printable(problem.file)}:{problem.node_id or '-'}: ")
    assert problems == sorted(problems, key=Problem.sort_key)


def validate_one(path: Path) -> list[Problem]:
    problems = validate_files([path])
    check_problems(problems, {str(path)})
    return problems


def run_cli(*argv: str) -> tuple[int, str, str]:
    """Run ``careloop`` in-process; its output goes through strict UTF-8 streams, as on a real terminal."""
    out_bytes, err_bytes = io.BytesIO(), io.BytesIO()
    out = io.TextIOWrapper(out_bytes, encoding="utf-8", errors="strict", newline="\n")
    err = io.TextIOWrapper(err_bytes, encoding="utf-8", errors="strict", newline="\n")
    with redirect_stdout(out), redirect_stderr(err):
        code = run(list(argv), settings=Settings())
    out.flush()
    err.flush()
    return code, out_bytes.getvalue().decode("utf-8"), err_bytes.getvalue().decode("utf-8")


def check_cli(paths: list[Path], problems: list[Problem]) -> None:
    code, out, err = run_cli("flows", "validate", *map(str, paths))
    assert "Traceback" not in out + err
    assert not err.startswith("error:"), err
    if problems:
        assert code == 1
        assert out.splitlines() == [str(problem) for problem in problems]
        assert err.strip().endswith(("file.", "files."))
    else:
        assert code == 0, out + err
        assert out.startswith("ok: ")


# -- the properties -------------------------------------------------------------------------------------
@BOUNDED
@given(content=ANY_CONTENT)
def test_any_file_gives_problems_never_an_exception(content: str | bytes) -> None:
    path = write(content)
    problems = validate_one(path)
    # The validator and the loader agree: no problem means the flow loads, a refused flow has problems.
    try:
        load_flow(path)
    except FlowValidationError as refused:
        assert problems
        check_problems(refused.problems, {str(path)})
    except (OSError, UnicodeDecodeError):
        assert problems
    else:
        # What only the other flows can tell: a flow it names, or a built-in flow of the same version.
        assert {problem.kind for problem in problems} <= {"unknown_flow", "duplicate_flow"}


@settings(BOUNDED, max_examples=25)
@given(content=ANY_CONTENT)
def test_the_cli_lists_each_problem_and_exits_1(content: str | bytes) -> None:
    path = write(content)
    check_cli([path], validate_one(path))


@settings(BOUNDED, max_examples=25)
@given(content=ANY_CONTENT)
def test_the_library_keeps_its_good_flows_whatever_a_clinic_file_holds(content: str | bytes) -> None:
    path = write(content)
    library = FlowLibrary([path.parent], profile_fields=None)
    check_problems(library.problems, {str(path)})
    # The library leaves out what the validator refuses (references and versions aside: the library knows more).
    other_flows = {"unknown_flow", "duplicate_flow"}
    refused = {problem.kind for problem in validate_one(path)} - other_flows
    assert refused <= {problem.kind for problem in library.problems}
    builtin = FlowLibrary.builtin()
    for flow_id in builtin.ids():
        assert flow_id in library
        assert library.get(flow_id).version >= builtin.get(flow_id).version
    if library.problems:
        assert all(definition.source != str(path) for definition in library.list(all_versions=True))


WRONG_AT_THE_TOP = [None, 0, 1.5, True, "text", [], [1, 2], {}, {"nodes": None}, {"nodes": {}}, {"nodes": 3},
                    {"nodes": "abc"}, {"nodes": [None, 1, "x", [], {}]}, {"id": [], "version": {}, "title": 1}]


@pytest.mark.parametrize("document", WRONG_AT_THE_TOP, ids=repr)
def test_wrong_types_at_the_top_are_problems(document: Any) -> None:
    path = write(_dump(document))
    problems = validate_one(path)
    assert problems
    check_cli([path], problems)


def test_a_file_whose_nodes_all_fail_to_parse_lists_the_problems() -> None:
    # The case: no node could be read; this crashed with "zip() argument 2 is longer than argument 1".
    path = write("id: broken\nversion: 1\ntitle: {zh: 坏, en: broken}\nnodes:\n  - 3\n  - {kind: nope}\n  - {id: x}\n")
    problems = validate_one(path)
    assert [(problem.node_id, problem.kind) for problem in problems] == [
        (None, "schema"), ("nodes[1]", "schema"), ("nodes[2]", "schema"), ("nodes[2]", "unknown_kind"),
        ("x", "schema")]
    assert problems[0].reason == "the flow has no usable node"
    check_cli([path], problems)


def test_text_that_cannot_be_printed_is_escaped_on_one_line() -> None:
    name = "bad\nname\u2028.yaml"
    path = write('id: x\nversion: 1\ntitle: {zh: a, en: b}\n"odd\\nkey\\x1f\\u2028": 1\nnodes:\n'
                 '  - {id: "a\\nb", kind: end}\n  - {id: end, kind: end, text: {zh: 好, en: ok}}\n', name)
    problems = validate_files([path])
    assert problems
    for problem in problems:
        assert _is_one_line(str(problem)), str(problem)
    assert any("unknown field 'odd\\nkey\\x1f\\u2028'" in problem.reason for problem in problems)
    check_cli([path], problems)


def test_a_folder_of_every_kind_of_broken_file_is_validated_file_by_file() -> None:
    folder = _WORK / f"folder{next(_names)}"
    folder.mkdir()
    contents: dict[str, str | bytes] = {
        "syntax.yaml": "id: [\n", "bytes.yaml": b"id: \xff\xfe\n", "list.yaml": "- 1\n- 2\n", "empty.yaml": "",
        "nodes.yaml": "id: a\nversion: 1\ntitle: {zh: a, en: a}\nnodes: [1, 2]\n", "deep.yaml": _deep(2000, "lists"),
        "good.yaml": LIBRARY_TEXTS["satisfaction.yaml"].replace("id: satisfaction", "id: my_survey"),
    }
    for name, content in contents.items():
        (folder / name).write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    problems = validate_files([folder])
    files = {str(folder / name) for name in contents}
    check_problems(problems, files)
    assert {problem.file for problem in problems} == files - {str(folder / "good.yaml")}
    check_cli([folder], problems)
