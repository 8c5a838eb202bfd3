"""The wheel carries the Lua scripts and the admin assets, and an installed copy loads them."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from hatchling.builders.wheel import WheelBuilder

ROOT = Path(__file__).resolve().parent.parent


def test_an_unpacked_wheel_loads_every_script_from_itself(tmp_path: Path) -> None:
    wheel = next(iter(WheelBuilder(str(ROOT)).build(directory=str(tmp_path), versions=["standard"])))
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
        "assert pathlib.Path(gotaskq.__file__).is_relative_to(pathlib.Path(sys.argv[1])), gotaskq.__file__\n"
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
