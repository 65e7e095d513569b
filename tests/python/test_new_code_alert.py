"""New code caught at function level, end to end (issue 15): the shop's
/report/ view, served by gunicorn at commit v1, is stopped and started again
at v2, whose view calls a new helper (a plain restart: the two commits never
serve side by side). Every request is profiled through the middleware. Far
too few requests for the endpoint-level test; `cpuledger detect` must still
name the helper first, in a function alert that states its change per request
and as a share of the request, not as a change of the function itself."""

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
    assert report, body
    first = report[0]
    named = first["function"] or first["top_functions"][0]["function"]
    assert named.endswith(":_expensive_helper"), report
    assert first["kind"] == "function-rollout", first
    assert first["base_commit"] == "v1" and first["target_commit"] == "v2"
    change = first["function_change"]
    assert change["new"] is True and first["mean_before"] == 0
    assert change["added_per_request"] > 0
    # The helper's share of the request is the effect, held to a threshold in the same terms.
    assert first["effect"]["estimate"] == change["share_of_request"]
    assert first["effect"]["lo"] > first["threshold"]
    assert 0 < change["share_of_request"] < 10

    text = detect(server)
    block = text[text.index("_expensive_helper"):]
    assert " per request, +" in block and "% of the request" in block, text
    assert "new: never ran on the base side" in block, text
