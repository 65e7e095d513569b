// flame.ts — flame graphs with d3-flame-graph: one slice's profile, or the
// differential graph of two (base and target), coloured by self-cost delta.
import { select } from "d3-selection";
import flamegraph from "d3-flame-graph";
// The package does not export its CSS path, so it is taken from node_modules.
import "../../node_modules/d3-flame-graph/dist/d3-flamegraph.css";
import type { TreeNode } from "./api";

// FlameNode — d3-flame-graph's input (value is the frame's self width).
export interface FlameNode {
  name: string;
  key: string;
  value: number;
  children: FlameNode[];
  // Diff graphs only: the self cost on each side (already normalised).
  base?: number;
  target?: number;
  status?: "added" | "removed" | "grown" | "shrunk" | "same";
}

// fromTree() — a profile as flame nodes, self costs divided by `scale`.
export function fromTree(n: TreeNode, scale: number): FlameNode {
  return { name: n.name, key: n.key, value: n.self / scale, children: n.children.map((c) => fromTree(c, scale)) };
}

// DiffNode — one call path present in base, target or both.
interface Both {
  name: string;
  key: string;
  base?: TreeNode;
  target?: TreeNode;
}

function pair(base: TreeNode | undefined, target: TreeNode | undefined): Both[] {
  const out = new Map<string, Both>();
  for (const c of base?.children ?? []) out.set(c.key, { name: c.name, key: c.key, base: c });
  for (const c of target?.children ?? []) {
    const b = out.get(c.key);
    if (b) b.target = c;
    else out.set(c.key, { name: c.name, key: c.key, target: c });
  }
  return [...out.values()];
}

// diffTree() — base and target merged path by path. A frame's width is its
// target self cost (a removed frame keeps its base width so it can be seen);
// its status says how the self cost moved, and moves smaller than `minDelta`
// count as "same", so noise is not painted.
export function diffTree(
  base: TreeNode,
  target: TreeNode,
  scaleBase: number,
  scaleTarget: number,
  minDelta: number,
): FlameNode {
  const walk = (b: TreeNode | undefined, t: TreeNode | undefined, name: string, key: string): FlameNode => {
    const bs = b ? b.self / scaleBase : 0;
    const ts = t ? t.self / scaleTarget : 0;
    let status: FlameNode["status"] = "same";
    if (!b && key !== "") status = "added";
    else if (!t && key !== "") status = "removed";
    else if (ts - bs >= minDelta) status = "grown";
    else if (bs - ts >= minDelta) status = "shrunk";
    return {
      name,
      key,
      value: t ? ts : bs,
      base: bs,
      target: ts,
      status,
      children: pair(b, t).map((c) => walk(c.base, c.target, c.name, c.key)),
    };
  };
  return walk(base, target, "all", "");
}

// FunctionDelta — one function's self cost on both sides, summed over paths.
export interface FunctionDelta {
  key: string;
  name: string;
  base: number;
  target: number;
  delta: number;
  status: FlameNode["status"];
}

export function functionDeltas(root: FlameNode): FunctionDelta[] {
  const by = new Map<string, FunctionDelta>();
  const visit = (n: FlameNode) => {
    if (n.key !== "") {
      const d = by.get(n.key) ?? { key: n.key, name: n.name, base: 0, target: 0, delta: 0, status: n.status };
      d.base += n.base ?? 0;
      d.target += n.target ?? 0;
      d.delta = d.target - d.base;
      if (d.status !== n.status) d.status = d.base === 0 ? "added" : d.target === 0 ? "removed" : "grown";
      by.set(n.key, d);
    }
    n.children.forEach(visit);
  };
  visit(root);
  return [...by.values()];
}

export const DIFF_COLORS = {
  added: "#c51b7d", // a frame only the target has
  removed: "#1b9e77", // a frame only the base has
  grown: "#e34a33",
  shrunk: "#3182bd",
  same: "#d9d9d9",
};

// drawFlame() — a flame graph of `root` into a new element. `label` is a
// frame's tooltip; `diff` colours frames by their status.
export function drawFlame(root: FlameNode, opts: { label: (n: FlameNode) => string; diff: boolean }): HTMLElement {
  const box = document.createElement("div");
  box.className = "flame";
  const page = document.getElementById("page");
  const width = Math.max(480, Math.min(1400, (page?.clientWidth ?? 960) - 48));
  const chart = flamegraph()
    .width(width)
    .cellHeight(18)
    .selfValue(true)
    .sort((a: any, b: any) => b.value - a.value)
    .transitionDuration(0)
    .minFrameSize(1)
    .getName((d: any) => d.data.name)
    .setLabelHandler((d: any) => opts.label(d.data as FlameNode));
  if (opts.diff) chart.setColorMapper((d: any) => DIFF_COLORS[(d.data as FlameNode).status ?? "same"]);
  select(box).datum(root).call(chart);
  return box;
}
