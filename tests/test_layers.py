"""The architecture as a test: imports point down the layers, never up or sideways.

cli                      ← nothing imports it
studio                   ← the web app: may use everything below
comparison  training     ← may use everything below
generation  evaluation  catalog  longform
checkpoint
model_checks  calibration
nn  runtime  allocator   ← import nothing of the package
midi_data                ← knows nothing of models (music_transformer) or the CLI
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Layer of each part of music_transformer (by its first name below the package), lowest first.
RANK = {
    "nn": 0,
    "runtime": 0,
    "allocator": 0,
    "model_checks": 1,
    "calibration": 1,
    "checkpoint": 2,
    "catalog": 3,
    "generation": 3,
    "evaluation": 3,
    # the long-form judge: beside generation, so the sampler can never import it (nor it them)
    "longform": 3,
    "training": 4,
    "comparison": 4,
    "studio": 5,
}


def _part(module: str) -> str:
    """music_transformer.generation.sampler → generation; music_transformer → ''."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports(path: Path, root: Path = ROOT) -> list[str]:
    """Absolute names of the modules `path` imports (relative imports resolved)."""
    here = list(path.relative_to(root).parts[:-1])  # the package the file is in
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)]
                found.append(".".join(base + ([node.module] if node.module else [])))
            else:
                found.append(node.module or "")
    return found


def upward_imports(path: Path, root: Path = ROOT) -> list[str]:
    """What a music_transformer module imports against the layering, as readable lines."""
    me = ".".join(path.relative_to(root).with_suffix("").parts)
    mine, bad = _part(me), []
    for name in _imports(path, root):
        if name.startswith("cli"):
            bad.append(f"{me} imports {name}")
        if not name.startswith("music_transformer.") or mine == "":
            continue
        theirs = _part(name)
        if theirs != mine and (theirs not in RANK or RANK[theirs] >= RANK.get(mine, -1)):
            bad.append(f"{me} ({mine}) imports {name} ({theirs}): not below it")
    return bad


def _files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _id(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", _files("music_transformer"), ids=_id)
def test_music_transformer_imports_point_down(path: Path) -> None:
    assert upward_imports(path) == []


@pytest.mark.parametrize("path", _files("midi_data"), ids=_id)
def test_midi_data_knows_no_models(path: Path) -> None:
    for name in _imports(path):
        assert not name.startswith(("music_transformer", "cli")), f"{path} imports {name}"


def test_the_checker_catches_upward_and_sideways_imports(tmp_path: Path) -> None:
    nn = tmp_path / "music_transformer" / "nn"
    nn.mkdir(parents=True)
    (nn / "bad.py").write_text(
        "from ..generation.sampler import generate\nfrom .cache import KVCache\n"
    )
    assert upward_imports(nn / "bad.py", tmp_path) == [
        "music_transformer.nn.bad (nn) imports music_transformer.generation.sampler "
        "(generation): not below it"
    ]
    gen = tmp_path / "music_transformer" / "generation"
    gen.mkdir()
    (gen / "side.py").write_text("from music_transformer.evaluation import nll\n")
    assert len(upward_imports(gen / "side.py", tmp_path)) == 1  # same layer, other part
