"""The state machine table agrees with the Lua scripts that make each move."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gotaskq.backends.redis.scripts import NAMES, lua_source
from gotaskq.states import FINISHED, TRANSITIONS, WAITING, JobStatus, can_move

S = JobStatus
LUA_DIR = Path(__file__).resolve().parents[1] / "lua"
ST_WRITE = re.compile(r"'st',\s*'([A-Z]+)'")
SCRIPTS_IN_TABLE = sorted({name for names in TRANSITIONS.values() for name in names})


def allowed_targets(script: str) -> set[JobStatus]:
    return {dst for (_, dst), names in TRANSITIONS.items() if script in names}


def header(text: str) -> str:
    """The leading block of ``--`` comment lines of a script."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("--"):
            break
        lines.append(line)
    return "\n".join(lines)


def test_the_table_names_exactly_the_expected_transitions() -> None:
    assert SCRIPTS_IN_TABLE == sorted(
        ["cancel", "claim", "complete", "fail", "recover_expired", "release", "replay", "run_now"]
    )


@pytest.mark.parametrize("script", SCRIPTS_IN_TABLE)
def test_every_transition_is_a_lua_script(script: str) -> None:
    assert (LUA_DIR / f"{script}.lua").is_file()
    assert script in NAMES, "loaded by gotaskq.backends.redis.scripts"


@pytest.mark.parametrize("script", sorted(NAMES))
def test_every_script_documents_its_contract(script: str) -> None:
    text = lua_source(script)
    head = header(text)
    first = head.splitlines()[0]
    assert re.match(rf"^-- {script}: \S.{{10,}}", first), f"first line must say what {script} does: {first!r}"
    for part in ("KEYS[1]", "ARGV", "Returns"):
        assert part in head, f"{script}.lua header lacks {part}"
    body = text[len(head) :].lstrip()
    assert body.startswith("local rcall = redis.call"), f"{script}.lua body must start with rcall"


@pytest.mark.parametrize("script", sorted(NAMES))
def test_each_script_writes_only_statuses_the_table_allows_it(script: str) -> None:
    body = lua_source(script)
    body = body[len(header(body)) :]  # the header's prose may name states freely
    written = {S(x) for x in ST_WRITE.findall(body)}
    if script == "enqueue":
        assert written == set(), "enqueue creates jobs; the status it sets is computed"
        assert "'PENDING'" in body and "'SCHEDULED'" in body
        return
    assert written <= allowed_targets(script), f"{script} writes {written - allowed_targets(script)}"
    assert written == allowed_targets(script), f"{script} never makes {allowed_targets(script) - written}"


def test_the_regex_sees_literal_status_writes() -> None:
    assert ST_WRITE.findall("rcall('HSET', jk, 'st', 'DONE', 'res', x)") == ["DONE"]
    assert ST_WRITE.findall("rcall('HSET', jk, 'st', st)") == []


@pytest.mark.parametrize(
    ("src", "dst", "by"),
    [
        (S.DONE, S.PENDING, "replay"),
        (S.DONE, S.PENDING, "release"),
        (S.DONE, S.RUNNING, "claim"),
        (S.CANCELLED, S.PENDING, "replay"),
        (S.RUNNING, S.CANCELLED, "cancel"),
        (S.RUNNING, S.DONE, "fail"),
        (S.PENDING, S.RUNNING, "complete"),
        (S.DEAD, S.RUNNING, "claim"),
        (S.SCHEDULED, S.RUNNING, "claim"),
        (S.RUNNING, S.PENDING, "fail"),
    ],
)
def test_can_move_refuses_moves_not_in_the_table(src: JobStatus, dst: JobStatus, by: str) -> None:
    assert not can_move(src, dst, by)


def test_can_move_allows_every_listed_move() -> None:
    for (src, dst), names in TRANSITIONS.items():
        for by in names:
            assert can_move(src, dst, by)
        assert not can_move(src, dst, "someone_else")


def test_finished_states_have_no_way_out() -> None:
    for (src, _), _names in TRANSITIONS.items():
        assert src not in FINISHED
    assert WAITING == {S.PENDING, S.SCHEDULED}
    assert all(src is not dst for src, dst in TRANSITIONS)


def test_every_status_is_reachable() -> None:
    reached = {S.PENDING, S.SCHEDULED}  # where enqueue puts a job
    changed = True
    while changed:
        changed = False
        for src, dst in TRANSITIONS:
            if src in reached and dst not in reached:
                reached.add(dst)
                changed = True
    assert reached == set(S)
