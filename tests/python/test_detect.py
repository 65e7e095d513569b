"""Regression detection through the real server: `cpuledger serve` with a
webhook receiver on loopback, a simulated day with a known rollout
regression and a known flag regression, then `cpuledger detect`,
`cpuledger alerts` and the webhook's deliveries. Also `cpuledger changepoints`
on series files.

The simulated fleet's traffic follows UTC hours, so every simulated day here
ends at a pinned time of day (the latest such hour before the test runs: the
data stays near the wall clock, within the server's retention) and the
detectors run as of that time: the results do not depend on when CI runs."""

import datetime
import json
import re
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import ServerProcess, cpuledger_exe

TOKEN = "detect-s3cret"
HOOK_TOKEN = "hook-s3cret"


class Hook:
    """A webhook receiver on loopback that keeps what it was sent."""

    def __init__(self):
        self.bodies = []
        self.auth = []
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                received.bodies.append(json.loads(self.rfile.read(n)))
                received.auth.append(self.headers.get("Authorization"))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/hook"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def close(self):
        self.http.shutdown()


def run(*args, check=True):
    p = subprocess.run([cpuledger_exe(), *args], capture_output=True, text=True, timeout=300)
    if check:
        assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    return p


def latest_utc(hour: int) -> int:
    """The latest HH:00 UTC at or before now, in unix seconds."""
    now = datetime.datetime.now(datetime.timezone.utc)
    at = now.replace(hour=hour, minute=0, second=0, microsecond=0)
    if at > now:
        at -= datetime.timedelta(days=1)
    return int(at.timestamp())


def simulate_default_day(server, end: int, token=None):
    """The default fleet's day (rollout +20% on /checkout/ 14 h in, flag
    new_search +35% on /search/), half of the requests sampled, a fifth of
    those profiled, ending at `end`."""
    auth = ["--token", token] if token else []
    run("simulate", "--server", server.url, *auth, "--hours", "24", "--seed", "7",
        "--sample-rate", "0.5", "--profile-rate", "0.2", "--end", str(end))


EXPECTED = [
    ("flag", "shop-web", "/search/", "flag new_search=on vs off"),
    ("rollout", "shop-web", "/checkout/", "commit b7e41d0 vs 9f3c2a1"),
]
CULPRITS = {"flag": "shop/web/logic.py:160:search_load", "rollout": "shop/web/logic.py:210:checkout_render"}
END = latest_utc(12)


@pytest.fixture(scope="module")
def detected(tmp_path_factory):
    """A server with a simulated day (default fleet, profiles on) and one
    `cpuledger detect --json` run over it."""
    tmp = tmp_path_factory.mktemp("detect")
    hook = Hook()
    config = tmp / "cpuledger.toml"
    config.write_text(
        f'webhooks = ["{hook.url}"]\nwebhook_token = "{HOOK_TOKEN}"\ndetect_every = "off"\n'
    )
    server = ServerProcess(tmp / "data", token=TOKEN, extra=["--config", str(config)]).start()
    try:
        simulate_default_day(server, END, token=TOKEN)
        report = json.loads(run("detect", "--server", server.url, "--token", TOKEN, "--at", str(END), "--json").stdout)
        yield server, hook, report
    finally:
        server.stop()
        hook.close()


def test_detect_finds_exactly_the_injected_regressions(detected):
    _, _, report = detected
    alerts = report["alerts"]
    subjects = sorted((a["kind"], a["service"], a["endpoint"], a["cause"]) for a in alerts)
    # The default fleet: shop-web's rollout 9f3c2a1 -> b7e41d0 makes /checkout/
    # 20% costlier; the flag new_search=on makes /search/ 35% costlier.
    assert subjects == EXPECTED, json.dumps(alerts, indent=1)[:4000]
    for a in alerts:
        e = a["effect"]
        assert e["lo"] > a["threshold"] and e["lo"] <= e["estimate"] <= e["hi"]
        assert a["samples_before"] >= 200 and a["samples_after"] >= 200
        assert a["top_functions"][0]["function"] == CULPRITS[a["kind"]], a
    rollout = next(a for a in alerts if a["kind"] == "rollout")
    assert 0.15 < rollout["effect"]["estimate"] < 0.25
    flag = next(a for a in alerts if a["kind"] == "flag")
    assert 0.28 < flag["effect"]["estimate"] < 0.42
    assert report["opened"] == 2
    assert report["tests"] > 10


