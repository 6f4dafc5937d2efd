"""The library's structure, checked statically (docs/architecture.md, "Layout"):

- no import cycle inside ``pipeline/``: every import statement counts, also those inside
  functions and under ``if TYPE_CHECKING:``, read with :mod:`ast` (nothing is imported);
- the naming rule: a module whose name starts with ``_`` is private to its package (only
  modules of that package import it), a name that starts with ``_`` is private to its
  module (no other module imports it);
- ``pipeline/`` never imports Snakemake.

Tests are exempt from the naming rule (they may test private helpers directly).
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "pipeline"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(module: str, path: Path) -> list[tuple[str, str | None, int]]:
    """(imported module, imported name or None, line) of every import statement, absolute."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, None, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1]
                                + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found += [(base, alias.name, node.lineno) for alias in node.names]
    return found


def _targets(base: str, name: str | None) -> str | None:
    """The module of ``pipeline`` an import loads: ``from a import b`` is module ``a.b``
    when that is a module, else module ``a``."""
    if name is not None and f"{base}.{name}" in MODULES:
        return f"{base}.{name}"
    return base if base in MODULES else None


def import_graph() -> dict[str, set[str]]:
    """Module -> the ``pipeline`` modules it imports (anywhere in its source)."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        for base, name, _ in _imports(module, path):
            target = _targets(base, name)
            if target is not None:
                graph[module].add(target)
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module, or a module importing itself
    (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph[node]:
                    cycles.append(sorted(component))
    return cycles


def test_the_cycle_finder_finds_cycles():
    """The finder itself: a two-module cycle, a self-import and a three-module ring are found,
    a diamond is not."""
    graph = {"a": {"b"}, "b": {"a"}, "c": {"c"}, "d": {"e"}, "e": {"f"}, "f": {"d"},
             "g": {"h", "i"}, "h": {"j"}, "i": {"j"}, "j": set()}
    assert sorted(import_cycles(graph)) == [["a", "b"], ["c"], ["d", "e", "f"]]


def test_the_import_graph_sees_imports_inside_functions_and_type_checking():
    """Imports inside functions and under TYPE_CHECKING are edges (here: modules known to use
    both forms)."""
    graph = import_graph()
    assert "pipeline.bids.preprocessed" in graph["pipeline.bids.scan"]  # TYPE_CHECKING
    assert "pipeline.bids.images" in graph["pipeline.bids"]
    assert "pipeline.kinetics.regionfit" in graph["pipeline.kinetics"]  # inside __getattr__


def test_no_import_cycle_in_pipeline():
    cycles = import_cycles(import_graph())
    assert not cycles, "import cycles in pipeline/: " + "; ".join(
        " <-> ".join(c) for c in cycles)


def _private_owner(module: str) -> str | None:
    """The package a private module belongs to (``a.b._c`` -> ``a.b``), or None."""
    parts = module.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            return ".".join(parts[:i])
    return None


def naming_violations() -> list[str]:
    problems = []
    for module, path in MODULES.items():
        for base, name, line in _imports(module, path):
            target = _targets(base, name)
            if target is None:
                continue
            owner = _private_owner(target)
            if owner is not None and module != owner and not module.startswith(owner + "."):
                problems.append(f"{path.relative_to(REPO)}:{line} imports {target}, private "
                                f"to {owner}")
            imported_name = name if target == base else None
            if imported_name and imported_name.startswith("_") \
                    and not imported_name.startswith("__"):
                problems.append(f"{path.relative_to(REPO)}:{line} imports {target}."
                                f"{imported_name}, private to that module")
    return problems


def test_private_modules_and_names_stay_private():
    assert naming_violations() == []


def test_modules_are_named_for_what_they_hold():
    """No catch-all module names (they say nothing of what is inside)."""
    vague = {"base", "common", "utils", "util", "helpers", "misc", "core", "_base", "_common",
             "_utils", "_helpers", "_misc"}
    named = sorted(m for m in MODULES if m.rsplit(".", 1)[-1] in vague)
    assert named == []


#: The longest a pipeline module may be (issue 13): one job per module.
MAX_MODULE_LINES = 400


def test_pipeline_modules_stay_small():
    long = sorted(f"{path.relative_to(REPO)}: {n} lines" for path in MODULES.values()
                  if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES)
    assert long == []


def test_pipeline_never_imports_snakemake():
    found = [f"{path.relative_to(REPO)}:{line}" for module, path in MODULES.items()
             for base, _, line in _imports(module, path) if base.split(".")[0] == "snakemake"]
    assert found == []


#: Folders of a checkout that are not the project's own text (environments, outputs, caches).
_NOT_PROJECT = {".git", ".venv", "venv", "build", "dist", "results", "out", "__pycache__",
                ".snakemake", ".pytest_cache", ".ruff_cache", ".hypothesis", ".petbp"}
_TEXT = {".py", ".md", ".smk", ".yaml", ".yml", ".rst", ".toml", ".txt", ".cfg", ""}


def _project_text_files() -> list[Path]:
    files = []
    for path in REPO.rglob("*"):
        rel = path.relative_to(REPO)
        if any(part in _NOT_PROJECT or part.endswith(".egg-info") for part in rel.parts):
            continue
        if path.is_file() and not path.is_symlink() and path.suffix in _TEXT \
                and (path.suffix or path.name in ("Snakefile", "run")):
            files.append(path)
    return files


def test_nothing_points_outside_the_repository():
    """The architecture is docs/architecture.md: no file refers to a design document or a
    folder outside the checkout (the tests' reads of ../shared/validation excepted)."""
    import re

    outside = re.compile(r"DESIGN\.md|STYLE\.md|/work/|\.\./shared(?!/validation)")
    found = [f"{path.relative_to(REPO)}:{n}" for path in _project_text_files()
             for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace")
                                      .splitlines(), 1)
             if outside.search(line) and path.name != "test_architecture.py"]
    assert found == []
    assert (REPO / "docs" / "architecture.md").is_file()


