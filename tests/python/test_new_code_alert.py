"""New code caught at function level, end to end (issue 15): the shop's
/report/ view, served by gunicorn at commit v1, is stopped and started again
at v2, whose view calls a new helper (a plain restart: the two commits never
serve side by side). Every request is profiled through the middleware. Far
too few requests for the endpoint's fixed-size test: its sequential test
must alert, and name the helper, new code, as the first culprit. (The function
alert for new code, which states its change per request and as a share of the
request, is tested on constructed profiles in tests/cpp/detect/function_test.cc.)"""

from __future__ import annotations

import json
import subprocess

from conftest import cpuledger_exe
from test_profiled_requests import serve_version

REQUESTS = 80  # a side: above the new-function minimum (50), below the endpoint's


def detect(server, *args):
    p = subprocess.run([cpuledger_exe(), "detect", "--server", server.url, *args],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, (p.stdout, p.stderr)
    return p.stdout


def test_a_new_helper_after_a_plain_restart_is_named_first(tmp_path, server):
    serve_version(tmp_path, server, "1", "v1", "auto", requests=REQUESTS)
    serve_version(tmp_path, server, "2", "v2", "auto", requests=REQUESTS)

    body = json.loads(detect(server, "--json"))
    report = [a for a in body["alerts"] if a["endpoint"] == "/report/"]
    assert len(report) == 1, report
    alert = report[0]
    # The endpoint's own test catches it: too few requests for a fixed-size
    # comparison, so the sequential one, judged right after the restart.
    assert alert["kind"] == "rollout" and alert["method"] == "before/after, sequential", alert
    assert alert["base_commit"] == "v1" and alert["target_commit"] == "v2"
    assert alert["effect"]["lo"] > alert["threshold"]
    # Its first culprit is the helper, new code: nothing on the base side.
    top = alert["top_functions"][0]
    assert top["function"].endswith(":_expensive_helper"), alert["top_functions"]
    assert top["before"] == 0 and top["added"] > 0
    assert top["path"][-2].endswith(":report") and top["path"][-1] == top["function"]

    text = detect(server)
    assert "_expensive_helper" in text, text
