"""The wheel: it carries the Lua scripts, the web assets and the license, an installed copy loads
them, its metadata is complete, and a library install pulls no server-only extras."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from email.message import Message
from email.parser import Parser
from importlib import metadata
from pathlib import Path

import pytest
from hatchling.builders.wheel import WheelBuilder
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# uvicorn[standard]'s extras gotaskq does not use: --reload's watcher, WebSockets, .env and YAML
# config loading. A library install must not bring them.
UNWANTED = {"watchfiles", "websockets", "python-dotenv", "pyyaml"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("wheel")
    yield Path(next(iter(WheelBuilder(str(ROOT)).build(directory=str(out), versions=["standard"]))))


def _metadata(wheel: Path) -> Message:
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        return Parser().parsestr(zf.read(name).decode())


def test_an_unpacked_wheel_loads_every_script_from_itself(wheel: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        zf.extractall(tmp_path / "site")
    lua = sorted(p.name for p in (ROOT / "lua").glob("*.lua"))
    assert {f"gotaskq/lua/{n}" for n in lua} <= names
    assert "gotaskq/py.typed" in names
    # A fresh interpreter that sees only the unpacked wheel (plus the dependencies) finds them.
    code = (
        "import gotaskq, pathlib, sys\n"
        "from gotaskq.backends.redis.scripts import NAMES, lua_source\n"
        "from gotaskq.api import admin, docs_page\n"
        "assert pathlib.Path(gotaskq.__file__).is_relative_to(pathlib.Path(sys.argv[1])), gotaskq.__file__\n"
        "assert all(admin.asset(n) for n in admin.ASSETS) and all(docs_page.asset(n) for n in docs_page.ASSETS)\n"
        "print(sum(len(lua_source(n)) for n in NAMES))\n"
    )
    out = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            f"import sys; sys.path.insert(0, {str(tmp_path / 'site')!r}); exec({code!r})",
            str(tmp_path / "site"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == sum(len((ROOT / "lua" / n).read_text()) for n in lua)


@pytest.mark.parametrize("folder", ["admin_static", "docs_static"])
def test_the_wheel_ships_every_web_asset(wheel: Path, folder: str) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    shipped = {p.name for p in (ROOT / "gotaskq" / folder).iterdir() if p.is_file()}
    assert shipped
    assert {f"gotaskq/{folder}/{n}" for n in shipped} <= names


def test_license_file_matches_the_declared_license(wheel: Path) -> None:
    assert PYPROJECT["project"]["license"] == "MIT"
    assert PYPROJECT["project"]["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n")
    assert "Permission is hereby granted, free of charge" in text
    meta = _metadata(wheel)
    assert meta["License-Expression"] == "MIT"
    assert meta.get_all("License-File") == ["LICENSE"]
    assert not [c for c in meta.get_all("Classifier") or () if c.startswith("License ::")], "PEP 639: not both"
    with zipfile.ZipFile(wheel) as zf:
        licenses = [n for n in zf.namelist() if n.endswith(".dist-info/licenses/LICENSE")]
        assert licenses and zf.read(licenses[0]).decode() == text


def test_metadata_has_authors_urls_and_classifiers(wheel: Path) -> None:
    meta = _metadata(wheel)
    assert meta["Author"] or meta["Author-email"]
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL") or ())
    assert {"Homepage", "Repository", "Issues"} <= set(urls)
    assert all(u.startswith("https://") for u in urls.values())
    classifiers = meta.get_all("Classifier") or []
    assert "Typing :: Typed" in classifiers
    assert "Programming Language :: Python :: 3 :: Only" in classifiers
    python = re.fullmatch(r">=3\.(\d+)", meta["Requires-Python"])
    assert python and f"Programming Language :: Python :: 3.{python[1]}" in classifiers


def _runtime_requirements(requires: list[str] | None) -> list[Requirement]:
    """Requirements that apply to a plain install on this platform (no extras asked for)."""
    reqs = [Requirement(r) for r in requires or ()]
    return [r for r in reqs if r.marker is None or r.marker.evaluate({"extra": ""})]


def test_the_declared_dependencies_name_no_server_extras() -> None:
    for raw in PYPROJECT["project"]["dependencies"]:
        req = Requirement(raw)
        assert req.name.lower() not in UNWANTED, raw
        if req.name == "uvicorn":
            assert not req.extras, f"{raw}: uvicorn[standard] pulls watchfiles; name what we use instead"
    names = {Requirement(r).name for r in PYPROJECT["project"]["dependencies"]}
    # uvicorn's "auto" loop and HTTP parser pick these up: the speed gotaskq serve is measured with.
    assert {"uvicorn", "uvloop", "httptools"} <= names


def test_a_library_install_pulls_no_watchfiles() -> None:
    """The whole dependency closure, from the installed distributions' own metadata."""
    seen: dict[str, Requirement | None] = {"gotaskq": None}
    todo = ["gotaskq"]
    while todo:
        name = todo.pop()
        try:
            requires = metadata.requires(name)
        except metadata.PackageNotFoundError:
            pytest.fail(f"{name} (needed by the closure) is not installed")
        for req in _runtime_requirements(requires):
            key = req.name.lower().replace("_", "-")
            for extra in req.extras:  # redis[hiredis]: the extra's own requirements come along
                extra_reqs = [Requirement(r) for r in metadata.requires(req.name) or ()]
                for er in extra_reqs:
                    if er.marker is not None and er.marker.evaluate({"extra": extra}):
                        ekey = er.name.lower().replace("_", "-")
                        if ekey not in seen:
                            seen[ekey] = er
                            todo.append(ekey)
            if key not in seen:
                seen[key] = req
                todo.append(key)
    assert "uvicorn" in seen and "starlette" in seen
    assert not UNWANTED & set(seen), sorted(UNWANTED & set(seen))


def test_scripts_serve_installs_only_when_pyproject_changes(tmp_path: Path) -> None:
    """scripts/serve with a stand-in venv whose pip and gotaskq only log that they ran."""
    (tmp_path / "scripts").mkdir()
    serve = tmp_path / "scripts" / "serve"
    serve.write_text((ROOT / "scripts" / "serve").read_text())
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    log = tmp_path / "calls.log"
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    fakes = {
        "python": f'[ "$1 $2" = "-m pip" ] && {{ echo "pip $*" >>"{log}"; exit 0; }}\nexec {sys.executable} "$@"\n',
        "gotaskq": f'echo "gotaskq $*" >>"{log}"\n',
    }
    for name, body in fakes.items():
        (bin_dir / name).write_text("#!/bin/sh\n" + body)
        (bin_dir / name).chmod(0o755)

    def run() -> list[str]:
        log.write_text("")
        subprocess.run(["bash", str(serve), "--port", "1"], check=True, timeout=60, cwd=tmp_path)
        return [line.split(" -q")[0] for line in log.read_text().splitlines()]

    install = ["pip -m pip install", "pip -m pip install", "gotaskq serve --port 1"]
    assert run() == install  # no stamp yet: pip upgrade, then the editable install
    assert run() == ["gotaskq serve --port 1"]  # nothing changed: straight to serve
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\ndependencies = ["y"]\n')
    assert run() == install
    assert run() == ["gotaskq serve --port 1"]