def test_markdown_links_inside_the_repository_resolve():
    """Every relative link of the Markdown files points at a file or folder that exists."""
    import re

    broken = []
    for path in _project_text_files():
        if path.suffix != ".md":
            continue
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text("utf-8")):
            if not re.match(r"[a-z]+:", target) and not (path.parent / target).exists():
                broken.append(f"{path.relative_to(REPO)}: {target}")
    assert broken == []


# ---- numpydoc Parameters of every public step ------------------------------------------
#: Public functions still without a full Parameters section, in modules that are being
#: rewritten as this is written (within-scan drift: stats.drift, regional, tables; the
#: scanner-space preprocessing: preprocess/, cli/check). Whoever lands those changes
#: documents them and removes them here; the test fails when one listed is documented.
UNDOCUMENTED = {
    "pipeline/cli/check.py::add_parser", "pipeline/cli/check.py::run",
    "pipeline/preprocess/antsio.py::ants_threads", "pipeline/preprocess/antsio.py::to_ants",
    "pipeline/preprocess/antsio.py::from_ants",
    "pipeline/preprocess/antsio.py::matrix_from_ants_transform",
    "pipeline/preprocess/antsio.py::write_ants_matrix",
    "pipeline/preprocess/confounds.py::motion_confounds",
    "pipeline/preprocess/confounds.py::read_motion",
    "pipeline/preprocess/fields.py::coordinate_grid", "pipeline/preprocess/fields.py::write_field",
    "pipeline/preprocess/fields.py::read_field", "pipeline/preprocess/motion.py::frame_blocks",
    "pipeline/preprocess/motion.py::weighted_mean", "pipeline/preprocess/motion.py::head_mask",
    "pipeline/preprocess/motion.py::centre_of_mass",
    "pipeline/preprocess/native_regions.py::iter_frame_masks",
    "pipeline/preprocess/native_steps.py::write_volume_to_mni",
    "pipeline/preprocess/normalize.py::mni_template", "pipeline/preprocess/qc.py::resample_to",
    "pipeline/preprocess/rigid.py::invert", "pipeline/preprocess/rigid.py::lps_to_ras",
    "pipeline/preprocess/rigid.py::rotation_angle", "pipeline/preprocess/steps.py::write_volume",
    "pipeline/preprocess/steps.py::load_t1",
    "pipeline/preprocess/steps.py::read_coregistration",
}

_SECTION_END = ("Returns", "Yields", "Raises", "Warns", "Examples", "Notes", "See Also",
                "References", "Attributes")


def documented_parameters(doc: str | None) -> set[str] | None:
    """Names listed in a numpydoc ``Parameters`` section (None when there is none).

    Examples
    --------
    >>> doc = "Sum.\\n\\nParameters\\n----------\\na, b : float\\n    Terms.\\n**kw\\n    More."
    >>> sorted(documented_parameters(doc))
    ['a', 'b', 'kw']
    >>> documented_parameters("No sections.") is None
    True
    """
    import re

    if not doc:
        return None
    parts = re.split(r"^Parameters\n-{3,}\n", doc, flags=re.M)
    if len(parts) < 2:
        return None
    section = re.split(r"^(?:" + "|".join(_SECTION_END) + r")\n-{3,}\n", parts[1],
                       flags=re.M)[0]
    names: set[str] = set()
    for line in section.splitlines():
        match = re.match(r"^(\*{0,2}\w+(?:\s*,\s*\*{0,2}\w+)*)\s*(?::|$)", line)
        if match:
            names.update(n.strip().lstrip("*") for n in match.group(1).split(","))
    return names


def public_steps() -> dict[str, tuple[Path, ast.FunctionDef]]:
    """``path::name`` -> function, of every public module's ``__all__`` functions and
    ``write_*`` steps (private modules, ``_name`` functions and argument-less ones left
    out)."""
    found = {}
    for module, path in MODULES.items():
        if _private_owner(module) is not None:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        exported: list[str] = []
        for node in tree.body:
            target = node.targets[0] if isinstance(node, ast.Assign) else \
                node.target if isinstance(node, ast.AnnAssign) else None
            if isinstance(target, ast.Name) and target.id == "__all__" and node.value:
                exported = list(ast.literal_eval(node.value))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_") \
                    and (node.name in exported or node.name.startswith("write_")):
                found[f"{path.relative_to(REPO)}::{node.name}"] = (path, node)
    return found


def _missing_parameters(node: ast.FunctionDef) -> list[str] | None:
    args = node.args
    names = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
    names += [a.arg for a in (args.vararg, args.kwarg) if a is not None]
    if not names:
        return []
    listed = documented_parameters(ast.get_docstring(node))
    return None if listed is None else [n for n in names if n not in listed]


def test_public_steps_document_every_parameter():
    """Every public step has a numpydoc Parameters section naming each of its arguments."""
    problems, documented = [], []
    for key, (_, node) in sorted(public_steps().items()):
        missing = _missing_parameters(node)
        if key in UNDOCUMENTED:
            if missing == []:
                documented.append(key)
            continue
        if missing is None:
            problems.append(f"{key}: no Parameters section")
        elif missing:
            problems.append(f"{key}: {', '.join(missing)} not in Parameters")
    assert problems == []
    assert documented == [], "documented now: remove from UNDOCUMENTED"
    assert UNDOCUMENTED <= set(public_steps()), "UNDOCUMENTED names a function that is gone"
