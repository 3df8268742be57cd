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
                     "command to the studio window", "Generate to the first x0_pred on screen"):
        assert expected in names
    assert all(row["value"] is None or math.isfinite(row["value"]) for row in rows)
    first_paint = next(row for row in rows if row["name"].startswith("command to a painted window"))
    assert "startupWindow" in first_paint["detail"] and "before torch" in first_paint["detail"]   # the shell
    first_preview = next(row for row in rows if row["name"].startswith("Generate to the first x0_pred on screen"))
    assert first_preview["value"] > 0 and first_preview["goal"] > first_preview["extra"]["model_call_ms"] > 0
