"""`python -m chatflow_dev.events`: local invoke with the sample events, schema check exit codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import psycopg
import pytest

from chatflow_dev import events as tools

ROOT = Path(__file__).resolve().parents[2]
DB = psycopg.Connection[dict[str, Any]]


def test_invoke_runs_a_consumer_with_its_sample_and_is_idempotent(db: DB) -> None:
    sample = json.loads((ROOT / "events" / "samples" / "analytics" / "member_left.json").read_text())
    # The sample's event id is fixed: forget it in case something else of this run invoked it.
    db.execute(
        "DELETE FROM processed_events WHERE consumer = 'analytics' AND event_id = %s",
        (sample["detail"]["event_id"],),
    )
    first = tools.invoke(ROOT, "analytics", "member_left")
    again = tools.invoke(ROOT, "analytics", "member_left")
    assert (first["detailType"], first["duplicate"]) == ("member.left", False)
    assert again["duplicate"] is True


def test_invoke_runs_the_scheduled_sweep_and_websocket_samples(chatflow_env: dict[str, str]) -> None:
    sweep = tools.invoke(ROOT, "outbox_relay", "scheduled")
    assert sweep["skipped"] is True  # test env without an EventBridge endpoint: nothing to send to
    reply = tools.invoke(ROOT, "ws_default", "unknown_action")
    assert reply["statusCode"] == 200
    assert json.loads(reply["body"])["type"] == "error"


def test_invoke_names_the_available_samples_for_a_typo(chatflow_env: dict[str, str]) -> None:
    with pytest.raises(SystemExit, match="member_left"):
        tools.invoke(ROOT, "analytics", "member_lft")


def test_export_check_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "events").mkdir()
    shutil.copytree(ROOT / "events" / "schemas", tmp_path / "events" / "schemas")
    assert tools.main(["--root", str(tmp_path), "export-schemas", "--check"]) == 0
    (tmp_path / "events" / "schemas" / "room.created.v1.json").write_text("{}")
    assert tools.main(["--root", str(tmp_path), "export-schemas", "--check"]) == 1
    assert "room.created.v1.json" in capsys.readouterr().out
    assert tools.main(["--root", str(tmp_path), "export-schemas"]) == 0
    assert tools.main(["--root", str(tmp_path), "export-schemas", "--check"]) == 0
