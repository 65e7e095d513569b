"""`make demo`'s story, shortened, through the same code
(scripts/demo_story.py): a real `cpuledger serve` detecting every few
seconds, the demo Django shop under gunicorn (3 workers a build) driven over
HTTP by signed-in customers, commit B rolled out side by side with A (its
product page's score_similarity() several times dearer), the waffle flag
personalised_ranking turned on for the beta group (the product list's
rank_for_user() does more), commit C rolled out (a copy change). Exactly two
alerts must open, each naming its function first, and none for C."""

from __future__ import annotations

import sys

import pytest
from conftest import ROOT, cpuledger_exe

sys.path.insert(0, str(ROOT / "scripts"))
import demo_story  # noqa: E402

PLAN = demo_story.Plan.short()


@pytest.mark.story
def test_two_alerts_name_their_functions_and_c_does_not_alert(tmp_path):
    lines: list[str] = []
    story = demo_story.Story(cpuledger_exe(), PLAN, tmp_path, out=lines.append)
    try:
        result = story.run()
    finally:
        story.stop()
    log = "\n".join(lines)
    assert demo_story.judge(result.alerts) == "", log

    a, b, c = (demo_story.COMMITS[r] for r in "ABC")
    rollout = next(x for x in result.alerts if x["kind"] == "rollout")
    assert rollout["endpoint"] == "/item/<int:id>/" and rollout["cause"] == f"commit {b} vs {a}", rollout
    assert rollout["effect"]["lo"] > rollout["threshold"]
    top = rollout["top_functions"][0]
    assert "shop/recommend.py:" in top["function"], top
    assert top["function"].endswith(":score_similarity"), rollout["top_functions"]
    # From the view down: the ranking's sort key calls it.
    assert [p.rsplit(":", 1)[-1] for p in top["path"][-4:]] == [
        "product_detail", "similar_products", "<lambda>", "score_similarity"], top["path"]
    assert top["added"] > 0 and top["before"] > 0  # an existing function grew: not new code

    flag = next(x for x in result.alerts if x["kind"] == "flag")
    assert flag["endpoint"] == "/shop/" and flag["cause"] == "flag personalised_ranking=on vs off", flag
    assert flag["effect"]["lo"] > flag["threshold"]
    assert flag["top_functions"][0]["function"].endswith(":rank_for_user"), flag["top_functions"]

    assert not [x for x in result.alerts if x.get("target_commit") == c], result.alerts
    # The story's figures are printed: requests, records, the dashboard's alert pages.
    assert result.requests >= PLAN.a_requests and result.records >= result.requests
    for x in result.alerts:
        assert f"{result.server_url}/?page=alerts&id={x['id']}" in log
    assert result.efficiency["before"]["active_users"] > 0 and result.efficiency["after"]["active_users"] > 0


def test_a_view_profiled_locally_as_the_readme_says(tmp_path):
    """README, "Profile a view locally": migrate, seed, the profiler over
    profile_view.py at build B; score_similarity() leads by self cost."""
    import os
    import pstats
    import subprocess

    shop = ROOT / "examples" / "shop"
    env = {**os.environ, "SHOP_DB": str(tmp_path / "shop.sqlite3"), "SHOP_MIDDLEWARE": "none"}
    for args in (["manage.py", "migrate", "-v0"], ["manage.py", "seed_shop"]):
        subprocess.run([sys.executable, *args], cwd=shop, env=env, check=True, capture_output=True, timeout=300)
    out = tmp_path / "item.pstats"
    run = subprocess.run([sys.executable, "-m", "cpuledger.profile", "-s", "apportioned", "-o", str(out), "-f", "pstats",
                          "profile_view.py", "/item/5/", "50"],
                         cwd=shop, env={**env, "SHOP_RELEASE": "B"}, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and "50 x /item/5/: 200" in run.stdout, (run.stdout, run.stderr[-2000:])
    stats = pstats.Stats(str(out)).stats  # (file, line, name) -> (calls, ncalls, tottime, cumtime, callers)
    by_self = sorted(stats.items(), key=lambda kv: -kv[1][2])
    heaviest_python = next(k for k, _ in by_self if k[0].endswith(".py"))
    top = [(k, v[:3]) for k, v in by_self[:8]]  # name, calls and self cost: what led instead
    assert heaviest_python[2] == "score_similarity" and heaviest_python[0].endswith("shop/recommend.py"), top
    assert stats[heaviest_python][1] == 50 * 24  # the view's 24 candidates, 50 times
