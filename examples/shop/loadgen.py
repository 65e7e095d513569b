"""A load generator for the demo shop: many simulated customers, each with
its own session (cookies, CSRF token), who sign in and then browse, search,
fill a cart and check out, over every endpoint of the shop. Requests go to
whichever builds are live (`LoadGen.backends`, changed during a rollout the
way a load balancer's pool is), and each run is bounded by a request count
and a deadline.

    gen = LoadGen(users=120, concurrency=6, seed=18)
    gen.backends = [("http://127.0.0.1:8001", 1)]
    gen.sign_in()                      # every customer, once
    gen.drive("A", requests=1200, deadline=time.monotonic() + 60)

Standard library only. Run alone (`python loadgen.py http://127.0.0.1:8000
--requests 500`) it drives one shop and prints what it sent.
"""

from __future__ import annotations

import argparse
import http.client
import random
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.cookies import SimpleCookie

PASSWORD = "demo"  # shop/management/commands/seed_shop.py
PRODUCTS = 3000
ORDERS = 400
SEARCH_WORDS = ["kettle", "lamp", "chair", "speaker", "mug", "tent", "clock", "red", "mini", "steel"]
CATEGORIES = ["kitchen", "garden", "books", "music", "toys", "outdoor", "office", "bath", "tools", "tea"]

# What a customer does next, and how often (weights).
MIX = [
    ("list", 60), ("product", 18), ("api", 5), ("home", 4), ("search", 4), ("cart", 3),
    ("add", 2), ("receipt", 2), ("checkout", 1), ("admin", 1),
]


@dataclass
class Session:
    """One customer's cookies, as a browser keeps them."""

    username: str
    cookies: dict = field(default_factory=dict)

    def header(self) -> str:
        return "; ".join(f"{k}={v}" for k, v in self.cookies.items())

    def keep(self, response: http.client.HTTPResponse) -> None:
        for value in response.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(value).items():
                if morsel["max-age"] == "0":
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value


@dataclass
class Tally:
    """What a run sent: requests by status."""

    sent: int = 0
    statuses: dict = field(default_factory=dict)
    errors: int = 0  # no HTTP answer at all

    def add(self, status: int | None) -> None:
        self.sent += 1
        if status is None:
            self.errors += 1
        else:
            self.statuses[status] = self.statuses.get(status, 0) + 1

    def text(self) -> str:
        parts = [f"{n} x {s}" for s, n in sorted(self.statuses.items())]
        if self.errors:
            parts.append(f"{self.errors} unanswered")
        return ", ".join(parts)


