// main.ts — the dashboard's entry: token, navigation bar, and the router that
// draws the page the URL names (?page=overview|endpoint|explorer|alerts|profiles).
import "./style.css";
import { ApiError, setToken, takeTokenFromFragment } from "./api";
import { h } from "./dom";
import { onNavigate, param, href } from "./state";
import { overviewPage } from "./pages/overview";
import { endpointPage } from "./pages/endpoint";
import { explorerPage } from "./pages/explorer";
import { alertsPage } from "./pages/alerts";
import { profilesPage } from "./pages/profiles";

const PAGES: Record<string, { title: string; render: () => Promise<HTMLElement[]> }> = {
  overview: { title: "Overview", render: overviewPage },
  endpoint: { title: "Endpoint", render: endpointPage },
  explorer: { title: "Explorer", render: explorerPage },
  alerts: { title: "Alerts", render: alertsPage },
  profiles: { title: "Profiles", render: profilesPage },
};

function drawNav(active: string): void {
  const navEl = document.getElementById("nav")!;
  navEl.replaceChildren(
    ...Object.entries(PAGES)
      .filter(([name]) => name !== "endpoint" || active === "endpoint")
      .map(([name, p]) =>
        h("a", { href: href({ page: name, since: param("since") || undefined }), "data-nav": true, class: name === active ? "active" : "" }, p.title),
      ),
  );
}

function tokenForm(message: string): HTMLElement {
  const input = h("input", { type: "password", id: "token", placeholder: "bearer token", size: 40 }) as HTMLInputElement;
  return h(
    "form",
    {
      class: "card token",
      onsubmit: (e: Event) => {
        e.preventDefault();
        setToken(input.value.trim());
        render();
      },
    },
    h("h2", {}, "This server needs its token"),
    h("p", {}, message),
    h("p", { class: "muted" }, "It is kept for this tab only (sessionStorage). A link ending in #token=… signs in too."),
    input,
    " ",
    h("button", { type: "submit" }, "Open"),
  );
}

let generation = 0;

async function render(): Promise<void> {
  const mine = ++generation;
  const name = PAGES[param("page")] ? param("page") : "overview";
  drawNav(name);
  document.title = `cpuledger · ${PAGES[name].title}`;
  const page = document.getElementById("page")!;
  page.setAttribute("data-page", name);
  page.setAttribute("aria-busy", "true");
  let children: HTMLElement[];
  try {
    children = await PAGES[name].render();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) children = [tokenForm(e.message)];
    else children = [h("div", { class: "card error" }, h("strong", {}, "The server said: "), String((e as Error).message ?? e))];
  }
  if (mine !== generation) return; // a newer navigation won
  page.replaceChildren(...children);
  page.setAttribute("aria-busy", "false");
}

takeTokenFromFragment();
onNavigate(render);
render();
