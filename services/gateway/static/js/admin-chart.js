// The calibration chart of an index version, one panel per threshold, each with its 90 % interval shaded:
// - same person, on the similarity axis: genuine scores (a member against their own photos) and impostor scores (a
//   member against everyone else), bars when the version stored histograms, else the percentiles every version
//   has, as box plots;
// - lookalike, on the lookalike-score axis: a member's own photos and the other members, scored as a stranger's
//   face is. Versions built before the three verdicts have no such histogram and show the first panel only.
import { h, live, liveAttr, num, s, tx } from "./admin-dom.js";
import { t } from "./i18n.js";

const W = 640;
const H = 220;
const M = { left: 44, right: 14, top: 22, bottom: 30 };
const SERIES = ["impostor", "genuine"]; // impostor first: the genuine bars are drawn over it where they meet

const sum = (counts = []) => counts.reduce((a, b) => a + b, 0);

// What each panel draws, from the version's calibration.
function panels(c) {
  const samePerson = {
    axis: "similarity",
    threshold: c.threshold,
    interval: c.threshold_interval,
    hist: c.histogram,
    percentiles: c,
    count: (name) => c[`n_${name}`] ?? 0,
    label: () =>
      t("chart_label", {
        genuine: num(c.genuine?.p50 ?? 0, 2),
        impostor: num(c.impostor?.p50 ?? 0, 2),
        threshold: num(c.threshold, 3),
      }),
  };
  const look = c.histogram?.lookalike;
  if (!(look?.edges?.length > 1) || c.lookalike_threshold == null) return [samePerson];
  const lookalike = {
    axis: "lookalike",
    threshold: c.lookalike_threshold,
    interval: c.lookalike_interval,
    hist: look,
    count: (name) => sum(look[name]),
    label: () =>
      t("chart_label_lookalike", { impostor: num(c.lookalike?.p50 ?? 0, 2), threshold: num(c.lookalike_threshold, 3) }),
  };
  return [samePerson, lookalike];
}

export function calibrationChart(calibration) {
  const drawn = panels(calibration).map((panel) => {
    const chart = panel.hist?.edges?.length > 1 ? histogram(panel) : boxPlots(panel);
    return { panel, ...chart };
  });
  return h(
    "figure",
    { class: "chart", dataset: { kind: drawn[0].kind, panels: drawn.length } },
    drawn.map(({ panel, kind, svg }) =>
      h(
        "div",
        { class: "chart-panel", dataset: { axis: panel.axis } },
        h("h3", { class: "panel-title" }, tx(`chart_panel_${panel.axis}`)),
        svg,
        legend(panel, kind),
      ),
    ),
  );
}

function legend(panel, kind) {
  const key = (name, text) => h("span", { class: `key ${name}` }, h("i", { "aria-hidden": "true" }), text);
  return h(
    "p",
    { class: "legend" },
    SERIES.map((name) =>
      key(name, live(() => t(`chart_${panel.axis}_${name}`, { n: num(panel.count(name)) }))),
    ).reverse(),
    key("threshold", tx(`chart_threshold_${panel.axis}`)),
    panel.interval?.length === 2 ? key("interval", tx("chart_interval")) : null,
    kind === "percentiles" ? h("span", { class: "muted" }, tx("chart_no_histogram")) : null,
  );
}

function frame(lo, hi, panel) {
  const x = (v) => M.left + ((v - lo) / (hi - lo)) * (W - M.left - M.right);
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "histogram", role: "img" });
  liveAttr(svg, "aria-label", panel.label);
  // x axis: ticks every 0.1 or 0.2, whichever keeps them apart; counted in whole steps (adding 0.1 up drifts) and
  // -0 printed as 0.
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
  axis.append(s("text", title, tx(`chart_axis_${panel.axis}`)));
  svg.append(axis);
  return { svg, x };
}

// The axis range: what the scores need, widened to hold the threshold and its interval.
function span(lo, hi, panel) {
  const marks = [panel.threshold, ...(panel.interval ?? [])];
  return [Math.min(lo, ...marks), Math.max(hi, ...marks)];
}

// The threshold as a dashed line over its 90 % interval, shaded, drawn under the bars.
function intervalBand(svg, x, panel) {
  if (panel.interval?.length !== 2) return;
  const [low, high] = panel.interval;
  svg.append(
    s(
      "rect",
      {
        class: "interval",
        x: x(low),
        y: M.top - 6,
        width: Math.max(2, x(high) - x(low)),
        height: H - M.bottom - M.top + 6,
      },
      s("title", {}, live(() => t("chart_interval_range", { low: num(low, 3), high: num(high, 3) }))),
    ),
  );
}

function thresholdMark(svg, x, panel) {
  const at = x(panel.threshold);
  // The label sits on whichever side of the line has room.
  const right = at < W - M.right - 130;
  svg.append(
    s(
      "g",
      { class: "threshold", dataset: { axis: panel.axis } },
      s("line", { x1: at, x2: at, y1: M.top - 6, y2: H - M.bottom }),
      s(
        "text",
        { x: right ? at + 5 : at - 5, y: M.top, "text-anchor": right ? "start" : "end" },
        live(() => t(`chart_threshold_${panel.axis}_at`, { value: num(panel.threshold, 3) })),
      ),
    ),
  );
}

function histogram(panel) {
  const { hist } = panel;
  const { edges } = hist;
  // Zoom on the bins that hold scores (and the threshold), one empty bin either side.
  const used = edges.slice(0, -1).map((_, i) => SERIES.some((name) => hist[name]?.[i] > 0));
  const first = Math.max(0, used.indexOf(true) - 1);
  const last = Math.min(edges.length - 1, used.lastIndexOf(true) + 2);
  const [lo, hi] = span(edges[first], edges[last], panel);
  const { svg, x } = frame(lo, hi, panel);
  // Shares, not counts: the two sets differ in size and their shapes are what matters.
  const shares = Object.fromEntries(
    SERIES.map((name) => {
      const counts = hist[name] ?? [];
      const total = sum(counts) || 1;
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
  intervalBand(svg, x, panel);
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
  thresholdMark(svg, x, panel);
  return { kind: "histogram", svg };
}

// p1-p99 whiskers, p25-p75 boxes, the median as a line: what an old version without histograms still tells.
function boxPlots(panel) {
  const c = panel.percentiles;
  const values = SERIES.flatMap((name) => Object.values(c[name] ?? {}));
  const [lo, hi] = span(Math.min(...values) - 0.05, Math.max(...values) + 0.05, panel);
  const { svg, x } = frame(Math.max(-1, lo), Math.min(1, hi), panel);
  intervalBand(svg, x, panel);
  SERIES.forEach((name, row) => {
    const p = c[name];
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
  thresholdMark(svg, x, panel);
  return { kind: "percentiles", svg };
}