class LoadGen:
    def __init__(self, users: int = 120, concurrency: int = 6, seed: int = 18):
        self.sessions = [Session(f"user{i:03d}") for i in range(1, users + 1)]
        self.admin = Session("admin")
        self.admin_lock = threading.Lock()
        self.concurrency = concurrency
        self.seed = seed
        self.backends: list[tuple[str, float]] = []  # (base URL, weight): the live pool
        self.total = Tally()
        self._lock = threading.Lock()
        self._rounds = 0

    # -- one request -----------------------------------------------------

    def _pick_backend(self, rng: random.Random) -> str:
        pool = list(self.backends)
        return rng.choices([url for url, _ in pool], weights=[w for _, w in pool])[0]

    def request(self, rng, session, method, path, form=None) -> int | None:
        """One request as a browser sends it (no redirects followed)."""
        url = urllib.parse.urlsplit(self._pick_backend(rng))
        headers = {"Cookie": session.header()}
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers["X-CSRFToken"] = session.cookies.get("csrftoken", "")
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            session.keep(response)
            return response.status
        except OSError:
            return None
        finally:
            conn.close()

    def _sign_in(self, rng, session) -> None:
        self.request(rng, session, "GET", "/login/")  # the form sets the CSRF cookie
        self.request(rng, session, "POST", "/login/",
                     {"username": session.username, "password": PASSWORD,
                      "csrfmiddlewaretoken": session.cookies.get("csrftoken", "")})

    def sign_in(self) -> None:
        """Every customer (and the admin) signs in, once."""
        rng = random.Random(self.seed)
        for session in [*self.sessions, self.admin]:
            self._sign_in(rng, session)

    def action(self, rng: random.Random, session: Session) -> int | None:
        """One customer step, drawn from MIX."""
        what = rng.choices([m for m, _ in MIX], weights=[w for _, w in MIX])[0]
        if what == "list":
            query = {"page": rng.randint(1, 10)}
            if rng.random() < 0.3:
                query["category"] = rng.choice(CATEGORIES)
            return self.request(rng, session, "GET", "/shop/?" + urllib.parse.urlencode(query))
        if what == "product":
            return self.request(rng, session, "GET", f"/item/{rng.randint(1, PRODUCTS)}/")
        if what == "api":
            return self.request(rng, session, "GET", f"/api/products/?page={rng.randint(1, 60)}")
        if what == "home":
            return self.request(rng, session, "GET", "/")
        if what == "search":
            return self.request(rng, session, "GET", f"/search/?q={rng.choice(SEARCH_WORDS)}")
        if what == "cart":
            return self.request(rng, session, "GET", "/cart/")
        if what == "add":
            return self.request(rng, session, "POST", "/cart/add/",
                                {"product": rng.randint(1, PRODUCTS), "quantity": rng.randint(1, 2)})
        if what == "receipt":
            return self.request(rng, session, "GET", f"/orders/{rng.randint(1, ORDERS)}/")
        if what == "checkout":
            return self.request(rng, session, "POST", "/checkout/", {})
        with self.admin_lock:  # one staff member browses the admin
            return self.request(rng, self.admin, "GET", f"/admin/shop/product/?p={rng.randint(1, 120)}")

    # -- a bounded run ---------------------------------------------------

    def drive(self, stage: str, requests: int, deadline: float, until=None, progress=None,
              progress_every: float = 5.0) -> Tally:
        """Sends up to `requests` requests from `concurrency` threads, each
        owning its share of the customers, until the count is sent, the
        deadline passes or `until()` is true (looked at every second).
        `progress(stage, tally)` is called every `progress_every` seconds."""
        tally = Tally()
        lock = threading.Lock()
        stop = threading.Event()
        claimed = [0]  # requests taken by a thread, answered or not yet
        self._rounds += 1

        def worker(t: int) -> None:
            rng = random.Random(self.seed * 1000 + self._rounds * 100 + t)
            mine = self.sessions[t::self.concurrency]
            while not stop.is_set():
                with lock:
                    if claimed[0] >= requests:
                        return
                    claimed[0] += 1
                status = self.action(rng, rng.choice(mine))
                with lock:
                    tally.add(status)
                with self._lock:
                    self.total.add(status)

        threads = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(self.concurrency)]
        for th in threads:
            th.start()
        last = time.monotonic()
        while any(th.is_alive() for th in threads):
            now = time.monotonic()
            if now >= deadline or (until is not None and until()):
                stop.set()
            if progress is not None and now - last >= progress_every:
                progress(stage, tally)
                last = now
            time.sleep(0.25)
        if progress is not None:
            progress(stage, tally)
        return tally


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("url", help="the shop, e.g. http://127.0.0.1:8000")
    p.add_argument("--requests", type=int, default=500)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--users", type=int, default=120)
    p.add_argument("--concurrency", type=int, default=6)
    a = p.parse_args()
    gen = LoadGen(a.users, a.concurrency)
    gen.backends = [(a.url, 1)]
    gen.sign_in()
    tally = gen.drive("load", a.requests, time.monotonic() + a.seconds,
                      progress=lambda stage, t: print(f"{stage}: {t.sent} sent ({t.text()})", flush=True))
    print(f"sent {tally.sent} requests: {tally.text()}")


if __name__ == "__main__":
    main()
