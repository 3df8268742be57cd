"""The benchmark's window sections run and report on tiny settings (no timing is asserted)."""

from __future__ import annotations

import json
import math

from studio.bench.runner import main


def test_quick_window_and_startup_sections(tmp_path):
    path = tmp_path / "bench.json"
    assert main(["--quick", "--sections", "3,6", "--json", str(path)]) == 0
    rows = json.loads(path.read_text())["rows"]
    assert {row["section"] for row in rows} == {3, 6}
    assert not any(row["extra"].get("failed") for row in rows), [row["detail"] for row in rows]
    names = " / ".join(row["name"] for row in rows)
    for expected in ("window run / headless run", "GUI event-loop stall", "scrubbing", "command to a painted window",
                     "command to the studio window", "Generate to the first x0_pred on screen",
                     "4 runs on one timeline", "4 runs compared", "Runs dock"):
        assert expected in names
    assert all(row["value"] is None or math.isfinite(row["value"]) for row in rows)
    first_paint = next(row for row in rows if row["name"].startswith("command to a painted window"))
    assert "startupWindow" in first_paint["detail"] and "before torch" in first_paint["detail"]   # the shell
    first_preview = next(row for row in rows if row["name"].startswith("Generate to the first x0_pred on screen"))
    assert first_preview["value"] > 0 and first_preview["goal"] > first_preview["extra"]["model_call_ms"] > 0
    memory = next(row for row in rows if row["name"].startswith("Runs dock"))
    assert 0 < memory["value"] <= 1.0 and memory["extra"]["frames_bytes"] > 0   # the kept runs fit their budget


def test_model_swaps_reports_memory_per_swap(qapp, tmp_path, monkeypatch):
    """`python -m studio.bench.model_swaps` on small models: every swap measured, the figures written."""
    from studio.bench import model_swaps

    monkeypatch.setattr(model_swaps, "application", lambda folder: qapp)   # the test's app and settings
    out = tmp_path / "swaps.json"
    assert model_swaps.main(["--swaps", "2", "--base-channels", "32", "--folder", str(tmp_path), "--json",
                             str(out)]) == 0
    summary = json.loads(out.read_text())
    assert [swap["swap"] for swap in summary["swaps"]] == [1, 2]
    # (what the figures are depends on the process: here a test session's; the bench's own process is in the docs)
    assert all(swap["peak_mib"] >= swap["after_mib"] > 0 for swap in summary["swaps"])
    assert summary["max_swap_peak_mib"] == max(swap["peak_mib"] for swap in summary["swaps"])
