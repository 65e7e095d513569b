"""A hostile or careless client against a real `cpuledger serve` on loopback:
each bad request gets a clear 4xx at once, nothing of it is stored, and the
server keeps serving. The token stays off the command line."""

from __future__ import annotations

import json
import os
import socket

from conftest import ServerProcess
from test_server import make_records


def raw_request(port: int, head: bytes, body: bytes = b"", timeout: float = 5.0) -> tuple[int, bytes]:
    """Sends bytes as they are (no client library fixes them up) and reads the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head + body)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data


def stored(server) -> int:
    rows = server.http().get_json("/v1/query/breakdown?since=2h&group_by=service")["rows"]
    return sum(r["samples"] for r in rows)


def test_bad_numbers_and_dimensions_are_400_and_nothing_is_stored(server):
    http = server.http()
    good = make_records(n=3)
    for bad_line, want in [
        (json.dumps(good[0]).replace('"wall_us": ', '"wall_us": 1e400, "x": '), "out of range"),
        (json.dumps({**good[0], "endpoint": "/a\u0000b/"}), "control character"),
        (json.dumps({**good[0], "host": "web\u001b[31m1"}), "control character"),
        (json.dumps({**good[0], "flags": {"beta": "o\nn"}}), "control character"),
    ]:
        body = (json.dumps(good[1]) + "\n" + bad_line + "\n").encode()
        status, answer = http.request("POST", "/v1/ingest", body, "application/x-ndjson")
        assert status == 400 and want in json.loads(answer)["error"], (status, answer)
    assert stored(server) == 0  # the good line of each rejected batch was not kept either
    assert http.post_ndjson(good)[0] == 200
    assert stored(server) == 3


def test_query_and_alert_parameters_out_of_range_are_400(server):
    http = server.http()
    for path in ["/v1/query/breakdown?from=1e300&group_by=endpoint",
                 "/v1/query/breakdown?to=1e300&group_by=endpoint",
                 "/v1/alerts?state=bogus"]:
        status, answer = http.request("GET", path)
        assert status == 400, (path, status, answer)
        assert json.loads(answer)["error"]
    status, answer = http.request("POST", "/v1/detect?at=1e300")
    assert status == 400 and "at '1e300' must be unix seconds" in json.loads(answer)["error"], answer


def test_bodies_without_a_usable_length_are_refused_before_they_are_read(server):
    # Each answer must come at once: raw_request's 5 s socket timeout is far
    # below the server's 30 s read timeout that a held worker would wait out.
    head = b"POST /v1/ingest HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\n"
    assert raw_request(server.port, head + b"Content-Length: -1\r\n\r\n")[0] == 400
    assert raw_request(server.port, head + b"Content-Length: 12x\r\n\r\n")[0] == 400
    # A chunked body would be read whole before any limit could apply.
    assert raw_request(server.port, head + b"Transfer-Encoding: chunked\r\n\r\n", b"5\r\nhello\r\n")[0] == 411
    # Over max_body_bytes (32 MiB by default): refused on the announced length, nothing read.
    assert raw_request(server.port, head + b"Content-Length: 999999999\r\n\r\n")[0] == 413
    assert server.http().request("GET", "/healthz")[0] == 200


def test_token_from_a_file_or_the_environment_and_any_case_of_bearer(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("file-s3cret\n")
    s = ServerProcess(tmp_path / "a", extra=["--token-file", str(token_file)]).start()
    try:
        assert "file-s3cret" not in open(f"/proc/{s.proc.pid}/cmdline", "rb").read().decode(errors="replace")
        http = s.http(token=None)
        path = "/v1/query/breakdown?since=1h&group_by=service"
        assert http.request("GET", path)[0] == 401
        for scheme in ["Bearer", "bearer", "BEARER"]:
            assert http.request("GET", path, headers={"Authorization": f"{scheme} file-s3cret"})[0] == 200
        assert http.request("GET", path, headers={"Authorization": "Bearer FILE-S3CRET"})[0] == 401
    finally:
        s.stop()
    os.environ["CPULEDGER_TOKEN"] = "env-s3cret"
    try:
        s = ServerProcess(tmp_path / "b").start()
    finally:
        del os.environ["CPULEDGER_TOKEN"]
    try:
        assert s.http(token=None).request("GET", "/v1/alerts")[0] == 401
        assert s.http(token="env-s3cret").request("GET", "/v1/alerts")[0] == 200
    finally:
        s.stop()


def test_endless_endpoint_names_are_capped_per_service_and_reported(tmp_path):
    config = tmp_path / "cpuledger.toml"
    config.write_text("max_dimension_values = 20\n")
    s = ServerProcess(tmp_path / "data", extra=["--config", str(config)]).start()
    try:
        http = s.http()
        records = make_records(n=200, sample_rate=1.0)
        for i, r in enumerate(records):
            r["endpoint"] = f"/item/{i}/"  # an id in the route: a new endpoint a request
        assert http.post_ndjson(records)[0] == 200
        rows = http.get_json("/v1/query/breakdown?since=2h&group_by=endpoint")["rows"]
        kept = {r["keys"]["endpoint"]: r["samples"] for r in rows}
        assert len(kept) == 21 and kept["<other>"] == 180, kept
        assert sum(kept.values()) == 200  # folded, not dropped
        metrics = http.request("GET", "/metrics")[1].decode()
        assert 'cpuledger_dimension_values_folded_total{dimension="endpoint"} 180' in metrics
    finally:
        s.stop()
    log = s.log.read_text()
    assert log.count("distinct endpoint values") == 1, log
