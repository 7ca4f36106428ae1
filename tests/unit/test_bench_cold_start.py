"""Smoke test of the cold-start bench machinery (bench/cold_start.py): it is not a timed test.

One function, one repetition, no warm-up, against this machine's Postgres and Redis (the bench
creates and removes its own database and key prefix). Asserts that every number and the import
report are produced, and that a first invocation answering wrongly is refused rather than timed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench import cold_start as bench

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench" / "cold_start.py"


def test_bench_measures_one_function_against_the_baseline(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--only", "ws_ping", "--repeat", "1", "--no-warmup", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert set(report["targets"]) == {"baseline", "ws_ping"}
    baseline, ping = report["targets"]["baseline"], report["targets"]["ws_ping"]
    for entry in (baseline, ping):
        assert len(entry["runs"]) == 1
        assert entry["in_process_median_s"] > 0
        assert entry["wall_median_s"] >= entry["in_process_median_s"]
        assert entry["peak_rss_mb_median"] > 0
    # The baseline really imported what it stands for; ws_ping (Redis only) did not.
    assert {"boto3", "botocore", "psycopg", "redis", "jwt"} <= set(baseline["heavy"])
    assert "redis" in ping["heavy"]
    assert ping["aim"] == 0.5
    assert ping["verdict"] in (
        "meets",
        "MISSES",
        "meets on wall time, not on CPU",
        "MISSES on wall time, meets on CPU",
    )
    assert ping["ratio"] == pytest.approx(ping["in_process_median_s"] / baseline["in_process_median_s"])
    assert "| ws_ping |" in proc.stdout


def test_unjustified_imports_are_flagged_from_catalog_needs() -> None:
    from infra.catalog import function

    ws_default, fanout, analytics = function("ws_default"), function("fanout"), function("analytics")
    assert bench.unjustified(ws_default, ["boto3", "redis", "local_stack"], False) == [
        "boto3",
        "redis",
        "local_stack",
    ]
    assert bench.unjustified(fanout, ["botocore", "redis"], False) == []
    # Clients are built with botocore: boto3 on a request path is a regression.
    assert bench.unjustified(fanout, ["boto3", "botocore"], False) == ["boto3"]
    assert bench.unjustified(function("migrate"), ["boto3", "psycopg"], False) == []
    # The X-Ray SDK is never expected: chatflow.observability sends the subsegments itself.
    assert bench.unjustified(analytics, ["psycopg", "aws_xray_sdk"], True) == ["aws_xray_sdk"]
    assert bench.unjustified(analytics, ["psycopg", "aws_xray_sdk"], False) == ["aws_xray_sdk"]


def test_aims_follow_the_catalog() -> None:
    from infra.catalog import function

    assert bench.aim_of(function("authorizer"))[0] == 0.25
    assert bench.aim_of(function("ws_default"))[0] == 0.5
    assert bench.aim_of(function("ws_ping"))[0] == 0.5
    assert bench.aim_of(function("ws_messages"))[0] == 0.85
    assert bench.aim_of(function("analytics"))[0] == 0.85


def _ws_default_child() -> dict[str, object]:
    """A child spec's handler part: ws_default's first invocation with a frame that is not JSON."""
    return {
        "module_path": str(ROOT / "functions" / "ws_default" / "handler.py"),
        "handler_attr": "handler",
        "code_dir": str(ROOT / "functions" / "ws_default"),
        "function_name": "chatflow-ws_default",
        "memory_mb": 256,
        "request_id": "r-1",
        "event": {"requestContext": {"routeKey": "$default", "connectionId": "c1="}, "body": "not json"},
    }


def test_a_wrong_first_answer_is_an_error_not_a_timing(tmp_path: Path) -> None:
    spec = {
        "target": "ws_default",
        "watch": ["redis"],
        "result_path": str(tmp_path / "r.json"),
        **_ws_default_child(),
        "expect": {"equals": {"statusCode": 200}, "body_contains": "this text is not in the reply"},
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "_cold_child.py"), str(tmp_path / "spec.json")],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1
    result = json.loads((tmp_path / "r.json").read_text())
    assert "lacks" in result["error"]
    assert result["total_s"] > 0


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_instruction_counts_come_from_callgrind_and_exclude_the_interpreter(tmp_path: Path) -> None:
    """``--instructions``: a child under callgrind exits without teardown and its count is read
    from callgrind's summary; a handler's import + invocation counts more than the null child."""

    def count(target: str, extra: dict[str, object]) -> int:
        result_path = str(tmp_path / f"{target}.json")
        spec: dict[str, object] = {"target": target, "watch": [], "result_path": result_path}
        spec.update(extra, exit_at_once=True)
        (tmp_path / f"{target}.spec.json").write_text(json.dumps(spec))
        log = tmp_path / f"{target}.log"
        with log.open("wb") as out:
            spec_path = tmp_path / f"{target}.spec.json"
            child = [sys.executable, str(ROOT / "bench" / "_cold_child.py"), str(spec_path)]
            proc = subprocess.run(
                ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp_path / target}.cg", *child],
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=240,
                check=False,
            )
        assert proc.returncode == 0, log.read_text()[-2000:]
        assert json.loads((tmp_path / f"{target}.json").read_text())["error"] is None
        return bench._collected(log)

    null = count("null", {})
    handler = count("ws_default", {**_ws_default_child(), "expect": {"equals": {"statusCode": 200}}})
    assert null > 1_000_000
    assert handler > null * 1.05
    with pytest.raises(bench.BenchError):
        bench._collected(tmp_path / "null.json")  # no callgrind summary in it
