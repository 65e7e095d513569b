// pages/profiles.ts — the flame graph of a slice (service, endpoint, commit,
// flag value, time range), or the differential flame graph of two commits or
// of two values of a flag (by=flag): absolute
// (cost per request, right for rollouts) or proportional (share of each
// side's total), a minimum delta below which frames stay grey, added and
// removed frames in colours of their own, and a sortable table of deltas.
import * as api from "../api";
import { cost, empty, h, nav, section } from "../dom";
import { diffTree, DIFF_COLORS, drawFlame, fromTree, functionDeltas, FunctionDelta } from "../flame";
import { current, param, update } from "../state";
import { range, rangeControl } from "./common";

// byFlag() — the diff compares two values of a flag, not two commits.
const byFlag = () => param("by") === "flag";

function sliceForm(): HTMLElement {
  const field = (name: string, placeholder: string) =>
    h("label", { class: "control" }, name + " ", h("input", { name, value: param(name), placeholder, size: 14 }));
  const diff = param("mode") === "diff";
  const sides = diff && byFlag() ? ["flag value A", "flag value B"] : ["commit A", "commit B"];
  return h(
    "form",
    {
      id: "slice",
      class: "controls",
      onsubmit: (e: Event) => {
        e.preventDefault();
        const data = new FormData(e.target as HTMLFormElement);
        const changes: Record<string, string | undefined> = {};
        for (const k of ["service", "endpoint", "commit", "flag", "flag_value", "base", "target"]) changes[k] = (data.get(k) as string | null)?.trim() || undefined;
        update(changes);
      },
    },
    field("service", "any"),
    field("endpoint", "any"),
    !diff || byFlag() ? field("commit", "any") : null,
    !diff || byFlag() ? field("flag", diff ? "name" : "any") : null,
    !diff ? field("flag_value", "value") : null,
    diff ? field("base", sides[0]) : null,
    diff ? field("target", sides[1]) : null,
    h("button", { type: "submit" }, "Show"),
  );
}

function modeControls(): HTMLElement {
  const diff = param("mode") === "diff";
  const select = (id: string, value: string, options: [string, string][], onchange: (v: string) => void) =>
    h("select", { id, onchange: (e: Event) => onchange((e.target as HTMLSelectElement).value) },
      ...options.map(([v, label]) => h("option", { value: v, selected: v === value }, label)));
  return h(
    "div",
    { class: "controls" },
    rangeControl(),
    h("label", { class: "control" }, "View ", select("mode", diff ? "diff" : "flame", [["flame", "flame graph"], ["diff", "diff base → target"]], (v) => update({ mode: v === "diff" ? "diff" : undefined }))),
    diff ? h("label", { class: "control" }, "Compare ", select("by", byFlag() ? "flag" : "commit", [["commit", "two commits"], ["flag", "two values of a flag"]], (v) => update({ by: v === "flag" ? "flag" : undefined, base: undefined, target: undefined }))) : null,
    diff ? h("label", { class: "control" }, "Scale ", select("norm", param("norm", "abs"), [["abs", "absolute, per request"], ["prop", "proportional, share of total"]], (v) => update({ norm: v }))) : null,
    diff ? h("label", { class: "control" }, "Min delta ", select("min", param("min", "1"), [["0", "0 %"], ["0.5", "0.5 %"], ["1", "1 %"], ["2", "2 %"], ["5", "5 %"]], (v) => update({ min: v }))) : null,
  );
}

// exportLinks() — the slice's profile as a file in each format the CLI and
// the Python package write; fetched with the token, then saved.
function exportLinks(slice: api.Slice, label: string): HTMLElement {
  const links = api.EXPORT_FORMATS.map((format) =>
    h(
      "button",
      {
        class: "link",
        "data-export": `${label}:${format}`,
        onclick: async () => {
          const { blob, name } = await api.exportTree(slice, format);
          const a = h("a", { href: URL.createObjectURL(blob), download: name }) as HTMLAnchorElement;
          a.click();
          setTimeout(() => URL.revokeObjectURL(a.href), 0);
        },
      },
      format,
    ),
  );
  return h("span", { class: "exports" }, `Export ${label}: `, ...links);
}

export async function profilesPage(): Promise<HTMLElement[]> {
  const head = [h("h1", {}, "Profiles"), section("Slice", sliceForm(), modeControls())];
  return param("mode") === "diff" ? head.concat(await diffView()) : head.concat(await flameView());
}

async function flameView(): Promise<HTMLElement[]> {
  const flag = param("flag");
  const slice = { ...range(), service: param("service"), endpoint: param("endpoint"), commit: param("commit"), ...(flag ? { flag, flag_value: param("flag_value") } : {}) };
  const t = await api.tree(slice);
  if (t.requests === 0)
    return [section("Flame graph", empty("No profiled requests in this slice.", "Widen the time range or the slice, or set PROFILE_RATE above 0 in the middleware settings (README: Settings)."))];
  const root = fromTree(t.root, t.requests);
  const total = t.root.total / t.requests;
  const graph = drawFlame(root, {
    diff: false,
    label: (n) => `${n.name} ${n.key ? "(" + n.key + ")" : ""}: self ${cost(n.value, t.unit)} per request`,
  });
  return [
    section(
      `Flame graph: ${t.requests} profiled requests, ${cost(total, t.unit)} per request`,
      h("p", { class: "muted" }, "Width is cost per request; hover a frame for its numbers, click to zoom."),
      graph,
      h("p", { class: "links" }, exportLinks(slice, "this profile")),
    ),
  ];
}

