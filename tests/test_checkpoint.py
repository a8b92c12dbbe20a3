"""The checkpoint file after real kills: a kill mid-write leaves a line without its newline."""

from __future__ import annotations

from thinkcost.inference.checkpoint import Checkpoint

SIGNATURE = {"model": "m", "seed": 1}


def record(i: int) -> dict:
    return {"generated": [i] * 3, "score": -0.5 * i}


def kill_mid_write(path) -> None:
    """What SIGKILL during `put` leaves: the last line cut short, no trailing newline."""
    text = path.read_text()
    path.write_text(text[: text.rstrip("\n").rfind("\n") + 1 + 10])


def test_every_finished_record_survives_two_kills_mid_write(tmp_path):
    path = tmp_path / "checkpoint.jsonl"
    first = Checkpoint(path, SIGNATURE)
    first.put("q1", record(1))
    first.put("q2", record(2))
    kill_mid_write(path)
    assert not path.read_text().endswith("\n")

    second = Checkpoint(path, SIGNATURE)  # attempt 2: q1 resumes, q2 is computed again
    assert second.records == {"q1": record(1)}
    second.put("q2", record(2))
    second.put("q3", record(3))
    kill_mid_write(path)  # killed again, inside q3's line

    third = Checkpoint(path, SIGNATURE)  # attempt 3
    assert third.records == {"q1": record(1), "q2": record(2)}
    third.put("q3", record(3))
    assert Checkpoint(path, SIGNATURE).records == {f"q{i}": record(i) for i in (1, 2, 3)}


def test_a_complete_file_is_left_as_it_is(tmp_path):
    path = tmp_path / "checkpoint.jsonl"
    checkpoint = Checkpoint(path, SIGNATURE)
    checkpoint.put("q1", record(1))
    before = path.read_bytes()
    assert Checkpoint(path, SIGNATURE).records == {"q1": record(1)}
    assert path.read_bytes() == before
