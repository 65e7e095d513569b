// pages/alerts.ts — the stored alerts (open / acknowledged / resolved / all)
// and one alert's detail: its state and the history of its changes with
// Acknowledge / Resolve buttons, the effect with its interval against the
// threshold, sample counts, the cause, the series around the change split by
// the cause's dimension, the culprit functions, and a link to the profile
// diff of the two sides.
import * as api from "../api";
import { lineChart, Marker, PALETTE } from "../charts";
import { cost, empty, h, nav, num, pct, section, table, time, unitName } from "../dom";
import { param, update } from "../state";

const STATES = ["open", "acknowledged", "resolved", "all"];
import { measure, noteUnit, unitOf } from "./common";

const signed = (v: number) => (v >= 0 ? "+" : "") + (v * 100).toFixed(1) + " %";

export async function alertsPage(): Promise<HTMLElement[]> {
  const id = param("id");
  return id ? detail(Number(id)) : list();
}

async function list(): Promise<HTMLElement[]> {
  const state = param("state", "open");
  const all = await api.alerts({ state: state === "all" ? undefined : state, since: param("since", "30d") });
  const control = h(
    "label",
    { class: "control" },
    "Show ",
    h("select", { id: "state", onchange: (e: Event) => update({ state: (e.target as HTMLSelectElement).value }) },
      ...STATES.map((s) => h("option", { value: s, selected: s === state }, s))),
  );
  const head = h("div", { class: "toolbar" }, h("h1", {}, "Alerts"), control);
  if (all.length === 0)
    return [head, section("Alerts", empty(`No ${state === "all" ? "" : state + " "}alerts in the last 30 days.`,
      "Detectors run on the server's schedule (cpuledger serve --detect-every), or at once with `cpuledger detect --server URL`."))];
  return [
    head,
    section(
      `${all.length} alert${all.length === 1 ? "" : "s"}`,
      table(
        ["opened", "state", "kind", "service", "endpoint", "cause", "effect", "interval"],
        all.map((a) => [
          time(a.openedS),
          h("span", { class: `state state-${a.state}` }, a.state),
          a.kind,
          a.service,
          a.endpoint,
          nav({ page: "alerts", id: String(a.id) }, a.cause || a.kind),
          signed(a.estimate),
          `${signed(a.lo)} … ${signed(a.hi)}`,
        ]),
        { id: "alerts" },
      ),
    ),
  ];
}

// lifecycle() — the alert's state, its changes so far, and the buttons that
// move it on (those its state allows); a refusal (409) is shown beside them.
function lifecycle(a: api.Alert, events: api.AlertEvent[]): HTMLElement {
  const note = h("input", { type: "text", id: "alert-note", placeholder: "note (optional)", size: 40 }) as HTMLInputElement;
  const problem = h("span", { class: "muted", id: "alert-action-error" });
  const act = (state: "acknowledged" | "resolved") => async (e: Event) => {
    (e.target as HTMLButtonElement).disabled = true;
    try {
      await api.transition(a.id, state, note.value.trim());
      update({}, true); // draw the page again from the server's answer
    } catch (err) {
      problem.textContent = String((err as Error).message ?? err);
      (e.target as HTMLButtonElement).disabled = false;
    }
  };
  const buttons =
    a.state === "resolved"
      ? [h("p", { class: "muted" }, "Resolved alerts stay resolved; if the effect comes back the detector opens a new alert that names this one.")]
      : [
          note,
          " ",
          a.state === "open" ? h("button", { type: "button", id: "acknowledge", onclick: act("acknowledged") }, "Acknowledge") : null,
          " ",
          h("button", { type: "button", id: "resolve", onclick: act("resolved") }, "Resolve"),
          " ",
          problem,
        ];
  const history = table(
    ["when", "state", "by", "note"],
    events.map((e) => [time(e.atS), e.state, e.by, e.note]),
    { id: "alert-events" },
  );
  return section(
    "State",
    h("p", {}, "This alert is ", h("strong", { id: "alert-state", class: `state state-${a.state}` }, a.state),
      a.reopens ? [" (it reopens ", nav({ page: "alerts", id: String(a.reopens) }, `alert ${a.reopens}`), ")"] : null),
    h("div", { class: "toolbar", id: "alert-actions" }, ...buttons),
    history,
  );
}

