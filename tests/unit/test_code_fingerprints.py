"""The code a memo depends on: the modules its work imports, at any depth, and no others."""

from flows.fingerprints import _PROJECT, import_closure, modules_hash


def _package(root, files):
    (root / "transforms").mkdir()
    (root / "transforms" / "__init__.py").write_text("")
    for name, text in files.items():
        (root / "transforms" / f"{name}.py").write_text(text)


def test_the_closure_follows_imports_at_any_depth_and_only_them(tmp_path):
    _package(tmp_path, {
        "merge": "from transforms.keys import record_key\n",
        "keys": "def f():\n    from transforms import identifiers\n",
        "identifiers": "import re\n",
        "site": "from transforms.merge import x\n",
    })
    assert import_closure(tmp_path, "transforms.merge") == [
        "transforms.identifiers", "transforms.keys", "transforms.merge"]


def test_a_change_outside_the_closure_keeps_the_hash(tmp_path):
    _package(tmp_path, {"merge": "from transforms.keys import k\n", "keys": "k = 1\n",
                        "site": "s = 1\n"})
    before = modules_hash(tmp_path, "transforms.merge")
    (tmp_path / "transforms" / "site.py").write_text("s = 2\n")
    assert modules_hash(tmp_path, "transforms.merge") == before
    (tmp_path / "transforms" / "keys.py").write_text("k = 2\n")  # imported by merge
    assert modules_hash(tmp_path, "transforms.merge") != before


def test_the_pipelines_memos_cover_the_modules_they_run():
    merge = import_closure(_PROJECT, "transforms.merge")
    assert {"transforms.components", "transforms.keys", "transforms.fields"} <= set(merge)
    assert "transforms.site" not in merge and "transforms.matching" not in merge
    assert "transforms.readers" in import_closure(_PROJECT, "transforms.apis")
