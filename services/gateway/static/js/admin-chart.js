// The calibration chart of an index version: genuine scores (a member against their own photos) and impostor
// scores (a member against everyone else) on one similarity axis, with the threshold that separates them.
// Bars when the version stored histograms; otherwise the percentiles every version has, as box plots.
import { h, live, liveAttr, num, s, tx } from "./admin-dom.js";
import { t } from "./i18n.js";

const W = 640;
const H = 220;
const M = { left: 44, right: 14, top: 22, bottom: 30 };
const SERIES = ["impostor", "genuine"]; // impostor first: the genuine bars are drawn over it where they meet

export function calibrationChart(calibration) {
  const hist = calibration.histogram;
  const drawn = hist?.edges?.length > 1 ? histogram(calibration, hist) : boxPlots(calibration);
  return h(
    "figure",
    { class: "chart", dataset: { kind: drawn.kind } },
    drawn.svg,
    h(
      "figcaption",
      { class: "legend" },
      SERIES.map((name) =>
        h(
          "span",
          { class: `key ${name}` },
          h("i", { "aria-hidden": "true" }),
          live(() => t(`chart_${name}`, { n: num(calibration[`n_${name}`] ?? 0) })),
        ),
      ).reverse(),
      h("span", { class: "key threshold" }, h("i", { "aria-hidden": "true" }), tx("chart_threshold")),
      drawn.kind === "percentiles" ? h("span", { class: "muted" }, tx("chart_no_histogram")) : null,
    ),
  );
}

function frame(lo, hi, calibration) {
  const x = (v) => M.left + ((v - lo) / (hi - lo)) * (W - M.left - M.right);
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "histogram", role: "img" });
  liveAttr(svg, "aria-label", () =>
    t("chart_label", {
      genuine: num(calibration.genuine?.p50 ?? 0, 2),
      impostor: num(calibration.impostor?.p50 ?? 0, 2),
      threshold: num(calibration.threshold, 3),
    }),
  );
  // x axis: ticks every 0.1 or 0.2 of similarity, whichever keeps them apart; counted in whole steps (adding 0.1
  // up drifts) and -0 printed as 0.
  const step = hi - lo > 1 ? 0.2 : 0.1;
  const base = H - M.bottom;
  const axis = s("g", { class: "axis" }, s("line", { x1: M.left, x2: W - M.right, y1: base, y2: base }));
  for (let i = Math.ceil(lo / step - 1e-9); i * step <= hi + 1e-9; i++) {
    const v = i * step;
    axis.append(
      s("line", { x1: x(v), x2: x(v), y1: base, y2: base + 4 }),
      s("text", { x: x(v), y: base + 16, "text-anchor": "middle" }, num(v === 0 ? 0 : v, 1)),
    );
  }
  const title = { x: W - M.right, y: H - 2, "text-anchor": "end", class: "axis-title" };
  axis.append(s("text", title, tx("chart_similarity")));
  svg.append(axis);
  return { svg, x };
}

function thresholdMark(svg, x, threshold) {
  const at = x(threshold);
  // The label sits on whichever side of the line has room.
  const right = at < W - M.right - 110;
  svg.append(
    s(
      "g",
      { class: "threshold" },
      s("line", { x1: at, x2: at, y1: M.top - 6, y2: H - M.bottom }),
      s(
        "text",
        { x: right ? at + 5 : at - 5, y: M.top, "text-anchor": right ? "start" : "end" },
        live(() => t("chart_threshold_at", { value: num(threshold, 3) })),
      ),
    ),
  );
}

function histogram(calibration, hist) {
  const { edges } = hist;
  // Zoom on the bins that hold scores (and the threshold), one empty bin either side.
  const used = edges.slice(0, -1).map((_, i) => SERIES.some((name) => hist[name]?.[i] > 0));
  const first = Math.max(0, used.indexOf(true) - 1);
  const last = Math.min(edges.length - 1, used.lastIndexOf(true) + 2);
  const lo = Math.min(edges[first], calibration.threshold);
  const hi = Math.max(edges[last], calibration.threshold);
  const { svg, x } = frame(lo, hi, calibration);
  // Shares, not counts: the two sets differ in size and their shapes are what matters.
  const shares = Object.fromEntries(
    SERIES.map((name) => {
      const counts = hist[name] ?? [];
      const total = counts.reduce((a, b) => a + b, 0) || 1;
      return [name, counts.map((c) => c / total)];
    }),
  );
  const top = Math.max(...SERIES.flatMap((name) => shares[name]), 0.01);
  const y = (share) => H - M.bottom - (share / top) * (H - M.top - M.bottom);
  const grid = s("g", { class: "grid" });
  for (const share of [top / 2, top]) {
    grid.append(
      s("line", { x1: M.left, x2: W - M.right, y1: y(share), y2: y(share) }),
      s("text", { x: M.left - 6, y: y(share) + 4, "text-anchor": "end" }, `${num(share * 100)}%`),
    );
  }
  svg.append(grid);
  for (const name of SERIES) {
    const bars = s("g", { class: `bars ${name}` });
    shares[name].forEach((share, i) => {
      if (!share || i < first || i >= last) return;
      const x0 = x(edges[i]);
      const width = Math.max(1, x(edges[i + 1]) - x0 - 1);
      bars.append(
        s(
          "rect",
          { class: "bar", x: x0, y: y(share), width, height: H - M.bottom - y(share) },
          s("title", {}, `${num(edges[i], 2)}–${num(edges[i + 1], 2)}: ${hist[name][i]}`),
        ),
      );
    });
    svg.append(bars);
  }
  thresholdMark(svg, x, calibration.threshold);
  return { kind: "histogram", svg };
}

// p1-p99 whiskers, p25-p75 boxes, the median as a line: what an old version without histograms still tells.
function boxPlots(calibration) {
  const values = SERIES.flatMap((name) => Object.values(calibration[name] ?? {}));
  const lo = Math.max(-1, Math.min(...values, calibration.threshold) - 0.05);
  const hi = Math.min(1, Math.max(...values, calibration.threshold) + 0.05);
  const { svg, x } = frame(lo, hi, calibration);
  SERIES.forEach((name, row) => {
    const p = calibration[name];
    if (!p) return;
    const mid = M.top + 40 + row * 70;
    svg.append(
      s(
        "g",
        { class: `bars ${name}` },
        s("text", { x: M.left, y: mid - 22, class: "row-title" }, tx(`chart_row_${name}`)),
        s("line", { class: "whisker", x1: x(p.p1), x2: x(p.p99), y1: mid, y2: mid }),
        s("rect", { class: "bar", x: x(p.p25), y: mid - 12, width: Math.max(1, x(p.p75) - x(p.p25)), height: 24 }),
        s("line", { class: "median", x1: x(p.p50), x2: x(p.p50), y1: mid - 12, y2: mid + 12 }),
      ),
    );
  });
  thresholdMark(svg, x, calibration.threshold);
  return { kind: "percentiles", svg };
}
