"""The parity app on Flask (WSGI), behind CpuLedgerWSGI.for_flask."""

import parity_common
from flask import Flask, redirect

from cpuledger.wsgi import CpuLedgerWSGI

parity_common.maybe_break()
app = Flask(__name__, static_folder="static")


@app.route("/")
def root():
    return redirect("/items/1")


@app.route("/items/<int:id>")
def item(id):
    return {"id": id}


@app.route("/boom")
def boom():
    raise RuntimeError("boom")


@app.route("/work")
def work():
    return parity_common.work()


CpuLedgerWSGI.for_flask(app, **parity_common.kwargs())
