"""The package's folders are its layers, and imports only go down.

Read from the source (every import, those inside functions too), so a lazy
import cannot hide an upward one. The layers, lowest first, as
docs/architecture.md draws them:

    segment (and the C core)  <  errors, placement  <  worker  <  backends
    <  engine  <  the faces (the package's top: what users import)
    <  observe  <  bench  <  cli

A module may import from its own folder and from any lower layer, never from
a higher one, and no set of modules may import each other in a circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import rock_vec

PACKAGE = Path(rock_vec.__file__).parent

#: The layer of each folder (and of the top-level modules that are layers of their own), lowest first.
LAYERS = {
    "_core": 0, "_version": 0, "segment": 0,
    "errors": 1, "placement": 1,
    "worker": 2,
    "backends": 3,
    "engine": 4,
    "": 5,  # the faces: vector_env, envpool_api, infos, sb3; and the envs users name (synthetic, atari)
    "ray": 5,  # the faces past one machine (RLlib's env runners, one VectorEnv over pools on many nodes)
    "observe": 6,
    "bench": 7,
    "cli": 8,
}


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(["rock_vec", *parts])] = path
    return found


def layer_of(module: str) -> int:
    parts = module.split(".")[1:]
    if not parts:
        return LAYERS[""]
    if parts[0] in LAYERS:
        return LAYERS[parts[0]]
    return LAYERS[""] if len(parts) == 1 else LAYERS[parts[0]]


def imports_of(module: str, path: Path, known: dict) -> set[str]:
    """The rock_vec modules ``module`` imports, anywhere in its source."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("rock_vec"):
                continue
            for alias in node.names:
                named = f"{target}.{alias.name}"
                out.add(named if named in known else target)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("rock_vec"))
    out.discard(module)
    return {m for m in out if m in known or m == "rock_vec._core"}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {m: imports_of(m, p, known) for m, p in known.items()}


def test_every_folder_of_the_package_has_a_layer():
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders <= set(LAYERS), f"folders without a layer here: {sorted(folders - set(LAYERS))}"


def test_imports_only_go_down_or_stay_in_their_folder():
    upward = []
    for module, targets in graph().items():
        folder = module.split(".")[1] if module.count(".") >= 2 else ""
        for target in targets:
            same_folder = folder and target.startswith(f"rock_vec.{folder}.")
            if not same_folder and layer_of(target) > layer_of(module):
                upward.append(f"{module} (layer {layer_of(module)}) imports {target} (layer {layer_of(target)})")
    assert not upward, "upward imports:\n" + "\n".join(sorted(upward))


def circles_in(edges: dict[str, set[str]]) -> list[str]:
    """Every import circle a depth-first walk of ``edges`` meets, as "a -> b -> a".
    The package's top is left out: it only re-exports the faces, lazily."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    found = []

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in sorted(edges.get(m, ())):
            if t == "rock_vec":
                continue
            if state.get(t) == 1:
                found.append(" -> ".join(path[path.index(t):] + [t]))
            elif t not in state:
                visit(t, path + [t])
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m, [m])
    return found


def test_no_modules_import_each_other_in_a_circle():
    circles = circles_in(graph())
    assert not circles, "import circles:\n" + "\n".join(circles)


def test_the_checker_sees_an_upward_import_and_a_circle(tmp_path):
    """The rules above are not vacuous: an engine module importing a face is
    upward, imports are read from the source, and a circle is found."""
    assert layer_of("rock_vec.engine.pool") < layer_of("rock_vec.vector_env")
    assert layer_of("rock_vec.segment.layout") < layer_of("rock_vec.observe.watch")
    fake = tmp_path / "pool.py"
    fake.write_text("from ..vector_env import AsyncVectorEnv\nfrom . import split\n")
    found = imports_of("rock_vec.engine.pool", fake, modules())
    assert found == {"rock_vec.vector_env", "rock_vec.engine.split"}
    circle = {"rock_vec.segment.layout": {"rock_vec.worker.frames"},
              "rock_vec.worker.frames": {"rock_vec.observe.monitor"},
              "rock_vec.observe.monitor": {"rock_vec.segment.layout"}}
    assert circles_in(circle) == ["rock_vec.observe.monitor -> rock_vec.segment.layout -> rock_vec.worker.frames "
                                  "-> rock_vec.observe.monitor"]
