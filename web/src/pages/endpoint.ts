// pages/endpoint.ts — one endpoint: CPU per request over time (mean, p50,
// p90, p99) and request rate, commits marked where they first served; DB and
// cache time beside CPU; a breakdown by any dimension; its top functions.
import * as api from "../api";
import { lineChart, Marker, PALETTE } from "../charts";
import { cost, empty, h, nav, num, section, table, time, unitName } from "../dom";
import { param, update } from "../state";
import { bucketFor, bucketSeconds, measure, NO_RECORDS, noteUnit, range, rangeControl, unitOf } from "./common";

const DIMENSIONS = ["commit", "host", "cluster", "region", "status", "method"];

export async function endpointPage(): Promise<HTMLElement[]> {
  const service = param("service");
  const endpoint = param("endpoint");
  const by = param("by", "commit");
  const r = range();
  const bucket = bucketFor(r);
  const where = [service && `service=${service}`, endpoint && `endpoint=${endpoint}`].filter(Boolean) as string[];
  const flag = by.startsWith("flag:") ? by : "";
  const [series, split, deploys, fns, flagSeries] = await Promise.all([
    api.timeseries(r, { where, bucket }),
    api.breakdown(r, { where, groupBy: [by], limit: 50 }),
    api.deploys(service || undefined),
    api.functions({ ...r, service, endpoint }, 15),
    flag ? api.timeseries(r, { where, bucket, groupBy: [flag] }) : Promise.resolve(null),
  ]);
  const head = h(
    "div",
    { class: "toolbar" },
    h("h1", {}, `${endpoint || "all endpoints"}`, h("span", { class: "muted" }, ` · ${service || "all services"}`)),
    rangeControl(),
    nav({ page: "profiles", service, endpoint, since: r.since, from: r.from, to: r.to }, "Flame graph →"),
  );
  if (series.rows.length === 0) return [head, section("CPU per request", empty("No records for this endpoint yet.", NO_RECORDS))];
  const unit = unitOf(series.rows);
  noteUnit(unit);

  const rows = series.rows;
  const xs = rows.map((x) => x.bucketS);
  const pick = (f: (d: api.Distribution) => number) => rows.map((x) => { const m = measure(x, unit); return m ? f(m) : null; });
  // A commit is marked where it first served (on any cluster) after the
  // series starts: the ones serving from the start are no change.
  const firstSeen = new Map<string, number>();
  for (const d of deploys) firstSeen.set(d.commit, Math.min(firstSeen.get(d.commit) ?? Infinity, d.firstSeenS));
  const markers: Marker[] = [...firstSeen]
    .filter(([, s]) => s >= xs[0] + bucketSeconds(bucket) && s <= xs[xs.length - 1])
    .map(([commit, s], i) => ({ x: s, label: `commit ${commit}`, color: PALETTE[(i + 4) % PALETTE.length] }));
  // Split by a flag, its values are marked where they first served too.
  const flagFirst = new Map<string, number>();
  for (const x of flagSeries?.rows ?? []) {
    const v = x.keys[flag];
    if (v !== "") flagFirst.set(v, Math.min(flagFirst.get(v) ?? Infinity, x.bucketS));
  }
  for (const [v, s] of flagFirst)
    if (s >= xs[0] + bucketSeconds(bucket)) markers.push({ x: s, label: `${flag.slice(5)}=${v}`, color: PALETTE[(markers.length + 4) % PALETTE.length] });
  const cpu = section(
    `CPU per request (${bucket} buckets)`,
    lineChart(
      xs,
      [
        { label: "mean", values: pick((m) => m.mean), color: PALETTE[0] },
        { label: "p50", values: pick((m) => m.p50), color: PALETTE[2] },
        { label: "p90", values: pick((m) => m.p90), color: PALETTE[3] },
        { label: "p99", values: pick((m) => m.p99), color: PALETTE[1] },
      ],
      { title: `${unitName(unit)} per request`, fmt: (v) => cost(v, unit), markers },
    ),
    lineChart(
      xs,
      [{ label: "requests/s (est.)", values: rows.map((x) => x.estRequests / bucketSeconds(bucket)), color: PALETTE[4] }],
      { title: "Request rate", fmt: (v) => num(v) + "/s", markers, height: 180 },
    ),
  );
  const ms = (us: number | null | undefined) => (us === null || us === undefined ? null : us / 1000);
  const time_ = section(
    "Where the wall time went (mean per request)",
    lineChart(
      xs,
      [
        { label: "wall", values: rows.map((x) => ms(x.wallUs?.mean)), color: PALETTE[5] },
        { label: "CPU", values: rows.map((x) => (x.cpuNs ? x.cpuNs.mean / 1e6 : null)), color: PALETTE[0] },
        { label: "DB", values: rows.map((x) => ms(x.dbUsMean)), color: PALETTE[3] },
        { label: "cache", values: rows.map((x) => ms(x.cacheUsMean)), color: PALETTE[2] },
      ],
      { title: "ms per request", fmt: (v) => v.toFixed(2) + " ms", height: 200 },
    ),
  );

  const flagInput = h("input", { id: "by-flag", placeholder: "flag name", value: by.startsWith("flag:") ? by.slice(5) : "", size: 14 }) as HTMLInputElement;
  const bySelect = h(
    "select",
    { id: "by", onchange: (e: Event) => update({ by: (e.target as HTMLSelectElement).value }) },
    ...DIMENSIONS.map((d) => h("option", { value: d, selected: d === by }, d)),
    by.startsWith("flag:") ? h("option", { value: by, selected: true }, by) : null,
  );
  const breakdown = section(
    "Breakdown",
    h(
      "div",
      { class: "controls" },
      h("label", { class: "control" }, "by ", bySelect),
      h(
        "form",
        { class: "control", onsubmit: (e: Event) => { e.preventDefault(); if (flagInput.value) update({ by: "flag:" + flagInput.value.trim() }); } },
        "or by flag ", flagInput, h("button", { type: "submit" }, "Split"),
      ),
    ),
    split.rows.length === 0
      ? empty("Nothing to split.", "No records in this range.")
      : table(
          [by, "samples", "est. requests", "mean", "p50", "p90", "p99", "DB ms", "cache ms"],
          split.rows.map((x) => {
            const m = measure(x, unit);
            return [
              x.keys[by] === "" ? "(none)" : x.keys[by],
              num(x.samples),
              num(x.estRequests),
              cost(m?.mean, unit),
              cost(m?.p50, unit),
              cost(m?.p90, unit),
              cost(m?.p99, unit),
              (x.dbUsMean / 1000).toFixed(2),
              (x.cacheUsMean / 1000).toFixed(2),
            ];
          }),
          { id: "breakdown" },
        ),
  );

  const functions = section(
    `Top functions by self cost (per profiled request, ${fns.profiled} profiled requests)`,
    fns.functions.length === 0
      ? empty("No profiles for this endpoint.", "Set PROFILE_RATE above 0 in the middleware settings (README: Settings) to profile a share of sampled requests.")
      : table(
          ["function", "calls", "self", "total"],
          fns.functions.map((f) => [h("span", { title: f.key }, f.name), num(f.calls), cost(f.self, fns.unit), cost(f.total, fns.unit)]),
          { id: "functions" },
        ),
  );
  const commits = deploys.filter((d) => d.lastSeenS >= xs[0]);
  const deployList = section(
    "Commits serving in this range",
    table(["commit", "cluster", "first seen", "last seen"], commits.map((d) => [d.commit, d.cluster || "–", time(d.firstSeenS), time(d.lastSeenS)])),
  );
  return [head, cpu, time_, breakdown, functions, deployList];
}