def wait_for(predicate, seconds=20):
    deadline = time.time() + seconds
    while not predicate() and time.time() < deadline:
        time.sleep(0.05)
    return predicate()


def test_webhook_received_each_new_alert_once(detected):
    _, hook, report = detected
    # Deliveries are off the detector's path, on the server's sender thread.
    assert wait_for(lambda: len(hook.bodies) >= len(report["alerts"]))
    assert sorted(b["key"] for b in hook.bodies) == sorted(a["key"] for a in report["alerts"])
    assert set(hook.auth) == {f"Bearer {HOOK_TOKEN}"}


def test_alerts_are_listed_and_not_reopened(detected):
    server, hook, _ = detected
    again = json.loads(run("detect", "--server", server.url, "--token", TOKEN, "--at", str(END), "--json").stdout)
    assert again["opened"] == 0
    # The sinks count an alert before /v1/detect answers, so a re-page would
    # show here already; once the queue is empty the webhook has all there is.
    assert metric(server, "cpuledger_alerts_total") == 2
    assert wait_for(lambda: metric(server, "cpuledger_webhook_pending") == 0)
    listed = json.loads(run("alerts", "--server", server.url, "--token", TOKEN, "--json").stdout)
    assert len(listed["alerts"]) == 2
    assert {a["state"] for a in listed["alerts"]} == {"open"}
    text = run("alerts", "--server", server.url, "--token", TOKEN).stdout
    assert "commit b7e41d0 vs 9f3c2a1" in text and "top functions" in text
    assert len(hook.bodies) == 2


def test_detect_text_says_what_it_skipped_and_why(detected):
    server, _, _ = detected
    p = run("detect", "--server", server.url, "--token", TOKEN, "--since", "30m", "--at", str(END))
    assert "comparisons tested" in p.stdout
    # Half an hour of traffic is too little for any rollout comparison.
    assert "skipped:" in p.stdout and "too few" in p.stdout


def test_detect_requires_the_token(detected):
    server, _, _ = detected
    status, _ = server.http(token=None).request("POST", "/v1/detect")
    assert status == 401
    p = run("detect", "--server", server.url, "--token", "wrong", check=False)
    assert p.returncode == 1


def test_changepoints_command_on_a_csv_series(tmp_path):
    rows = ["day,cpu"]
    for i in range(60):
        level = 100.0 if i < 35 else 112.0
        value = "" if i in (10, 41) else f"{level + (i * 7919 % 13 - 6) * 0.4:.2f}"
        rows.append(f"2026-01-{i:02d},{value}")
    rows[20 + 1] = "2026-01-20,400"  # one outlier
    series = tmp_path / "series.csv"
    series.write_text("\n".join(rows) + "\n")
    out = json.loads(run("changepoints", "--json", str(series)).stdout)
    assert [c["index"] for c in out["changes"]] == [35], out
    change = out["changes"][0]
    assert change["time"] == "2026-01-35"
    assert 10 < change["size"] < 14
    assert out["missing"] == 2

    plain = tmp_path / "flat.txt"
    plain.write_text("\n".join(str(5 + (i * 31 % 7) * 0.1) for i in range(40)) + "\n")
    out = json.loads(run("changepoints", "--json", str(plain)).stdout)
    assert out["changes"] == []

    bad = tmp_path / "bad.txt"
    bad.write_text("1\n2\nthree\n")
    p = run("changepoints", str(bad), check=False)
    assert p.returncode != 0 and "line 3: 'three' is not a number" in p.stderr, p.stderr


def metric(server, sample: str) -> int:
    """The value of one sample (name and labels, as exposed) on /metrics."""
    metrics = server.http().request("GET", "/metrics")[1].decode()
    match = re.search("^" + re.escape(sample) + r" (\d+)$", metrics, re.M)
    assert match, metrics
    return int(match.group(1))


def detector_runs(server) -> int:
    return metric(server, 'cpuledger_detector_runs_total{result="ok"}')


