"""The package layout of docs/architecture.md, checked on the source: which package may import which."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# What each linkage package may import of linkage (besides itself). The shared modules
# (_types, _errors, _config) are open to every package; the faces (linkage/__init__.py,
# linkage/modelling.py) may import anything of linkage.
_SHARED = frozenset({"_types", "_errors", "_config"})
ALLOWED: dict[str, frozenset[str]] = {
    "identifiers": frozenset(),
    "splinkjson": frozenset(),
    "store": frozenset({"identifiers"}),
    "softlinks": frozenset({"store"}),
    "visitor": frozenset({"identifiers", "splinkjson", "softlinks", "store"}),
    "customer": frozenset({"identifiers", "splinkjson", "softlinks", "store"}),
    "identity": frozenset({"identifiers", "store", "softlinks", "visitor", "customer"}),
}
# Third-party systems the core never touches: the service's edge and training own them.
_FORBIDDEN_IN_LINKAGE = frozenset({"grpc", "splink", "server", "training", "cli", "google"})


def _imports(path: Path) -> list[tuple[str, int]]:
    """Every import of `path` as an absolute dotted module name, with its line."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = list(path.relative_to(REPO).parts[:-1])  # the package a relative import starts from
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.append((module, node.lineno))
    return found


def _sources(top: str) -> list[Path]:
    return sorted(p for p in (REPO / top).rglob("*.py") if "_proto" not in p.parts)


@pytest.mark.parametrize("path", _sources("linkage"), ids=lambda p: str(p.relative_to(REPO)))
def test_linkage_packages_import_only_what_the_layout_allows(path: Path) -> None:
    parts = path.relative_to(REPO / "linkage").parts
    own = parts[0] if len(parts) > 1 else None
    for module, line in _imports(path):
        top = module.split(".")[0]
        assert top not in _FORBIDDEN_IN_LINKAGE, f"{path.name}:{line} imports {module}"
        if top != "linkage" or own is None:
            continue
        target = module.split(".")[1] if "." in module else ""
        if target in _SHARED or target == own:
            continue
        assert target in ALLOWED[own], f"linkage/{'/'.join(parts)}:{line}: {own} may not import linkage.{target}"


@pytest.mark.parametrize("top", ["server", "training", "cli"])
def test_the_edges_use_the_faces_of_linkage(top: str) -> None:
    """server and cli see `linkage` only; training sees `linkage` and `linkage.modelling`."""
    faces = {"linkage"} | ({"linkage.modelling"} if top == "training" else set())
    for path in _sources(top):
        for module, line in _imports(path):
            if module.split(".")[0] == "linkage":
                assert module in faces, f"{path.relative_to(REPO)}:{line} imports {module}"


def test_training_and_linkage_never_import_the_server() -> None:
    for top in ("linkage", "training"):
        for path in _sources(top):
            for module, line in _imports(path):
                assert module.split(".")[0] not in {"server", "cli"}, (
                    f"{path.relative_to(REPO)}:{line} imports {module}"
                )


def test_no_module_of_the_server_imports_another_that_imports_it_back() -> None:
    graph: dict[str, set[str]] = {}
    for top in ("server", "cli"):
        for path in _sources(top):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
            graph[name] = {m for m, _ in _imports(path) if m.split(".")[0] in {"server", "cli"}}
    for module, targets in graph.items():
        for target in targets:
            assert module not in graph.get(target, set()), f"{module} and {target} import each other"
