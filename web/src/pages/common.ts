// pages/common.ts — what several pages share: the time range control, the
// unit of a data set, and the pick of a row's CPU measure.
import type { Distribution, Row, TimeRange } from "../api";
import { h } from "../dom";
import { param, update } from "../state";

export const RANGES = ["1h", "6h", "24h", "48h", "7d", "30d"];
export const DEFAULT_SINCE = "24h";

// range() — the URL's time range: from/to (unix s) when set, else since.
export function range(): TimeRange {
  if (param("from") && param("to")) return { from: param("from"), to: param("to") };
  return { since: param("since", DEFAULT_SINCE) };
}

export function rangeSeconds(r: TimeRange): number {
  if (r.from && r.to) return Number(r.to) - Number(r.from);
  const m = /^(\d+)([smhd])$/.exec(r.since ?? DEFAULT_SINCE);
  if (!m) return 86400;
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[m[2] as "s" | "m" | "h" | "d"];
}

// bucketFor() — minutes up to 24 h, hours up to 60 days, else days: at most
// 1,440 points a series (uPlot draws that many in a few ms; the rows cost the
// server more than the drawing costs the page).
export function bucketFor(r: TimeRange): string {
  const s = rangeSeconds(r);
  return s <= 24 * 3600 ? "minute" : s <= 60 * 86400 ? "hour" : "day";
}

export function bucketSeconds(bucket: string): number {
  return bucket === "minute" ? 60 : bucket === "hour" ? 3600 : 86400;
}

export function rangeControl(): HTMLElement {
  const r = range();
  const select = h(
    "select",
    { id: "range", onchange: (e: Event) => update({ since: (e.target as HTMLSelectElement).value, from: undefined, to: undefined }) },
    ...RANGES.map((v) => h("option", { value: v, selected: !r.from && v === (r.since ?? DEFAULT_SINCE) }, "last " + v)),
    r.from ? h("option", { value: "", selected: true }, "pinned range") : null,
  );
  return h("label", { class: "control" }, "Time range ", select);
}

// unitOf() — "instructions" when any row has them (a PMU), else "cpu_ns".
export function unitOf(rows: Row[]): string {
  return rows.some((r) => r.instructions !== null) ? "instructions" : "cpu_ns";
}

export function measure(row: Row, unit: string): Distribution | null {
  return unit === "instructions" ? row.instructions : row.cpuNs;
}

// noteUnit() — the header says the unit; without a PMU, that it is CPU time.
export function noteUnit(unit: string): void {
  const el = document.getElementById("unit-note");
  if (!el) return;
  el.textContent =
    unit === "cpu_ns"
      ? "unit: CPU time (no PMU on the recording hosts: bills are thread CPU time, not instructions)"
      : "unit: CPU instructions (hardware counters)";
}

export const NO_RECORDS =
  "No records in this time range. Add the middleware to an app (README: \"In a Django app\"), or try `cpuledger simulate --server URL` for a demo fleet; then widen the time range.";

// previousRange() — the window of the same length just before `r`, pinned.
export function previousRange(r: TimeRange): TimeRange {
  const length = rangeSeconds(r);
  const to = r.from && r.to ? Number(r.from) : Math.floor(Date.now() / 1000) - length;
  return { from: String(to - length), to: String(to) };
}
