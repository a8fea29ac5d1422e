"""Imports a reader can follow: export/ and deploy/ are installed under other names (so3k.export,
so3k.lammps), so their code reaches the library by absolute imports only; code that runs a model
does not depend on the training package."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imports(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            yield node.level, node.module or ""
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield 0, alias.name


@pytest.mark.parametrize("folder", ["export", "deploy"])
def test_no_relative_import_leaves_its_folder(folder):
    climbing = [(str(p.relative_to(ROOT)), module) for p in (ROOT / folder).rglob("*.py") for level, module in imports(p) if level > 1]
    assert not climbing


@pytest.mark.parametrize("name", ["so3k/calculators.py", "so3k/forces.py", "so3k/model.py", "so3k/checkpoint.py",
                                  "export/__init__.py", "export/openmm.py", "export/lammps.py", "export/metadata.py"])
def test_inference_code_does_not_import_training(name):
    path = ROOT / name
    package = "so3k" if name.startswith("so3k/") else "so3k.export"
    for level, module in imports(path):
        absolute = module if level == 0 else ".".join(package.split(".")[: len(package.split(".")) - level + 1] + [module])
        assert not absolute.startswith("so3k.train"), (name, module)
