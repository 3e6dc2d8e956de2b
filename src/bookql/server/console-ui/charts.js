// Charts with uPlot (npm, served from /console/lib). Each is a figure whose canvas is
// labelled as an image, with its numbers in a table beside it for those who cannot see it.
import uPlot from "../lib/uPlot.esm.js";
import { h } from "./dom.js";

const INK = "#0b5cad";
const FILL = "rgba(11, 92, 173, 0.35)";

function mount(caption, summary, build) {
  const area = h("div", { class: "chart", role: "img", "aria-label": summary });
  const figure = h("figure", {}, h("figcaption", {}, caption), area);
  // Drawn once the figure is in the page and has a width.
  requestAnimationFrame(() => {
    const width = Math.max(280, area.clientWidth || 560);
    build(area, width);
  });
  return figure;
}

function axes(xLabel, yLabel, xValues) {
  return [
    { label: xLabel, stroke: "#1b1f24", values: xValues },
    { label: yLabel, stroke: "#1b1f24" },
  ];
}

/** Bars: `labels[i]` under bar `i`, `counts[i]` its height. */
export function barChart(caption, summary, labels, counts, xLabel, yLabel) {
  const xs = labels.map((_, index) => index);
  return mount(caption, summary, (area, width) => {
    new uPlot(
      {
        width,
        height: 240,
        legend: { show: false },
        cursor: { show: false },
        scales: {
          x: { time: false, range: [-0.6, labels.length - 0.4] },
          y: { range: (_, __, max) => [0, Math.max(1, max) * 1.08] },
        },
        axes: axes(xLabel, yLabel, (_, ticks) => ticks.map((tick) => labels[tick] ?? "")),
        series: [
          {},
          {
            label: yLabel,
            stroke: INK,
            fill: FILL,
            paths: uPlot.paths.bars({ size: [0.85, 60] }),
            points: { show: false },
          },
        ],
      },
      [xs, counts],
      area,
    );
  });
}

/** A line over time: `times` in seconds since the epoch. */
export function lineChart(caption, summary, times, values, yLabel) {
  const single = times.every((time) => time === times[0]);
  return mount(caption, summary, (area, width) => {
    new uPlot(
      {
        width,
        height: 220,
        legend: { show: false },
        // One observation (most books): a day either side of it, not uPlot's thousand days.
        scales: { x: { time: true, range: single ? [times[0] - 86400, times[0] + 86400] : null } },
        axes: axes("Observed", yLabel),
        series: [{}, { label: yLabel, stroke: INK, width: 2, points: { show: true, size: 7 } }],
      },
      [times, values],
      area,
    );
  });
}

/** Points (x, y) and the diagonal y = x they would lie on if the predictions were exact. */
export function scatterChart(caption, summary, xs, ys, xLabel, yLabel) {
  const order = xs.map((_, index) => index).sort((a, b) => xs[a] - xs[b]);
  const x = order.map((index) => xs[index]);
  const y = order.map((index) => ys[index]);
  return mount(caption, summary, (area, width) => {
    new uPlot(
      {
        width,
        height: 320,
        legend: { show: false },
        scales: { x: { time: false } },
        axes: axes(xLabel, yLabel),
        series: [
          {},
          { label: yLabel, stroke: INK, paths: () => null, points: { show: true, size: 5, fill: FILL } },
          { label: "exact", stroke: "#4a5260", width: 1, dash: [4, 4], points: { show: false } },
        ],
      },
      [x, y, x],
      area,
    );
  });
}