async function detail(id: number): Promise<HTMLElement[]> {
  let found: { alert: api.Alert; events: api.AlertEvent[] };
  try {
    found = await api.alertDetail(id);
  } catch (e) {
    if (e instanceof api.ApiError && e.status === 404)
      return [section("Alert", empty(`No alert ${id}.`, "It may have aged out of the store; see the list."))];
    throw e;
  }
  const a = found.alert;
  // The series around the change: the detector's window and as much again before.
  const span = Math.max(3600, a.toS - a.fromS);
  const from = Math.floor(a.fromS - span / 2);
  const to = Math.ceil(a.toS + span / 4);
  const splitBy = a.flag ? `flag:${a.flag}` : a.baseCommit ? "commit" : "";
  const where = [`service=${a.service}`, ...(a.endpoint ? [`endpoint=${a.endpoint}`] : [])];
  const bucket = to - from <= 12 * 3600 ? "minute" : "hour";
  const series = await api.timeseries({ from: String(from), to: String(to) }, { where, bucket, groupBy: splitBy ? [splitBy] : [] });
  const unit = unitOf(series.rows);
  noteUnit(unit);

  const facts = h(
    "dl",
    { class: "facts", id: "alert-facts" },
    h("dt", {}, "Effect"),
    h("dd", {}, h("strong", {}, signed(a.estimate)), ` (${pct(a.confidence)} interval ${signed(a.lo)} … ${signed(a.hi)})`),
    h("dt", {}, "Threshold"),
    h("dd", {}, `${signed(a.threshold)} (${a.thresholdSource}): the whole interval lies beyond it`),
    h("dt", {}, "Means"),
    h("dd", {}, `${cost(a.meanBase, a.unit)} → ${cost(a.meanTarget, a.unit)} per request`),
    h("dt", {}, "Samples"),
    h("dd", {}, `${num(a.samplesBase)} base, ${num(a.samplesTarget)} target`),
    h("dt", {}, "Cause"),
    h("dd", {}, a.flag ? `flag ${a.flag}=${a.flagValue} vs ${a.flagReference}` : a.baseCommit ? `commit ${a.baseCommit} → ${a.targetCommit}` : a.cause),
    a.commits.length > 1 ? h("dt", {}, "Commits in range") : null,
    a.commits.length > 1 ? h("dd", {}, a.commits.join(", ")) : null,
    h("dt", {}, "Window"),
    h("dd", {}, `${time(a.fromS)} – ${time(a.toS)}`),
    h("dt", {}, "Opened"),
    h("dd", {}, `${time(a.openedS)}; ${a.state} since ${time(a.updatedS)}`),
  );

  const groups = [...new Set(series.rows.map((x) => x.keys[splitBy] ?? "all"))];
  const xs = [...new Set(series.rows.map((x) => x.bucketS))].sort((p, q) => p - q);
  const idx = new Map(xs.map((x, i) => [x, i]));
  const lines = groups.map((g, i) => {
    const values: (number | null)[] = xs.map(() => null);
    for (const x of series.rows) if ((x.keys[splitBy] ?? "all") === g) values[idx.get(x.bucketS)!] = measure(x, unit)?.mean ?? null;
    return { label: splitBy ? `${splitBy}=${g || "(none)"}` : "mean", values, color: PALETTE[i % PALETTE.length] };
  });
  const markers: Marker[] = [
    { x: a.fromS, label: "window start", color: "#888" },
    { x: a.toS, label: "window end", color: "#888" },
  ];
  const chart = section(
    "The series around the change",
    series.rows.length === 0
      ? empty("No records around the change.", "They may have passed the raw retention.")
      : lineChart(xs, lines, { title: `${unitName(unit)} per request (mean)`, fmt: (v) => cost(v, unit), markers }),
  );

  // A flag whose reference is "unset" has no profiles of its own to diff against.
  const diffLink = a.flag && a.flagReference
    ? nav(
        { page: "profiles", mode: "diff", by: "flag", service: a.service, endpoint: a.endpoint, flag: a.flag, base: a.flagReference, target: a.flagValue, from: String(from), to: String(to) },
        `Profile diff ${a.flag}=${a.flagReference} → ${a.flagValue} →`,
      )
    : a.baseCommit
    ? nav(
        { page: "profiles", mode: "diff", service: a.service, endpoint: a.endpoint, base: a.baseCommit, target: a.targetCommit, from: String(from), to: String(to) },
        `Profile diff ${a.baseCommit} → ${a.targetCommit} →`,
      )
    : nav({ page: "profiles", service: a.service, endpoint: a.endpoint, from: String(from), to: String(to) }, "Profiles of this endpoint →");
  const culprits = section(
    "Culprit functions",
    a.culprits.length === 0
      ? empty("No function-level cause.", "The slice had too few profiled requests on one side; raise PROFILE_RATE.")
      : table(
          ["function", "call path", "base", "target", "added per request"],
          a.culprits.map((c) => [c.function, h("code", { class: "path" }, c.path), cost(c.before, a.unit), cost(c.after, a.unit), cost(c.added, a.unit)]),
          { id: "culprits" },
        ),
    a.explainedShare !== null ? h("p", {}, `These explain ${pct(a.explainedShare)} of the added cost.`) : null,
    h("p", { class: "links" }, diffLink),
  );
  const title = h("h1", {}, `${a.kind} alert: ${a.service} ${a.endpoint}`);
  return [
    h("p", {}, nav({ page: "alerts" }, "← all alerts")),
    title,
    lifecycle(a, found.events),
    section("What changed", facts, a.reason ? h("p", { class: "muted" }, a.reason) : null),
    chart,
    culprits,
  ];
}