const COLUMNS: [keyof FunctionDelta, string][] = [
  ["name", "function"],
  ["base", "base self"],
  ["target", "target self"],
  ["delta", "delta"],
  ["status", "status"],
];

// diffSides() — the two slices compared: commits, or a flag's two values
// (within a commit when one is given).
function diffSides(base: string, target: string): { common: api.Slice; b: api.Slice; t: api.Slice; name: (side: string) => string } {
  const common = { ...range(), service: param("service"), endpoint: param("endpoint") };
  if (!byFlag()) return { common, b: { ...common, commit: base }, t: { ...common, commit: target }, name: (side) => `commit ${side}` };
  const flag = param("flag");
  const within = { ...common, commit: param("commit") };
  return { common: within, b: { ...within, flag, flag_value: base }, t: { ...within, flag, flag_value: target }, name: (side) => `${flag}=${side}` };
}

async function diffView(): Promise<HTMLElement[]> {
  const base = param("base");
  const target = param("target");
  if (byFlag() && !param("flag")) return [section("Diff", empty("Name the flag whose values to compare.", "Fill flag, then its base value (e.g. off) and target value (e.g. on)."))];
  if (!base || !target) {
    if (byFlag()) return [section("Diff", empty(`Pick the two values of ${param("flag")} to compare.`, "Fill base (e.g. off) and target (e.g. on) above."))];
    const deploys = await api.deploys(param("service") || undefined);
    return [section("Diff", empty("Pick the two commits to compare.", "Fill base and target above." + (deploys.length ? " Commits seen: " + [...new Set(deploys.map((d) => d.commit))].join(", ") : "")))];
  }
  const sides = diffSides(base, target);
  const [b, t] = await Promise.all([api.tree(sides.b), api.tree(sides.t)]);
  for (const [side, tree] of [[base, b], [target, t]] as const)
    if (tree.requests === 0) return [section("Diff", empty(`No profiled requests of ${sides.name(side)} in this slice.`, byFlag() ? "Widen the time range, or check the flag's values (the endpoint page breaks requests down by flag)." : "Widen the time range, or check the commit (the endpoint page lists the commits serving)."))];
  const prop = param("norm", "abs") === "prop";
  const scaleBase = prop ? b.root.total : b.requests;
  const scaleTarget = prop ? t.root.total : t.requests;
  const minPct = Number(param("min", "1"));
  // The threshold is a share of the target's total, per request or of 1.
  const minDelta = (minPct / 100) * (t.root.total / scaleTarget);
  const root = diffTree(b.root, t.root, scaleBase, scaleTarget, minDelta);
  const show = (v: number) => (prop ? (v * 100).toFixed(2) + " %" : cost(v, t.unit));
  const graph = drawFlame(root, {
    diff: true,
    label: (n) => `${n.name}${n.key ? " (" + n.key + ")" : ""}: self ${show(n.base ?? 0)} → ${show(n.target ?? 0)} (${n.status})`,
  });
  const legend = h("p", { class: "legend" }, ...Object.entries(DIFF_COLORS).map(([k, c]) => h("span", {}, h("i", { style: `background:${c}` }), k)));

  const sortKey = (param("sort", "delta") as keyof FunctionDelta) || "delta";
  const desc = param("dir", "desc") !== "asc";
  const deltas = functionDeltas(root).filter((d) => d.base > 0 || d.target > 0);
  deltas.sort((x, y) => {
    const p = x[sortKey] ?? 0;
    const q = y[sortKey] ?? 0;
    const c = typeof p === "number" && typeof q === "number" ? p - q : String(p).localeCompare(String(q));
    return desc ? -c : c;
  });
  const header = COLUMNS.map(([k, label]) =>
    h("th", { "data-sort": k }, nav({ ...current(), sort: k, dir: k === sortKey && desc ? "asc" : "desc" }, label + (k === sortKey ? (desc ? " ▼" : " ▲") : ""))),
  );
  const deltaTable = h(
    "table",
    { id: "deltas" },
    h("thead", {}, h("tr", {}, ...header)),
    h("tbody", {}, ...deltas.slice(0, 100).map((d) =>
      h("tr", { class: d.status ?? "" },
        h("td", { title: d.key }, d.name), h("td", {}, show(d.base)), h("td", {}, show(d.target)),
        h("td", { class: "delta" }, (d.delta > 0 ? "+" : "") + show(d.delta)), h("td", {}, h("span", { class: "status", style: `background:${DIFF_COLORS[d.status ?? "same"]}` }, d.status ?? ""))))),
  );
  return [
    section(
      `Diff ${sides.name(base)} → ${sides.name(target)}: ${b.requests} vs ${t.requests} profiled requests, ${prop ? "proportional" : "per request"}`,
      h("p", { class: "muted" }, `Width: target self cost (removed frames keep their base width). Colour: how the self cost moved; moves under ${minPct} % of the target's total stay grey.`),
      legend,
      graph,
      h("p", { class: "links" }, exportLinks(sides.b, "base"), " · ", exportLinks(sides.t, "target"), " · ", nav({ page: "profiles", service: param("service"), endpoint: param("endpoint"), commit: sides.t.commit, flag: sides.t.flag, flag_value: sides.t.flag_value, since: param("since") || undefined, from: param("from") || undefined, to: param("to") || undefined }, "target's flame graph")),
    ),
    section("Functions by self-cost delta", deltaTable),
  ];
}
