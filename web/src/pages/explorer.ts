// pages/explorer.ts — any slice: group-by dimensions, filters (DIM=VALUE), a
// time range and a statistic; a table of the groups and a chart of the
// heaviest ones. Every control writes the URL, so a link shares the view.
import * as api from "../api";
import { lineChart, PALETTE } from "../charts";
import { cost, empty, h, nav, num, section, table } from "../dom";
import { param, params, update } from "../state";
import { bucketFor, measure, NO_RECORDS, noteUnit, range, rangeControl, unitOf } from "./common";

const DIMENSIONS = ["service", "endpoint", "method", "status", "host", "cluster", "region", "commit"];
const STATS = ["mean", "p50", "p90", "p99"] as const;
type Stat = (typeof STATS)[number];
const CHART_GROUPS = 8;

function groupLabel(keys: Record<string, string>, group: string[]): string {
  return group.length === 0 ? "all" : group.map((g) => keys[g] || "(none)").join(" · ");
}

export async function explorerPage(): Promise<HTMLElement[]> {
  const group = param("group", "endpoint").split(",").filter(Boolean);
  const where = params("where");
  const stat = (STATS as readonly string[]).includes(param("stat")) ? (param("stat") as Stat) : "mean";
  const r = range();
  const bucket = bucketFor(r);
  const [table_, series] = await Promise.all([
    api.breakdown(r, { groupBy: group, where, limit: 200 }),
    api.timeseries(r, { groupBy: group, where, bucket }),
  ]);
  const unit = unitOf(table_.rows);
  noteUnit(unit);

  const setGroup = (g: string[]) => update({ group: g.join(",") || undefined });
  const groupBoxes = DIMENSIONS.map((d) =>
    h(
      "label",
      { class: "check" },
      h("input", {
        type: "checkbox",
        name: "group",
        value: d,
        checked: group.includes(d),
        onchange: (e: Event) => setGroup((e.target as HTMLInputElement).checked ? [...group, d] : group.filter((x) => x !== d)),
      }),
      d,
    ),
  );
  const flagGroups = group.filter((g) => g.startsWith("flag:"));
  const flagInput = h("input", { id: "group-flag", placeholder: "flag name", size: 12 }) as HTMLInputElement;
  const filterDim = h("select", { id: "filter-dim" }, ...DIMENSIONS.map((d) => h("option", { value: d }, d))) as HTMLSelectElement;
  const filterValue = h("input", { id: "filter-value", placeholder: "value (flag:NAME dims too)", size: 22 }) as HTMLInputElement;
  const controls = section(
    "Slice",
    h("div", { class: "controls" }, h("span", { class: "label" }, "Group by"), ...groupBoxes,
      ...flagGroups.map((g) => h("button", { class: "chip", onclick: () => setGroup(group.filter((x) => x !== g)) }, g + " ×")),
      h("form", { class: "control", onsubmit: (e: Event) => { e.preventDefault(); if (flagInput.value) setGroup([...group, "flag:" + flagInput.value.trim()]); } },
        flagInput, h("button", { type: "submit" }, "+ flag"))),
    h("div", { class: "controls" }, h("span", { class: "label" }, "Filters"),
      ...(where.length === 0 ? [h("span", { class: "muted" }, "none")] : []),
      ...where.map((w) => h("button", { class: "chip", "data-filter": w, onclick: () => update({ where: where.filter((x) => x !== w) }) }, w + " ×")),
      h("form", { id: "add-filter", class: "control", onsubmit: (e: Event) => {
        e.preventDefault();
        const text = filterValue.value.trim();
        // "flag:new_search=on" typed whole is taken as it is.
        const clause = /^flag:[^=]+=/.test(text) ? text : `${filterDim.value}=${text}`;
        update({ where: [...where, clause] });
      } }, filterDim, " = ", filterValue, h("button", { type: "submit" }, "+ filter"))),
    h("div", { class: "controls" }, rangeControl(),
      h("label", { class: "control" }, "Statistic ",
        h("select", { id: "stat", onchange: (e: Event) => update({ stat: (e.target as HTMLSelectElement).value }) },
          ...STATS.map((s) => h("option", { value: s, selected: s === stat }, s))))),
  );
  if (table_.rows.length === 0) return [h("h1", {}, "Explorer"), controls, section("Groups", empty("Nothing matches.", NO_RECORDS))];

  // The chart: the statistic per bucket for the heaviest groups.
  const labels = table_.rows.slice(0, CHART_GROUPS).map((x) => groupLabel(x.keys, group));
  const xs = [...new Set(series.rows.map((x) => x.bucketS))].sort((a, b) => a - b);
  const idx = new Map(xs.map((x, i) => [x, i]));
  const lines = labels.map((label, i) => {
    const values: (number | null)[] = xs.map(() => null);
    for (const x of series.rows)
      if (groupLabel(x.keys, group) === label) values[idx.get(x.bucketS)!] = measure(x, unit)?.[stat] ?? null;
    return { label, values, color: PALETTE[i % PALETTE.length] };
  });
  const chart = section(
    `CPU per request (${stat}), heaviest ${labels.length} groups, ${bucket} buckets`,
    lineChart(xs, lines, { title: `${stat} per request`, fmt: (v) => cost(v, unit) }),
  );
  const rows = table_.rows.map((x) => {
    const m = measure(x, unit);
    const label = groupLabel(x.keys, group);
    const ep = x.keys.endpoint;
    return [
      ep ? nav({ page: "endpoint", service: x.keys.service, endpoint: ep, since: r.since }, label) : label,
      num(x.samples),
      num(x.estRequests),
      cost(m?.mean, unit),
      cost(m?.p50, unit),
      cost(m?.p90, unit),
      cost(m?.p99, unit),
      cost(m?.estTotal, unit),
      ((x.wallUs?.mean ?? 0) / 1000).toFixed(2),
      (x.dbUsMean / 1000).toFixed(2),
    ];
  });
  const groups = section(
    `Groups (${table_.rows.length}${table_.truncated ? ", truncated" : ""})`,
    table([group.join(" · ") || "all", "samples", "est. requests", "mean", "p50", "p90", "p99", "est. total", "wall ms", "DB ms"], rows, { id: "groups" }),
  );
  return [h("h1", {}, "Explorer"), controls, chart, groups];
}