def test_the_server_runs_the_detectors_on_its_schedule(tmp_path):
    # A day of data first (a backfill: the schedule must not judge windows
    # whose data is still arriving), then a server with the schedule on it.
    # The server runs at the wall clock: the day ends at the latest 18:00 UTC
    # (up to 24 h ago), and the schedule looks back 48 h.
    loader = ServerProcess(tmp_path / "data", extra=["--detect-every", "off"]).start()
    try:
        simulate_default_day(loader, latest_utc(18))
    finally:
        loader.stop()
    hook = Hook()
    config = tmp_path / "cpuledger.toml"
    config.write_text(f'webhooks = ["{hook.url}"]\ndetect_every = "1s"\ndetect_window = "48h"\n')
    server = ServerProcess(tmp_path / "data", extra=["--config", str(config)]).start()
    try:
        # Nobody calls /v1/detect: the schedule finds both regressions and pages once each.
        assert wait_for(lambda: len(hook.bodies) >= 2, seconds=60), hook.bodies
        # Two more scheduled runs must not page again: a run hands its new
        # alerts to the sinks (counted) before it counts itself as run.
        runs = detector_runs(server)
        assert wait_for(lambda: detector_runs(server) >= runs + 2, seconds=60)
        assert metric(server, "cpuledger_alerts_total") == 2
        assert wait_for(lambda: metric(server, "cpuledger_webhook_pending") == 0)
        assert sorted(b["kind"] for b in hook.bodies) == ["flag", "rollout"], [
            (b["cause"], b["endpoint"], b["effect"]) for b in hook.bodies
        ]
        assert metric(server, 'cpuledger_webhook_deliveries_total{result="delivered"}') == 2
    finally:
        server.stop()
        hook.close()
    # One log line per change: "cpuledger alert #N opened by detector: ...".
    assert len(re.findall(r"cpuledger alert #\d+ opened by detector: ", server.log.read_text())) == 2


@pytest.mark.parametrize("hour", [0, 6, 12, 18])
def test_the_same_alerts_at_any_time_of_day(tmp_path, hour):
    # The default fleet's rollout lands 10 h before the day's end: at 14:00,
    # 20:00, 02:00 (near the daily trough, a quarter of the peak's traffic)
    # and 08:00 UTC. A quiet hour must widen the before/after windows, not
    # skip the rollout or alert on another endpoint.
    end = latest_utc(hour)
    server = ServerProcess(tmp_path / "data", extra=["--detect-every", "off"]).start()
    try:
        simulate_default_day(server, end)
        report = json.loads(run("detect", "--server", server.url, "--at", str(end), "--json").stdout)
    finally:
        server.stop()
    alerts = report["alerts"]
    assert sorted((a["kind"], a["service"], a["endpoint"], a["cause"]) for a in alerts) == EXPECTED, [
        (a["kind"], a["endpoint"], a.get("function"), a["effect"]) for a in alerts
    ]
    for a in alerts:
        assert a["top_functions"][0]["function"] == CULPRITS[a["kind"]], a
    # The injected +20%, within what an hour or a few of samples can tell
    # (a 90% interval leaves the truth out one time in ten by design).
    rollout = next(a for a in alerts if a["kind"] == "rollout")
    assert 0.15 < rollout["effect"]["estimate"] < 0.25, rollout["effect"]


def test_alerts_acknowledged_and_resolved_from_the_cli(detected):
    """`cpuledger alerts --ack ID` / `--resolve ID`: each prints the new state,
    is kept as an event, and goes to the webhook once; a second resolve is
    refused (409) and changes nothing."""
    server, hook, _ = detected
    listed = json.loads(run("alerts", "--server", server.url, "--token", TOKEN, "--json").stdout)
    rollout = next(a for a in listed["alerts"] if a["kind"] == "rollout")
    alert_id = str(rollout["id"])
    sent_before = len(hook.bodies)
    ack = run("alerts", "--server", server.url, "--token", TOKEN, "--ack", alert_id, "--by", "ana",
              "--note", "on it")
    assert f"alert #{alert_id} is now acknowledged" in ack.stdout, ack.stdout
    done = run("alerts", "--server", server.url, "--token", TOKEN, "--resolve", alert_id, "--note", "reverted")
    assert f"alert #{alert_id} is now resolved" in done.stdout, done.stdout
    again = run("alerts", "--server", server.url, "--token", TOKEN, "--resolve", alert_id, check=False)
    assert again.returncode == 1 and "HTTP 409" in again.stderr, again.stderr
    text = run("alerts", "--server", server.url, "--token", TOKEN, "--state", "resolved").stdout
    assert f"alert #{alert_id}, resolved" in text, text
    assert wait_for(lambda: len(hook.bodies) >= sent_before + 2)
    changes = [(b["id"], b["change"], b["by"]) for b in hook.bodies[sent_before:]]
    assert changes == [(int(alert_id), "acknowledged", "ana"), (int(alert_id), "resolved", "api")]
