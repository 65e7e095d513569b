// state.ts — the URL is the whole state: `/?page=endpoint&service=..&since=6h`.
// Pages read it with param()/params() and change it with go(), which pushes
// a history entry and re-renders; reloading or sharing the URL restores it.

export type StateValue = string | string[] | undefined;
export type State = Record<string, StateValue>;

let onChange: () => void = () => {};

export function onNavigate(render: () => void): void {
  onChange = render;
  window.addEventListener("popstate", () => onChange());
  // Internal links navigate without a page load.
  document.addEventListener("click", (e) => {
    const a = (e.target as Element).closest?.("a[data-nav]") as HTMLAnchorElement | null;
    if (!a || e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
    e.preventDefault();
    history.pushState(null, "", a.getAttribute("href")!);
    onChange();
  });
}

export function param(name: string, fallback = ""): string {
  return new URLSearchParams(location.search).get(name) ?? fallback;
}

export function params(name: string): string[] {
  return new URLSearchParams(location.search).getAll(name);
}

// href() — the URL of a state (empty values are left out).
export function href(state: State): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(state)) {
    if (v === undefined || v === "") continue;
    for (const one of Array.isArray(v) ? v : [v]) if (one !== "") q.append(k, one);
  }
  const s = q.toString();
  return "/" + (s ? "?" + s : "");
}

// current() — the state in the URL, as an object to change and pass to go().
export function current(): State {
  const out: State = {};
  const q = new URLSearchParams(location.search);
  for (const k of new Set(q.keys())) {
    const all = q.getAll(k);
    out[k] = all.length > 1 ? all : all[0];
  }
  return out;
}

// go() — navigate to `state` (a new history entry, or replace the current).
export function go(state: State, replace = false): void {
  const url = href(state);
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  onChange();
}

// update() — the current state with `changes` applied, navigated to.
export function update(changes: State, replace = false): void {
  go({ ...current(), ...changes }, replace);
}
