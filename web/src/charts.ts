// charts.ts — time series with uPlot: one x axis in unix seconds, a few
// series, and vertical markers (commit rollouts, flag changes) on the axis.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { h } from "./dom";

export interface Series {
  label: string;
  values: (number | null)[];
  color: string;
}

export interface Marker {
  x: number; // unix seconds
  label: string;
  color: string;
}

export const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

function chartWidth(): number {
  const page = document.getElementById("page");
  return Math.max(480, Math.min(1200, (page?.clientWidth ?? 960) - 48));
}

// lineChart() — a chart in a new element (append it, then it draws).
// `fmt` formats the y values on the axis and in the legend.
export function lineChart(
  xs: number[],
  series: Series[],
  opts: { title: string; fmt: (v: number) => string; markers?: Marker[]; height?: number },
): HTMLElement {
  const box = h("div", { class: "chart", "data-chart": opts.title });
  const markers = opts.markers ?? [];
  const plot: uPlot.Options = {
    title: opts.title,
    // UTC on the axis, as in every table (the fleet's day is UTC hours).
    tzDate: (ts: number) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),
    width: chartWidth(),
    height: opts.height ?? 260,
    series: [
      {},
      ...series.map((s) => ({
        label: s.label,
        stroke: s.color,
        width: 1.5,
        spanGaps: false,
        value: (_u: uPlot, v: number | null) => (v === null ? "–" : opts.fmt(v)),
      })),
    ],
    axes: [{}, { size: 110, values: (_u: uPlot, vals: number[]) => vals.map((v) => opts.fmt(v)) }],
    hooks: {
      draw: [
        (u: uPlot) => {
          const ctx = u.ctx;
          ctx.save();
          ctx.font = `${11 * devicePixelRatio}px sans-serif`;
          // uPlot leaves its axes' alignment on the context.
          ctx.textAlign = "left";
          ctx.textBaseline = "top";
          for (const m of markers) {
            const x = Math.round(u.valToPos(m.x, "x", true));
            if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
            ctx.strokeStyle = m.color;
            ctx.fillStyle = m.color;
            ctx.setLineDash([5, 3]);
            ctx.lineWidth = devicePixelRatio;
            ctx.beginPath();
            ctx.moveTo(x, u.bbox.top);
            ctx.lineTo(x, u.bbox.top + u.bbox.height);
            ctx.stroke();
            ctx.fillText(m.label, x + 4 * devicePixelRatio, u.bbox.top + 2 * devicePixelRatio);
          }
          ctx.restore();
        },
      ],
    },
  };
  // Drawn once the element is in the document, so it has its final size.
  queueMicrotask(() => new uPlot(plot, [xs, ...series.map((s) => s.values)] as uPlot.AlignedData, box));
  return box;
}
