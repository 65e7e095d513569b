// dom.ts — small DOM and text helpers shared by the pages.
import { href, State } from "./state";

type Child = Node | string | number | null | undefined | false;

// h() — an element with attributes (on* are listeners) and children.
export function h(tag: string, attrs: Record<string, any> = {}, ...children: (Child | Child[])[]): HTMLElement {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

// nav() — an internal link to a state.
export function nav(state: State, ...children: Child[]): HTMLElement {
  return h("a", { href: href(state), "data-nav": true }, ...children);
}

export function section(title: string, ...children: (Child | Child[])[]): HTMLElement {
  return h("section", { class: "card" }, h("h2", {}, title), ...children);
}

// empty() — an empty state: what is missing and what to do about it.
export function empty(what: string, todo: string): HTMLElement {
  return h("div", { class: "empty" }, h("strong", {}, what), h("p", {}, todo));
}

export function table(head: string[], rows: (Child | Child[])[][], attrs: Record<string, any> = {}): HTMLElement {
  return h(
    "table",
    attrs,
    h("thead", {}, h("tr", {}, ...head.map((c) => h("th", {}, c)))),
    h("tbody", {}, ...rows.map((r) => h("tr", {}, ...r.map((c) => h("td", {}, c))))),
  );
}

const SI = ["", "k", "M", "G", "T", "P"];

// num() — a count with an SI suffix: 1234567 -> "1.23 M".
export function num(v: number | null | undefined): string {
  if (v === null || v === undefined || !isFinite(v)) return "–";
  let i = 0;
  let x = Math.abs(v);
  while (x >= 1000 && i < SI.length - 1) {
    x /= 1000;
    i++;
  }
  const digits = x >= 100 ? 0 : x >= 10 ? 1 : 2;
  return (v < 0 ? "-" : "") + x.toFixed(i === 0 && Number.isInteger(x) ? 0 : digits) + (SI[i] ? " " + SI[i] : "");
}

// cost() — a cost in its unit: instructions as a count, cpu_ns as ms.
export function cost(v: number | null | undefined, unit: string): string {
  if (v === null || v === undefined || !isFinite(v)) return "–";
  if (unit === "cpu_ns") return Math.abs(v) >= 1e9 ? num(v / 1e9) + " s" : (v / 1e6).toFixed(Math.abs(v) >= 1e8 ? 0 : 2) + " ms";
  return num(v) + (unit === "instructions" ? " instr" : unit ? " " + unit : "");
}

export function unitName(unit: string): string {
  return unit === "cpu_ns" ? "CPU ms" : unit === "instructions" ? "instructions" : unit;
}

export function pct(v: number | null | undefined): string {
  if (v === null || v === undefined || !isFinite(v)) return "–";
  return (v * 100).toFixed(1) + " %";
}

export function time(s: number): string {
  return new Date(s * 1000).toISOString().replace("T", " ").slice(0, 16) + "Z";
}
