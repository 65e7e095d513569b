// pages/overview.ts — services and their efficiency metric (CPU per active
// user in the peak minute), the CPU trend, the top endpoints, open alerts.
import * as api from "../api";
import { lineChart, PALETTE } from "../charts";
import { cost, empty, h, nav, num, section, table, time, unitName } from "../dom";
import { bucketFor, bucketSeconds, measure, NO_RECORDS, noteUnit, previousRange, range, rangeControl, unitOf } from "./common";

export async function overviewPage(): Promise<HTMLElement[]> {
  const r = range();
  const bucket = bucketFor(r);
  const [eff, before, top, series, open] = await Promise.all([
    api.efficiency(r),
    api.efficiency(previousRange(r)),
    api.breakdown(r, { groupBy: ["service", "endpoint"], limit: 15 }),
    api.timeseries(r, { groupBy: ["service"], bucket }),
    api.alerts({ state: "open" }),
  ]);
  const head = h("div", { class: "toolbar" }, h("h1", {}, "Overview"), rangeControl());
  if (top.rows.length === 0) return [head, section("Services", empty("No records yet.", NO_RECORDS))];
  const unit = unitOf(top.rows);
  noteUnit(unit);
  const since = r.since;

  const services = section(
    "Efficiency: CPU per active user during the peak minute",
    table(
      ["service", `${unitName(eff[0]?.unit ?? unit)} per active user`, "vs the window before", "peak minute", "requests (peak min)", "active users (peak min)"],
      eff.map((s) => [
        nav({ page: "explorer", group: "endpoint", where: `service=${s.service}`, since }, s.service),
        cost(s.perActiveUser, s.unit),
        changeVsBefore(s, before),
        time(s.peakMinuteS),
        num(s.requests),
        num(s.activeUsers),
      ]),
      { id: "efficiency" },
    ),
  );

  // The trend: estimated CPU spent per bucket, per service.
  const names = [...new Set(series.rows.map((x) => x.keys.service))];
  const xs = [...new Set(series.rows.map((x) => x.bucketS))].sort((a, b) => a - b);
  const idx = new Map(xs.map((x, i) => [x, i]));
  const lines = names.map((name, i) => {
    const values: (number | null)[] = xs.map(() => null);
    for (const row of series.rows)
      if (row.keys.service === name) values[idx.get(row.bucketS)!] = (measure(row, unit)?.estTotal ?? 0) / bucketSeconds(bucket);
    return { label: name, values, color: PALETTE[i % PALETTE.length] };
  });
  const trend = section(
    `CPU spent per second, by service (${bucket} buckets)`,
    lineChart(xs, lines, { title: `${unitName(unit)} per second`, fmt: (v) => cost(v, unit) }),
  );

  const endpoints = section(
    "Top endpoints by total CPU",
    table(
      ["service", "endpoint", "est. requests", "CPU per request (mean)", "p90", "est. total CPU"],
      top.rows.map((row) => {
        const m = measure(row, unit);
        return [
          row.keys.service,
          nav({ page: "endpoint", service: row.keys.service, endpoint: row.keys.endpoint, since }, row.keys.endpoint),
          num(row.estRequests),
          cost(m?.mean, unit),
          cost(m?.p90, unit),
          cost(m?.estTotal, unit),
        ];
      }),
      { id: "top-endpoints" },
    ),
  );

  const alerts = section(
    "Open alerts",
    open.length === 0
      ? empty("No open alerts.", "Detectors run on the server's schedule (--detect-every), or now with `cpuledger detect`.")
      : table(
          ["opened", "service", "endpoint", "cause", "effect"],
          open.slice(0, 10).map((a) => [
            time(a.openedS),
            a.service,
            a.endpoint,
            nav({ page: "alerts", id: String(a.id) }, a.cause || a.kind),
            `${a.estimate >= 0 ? "+" : ""}${(a.estimate * 100).toFixed(1)} %`,
          ]),
          { id: "open-alerts" },
        ),
  );
  return [head, services, trend, endpoints, alerts];
}

// changeVsBefore() — the change of a service's metric against the window before
// (same length), when that window had it in the same unit.
function changeVsBefore(s: api.ServiceEfficiency, before: api.ServiceEfficiency[]): string {
  const b = before.find((x) => x.service === s.service && x.unit === s.unit);
  if (!b || !(b.perActiveUser > 0)) return "–";
  const change = s.perActiveUser / b.perActiveUser - 1;
  return `${change >= 0 ? "+" : ""}${(change * 100).toFixed(1)} %`;
}
