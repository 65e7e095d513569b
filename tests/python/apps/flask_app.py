"""A Flask app behind CpuLedgerWSGI, for the WSGI middleware test."""

import os

from flask import Flask, abort

from cpuledger import span
from cpuledger.wsgi import CpuLedgerWSGI

app = Flask("flaskshop")


@app.route("/users/<int:user_id>")
def user(user_id):
    with span("db"):
        sum(range(1000))
    return {"id": user_id}


@app.route("/missing")
def missing():
    abort(404)


@app.route("/fail")
def fail():
    raise RuntimeError("fails")


CpuLedgerWSGI.for_flask(
    app,
    enabled=True,  # record, though started by a test
    server_url=os.environ["CPULEDGER_SERVER_URL"],
    sample_rate=1.0,
    service="flaskshop",
    commit="f1",
    batch_max_delay_ms=200,
    user_key=lambda environ: environ.get("HTTP_X_USER"),
)
