// Index versions of a group, newest first, each with the calibration it was published with: the two thresholds
// (same person, lookalike) with their 90 % intervals, how many genuine and impostor scores they rest on, their
// distributions, and the suspected label errors the calibration set aside. Versions built before a field existed
// show what they have.
import { api } from "./admin-api.js";
import { calibrationChart } from "./admin-chart.js";
import { date, groupPicker, h, live, num, tx } from "./admin-dom.js";
import { suspectPairs } from "./admin-suspects.js";
import { t } from "./i18n.js";

const PERCENTILES = ["p1", "p5", "p25", "p50", "p75", "p95", "p99"];

export async function renderVersions(view, { slug } = {}) {
  const groups = await api("/admin/groups");
  const group = groups.find((g) => g.slug === slug) ?? groups[0];
  const picker = groupPicker("versions-group", groups, group?.slug, (s) => `#/versions/${encodeURIComponent(s)}`);
  const list = h("div", { class: "versions", id: "versions-list" });
  view.replaceChildren(
    h("div", { class: "view-head" }, h("h1", { tabindex: "-1" }, tx("versions_title")), picker),
    h("p", { class: "lead" }, tx("versions_lead")),
    list,
  );
  if (!group) return list.replaceChildren(h("div", { class: "card empty" }, tx("groups_empty")));
  const base = `/admin/groups/${encodeURIComponent(group.slug)}`;
  const versions = await api(`${base}/versions`);
  // The suspect pairs name members by slug and id: their display names come from the group's member list.
  const names = new Map();
  if (versions.some((v) => v.suspect_pairs?.length)) {
    for (const member of await api(`${base}/members`)) names.set(member.id, member.name);
  }
  const empty = h("div", { class: "card empty" }, tx("versions_empty"));
  const cards = versions.map((v, index) => versionCard(v, { open: index === 0 || v.active, group: group.slug, names }));
  list.replaceChildren(...(versions.length ? cards : [empty]));
}

// A threshold with its 90 % interval under it, when the version has one.
function threshold(value, interval, className) {
  return [
    h("span", { class: className }, live(() => num(value, 3))),
    interval?.length === 2 &&
      h(
        "small",
        { class: "interval" },
        live(() => t("fig_interval", { low: num(interval[0], 3), high: num(interval[1], 3) })),
      ),
  ];
}

// The newest and the serving version show their charts; older ones keep them folded.
function versionCard(v, { open, group, names }) {
  const c = v.calibration ?? {};
  const stat = (key, value, name) =>
    h("div", { dataset: name && { figure: name } }, h("dt", {}, tx(key)), h("dd", {}, value));
  const lookalike = v.lookalike_threshold ?? c.lookalike_threshold;
  return h(
    "article",
    { class: `card version${v.active ? " active" : ""}`, dataset: { versionId: v.id } },
    h(
      "header",
      { class: "title-row" },
      h("h2", {}, live(() => `v${v.id}`)),
      v.active ? h("span", { class: "badge status-ok" }, tx("version_active")) : null,
      h("span", { class: "muted" }, live(() => date(v.created_at)), " · ", v.model_pack),
    ),
    h(
      "dl",
      { class: "figures" },
      stat("fig_threshold", threshold(v.threshold, v.threshold_interval, "threshold-value"), "same_person"),
      lookalike != null &&
        stat("fig_lookalike", threshold(lookalike, v.lookalike_interval, "lookalike-value"), "lookalike"),
      stat("fig_members", live(() => num(v.n_members))),
      stat("fig_faces", live(() => num(v.n_faces))),
      stat("fig_genuine", live(() => num(c.n_genuine ?? 0))),
      stat("fig_impostor", live(() => num(v.n_impostor ?? c.n_impostor ?? 0)), "impostor"),
      stat("fig_rejected", live(() => num(c.n_rejected ?? 0))),
      c.target_fmr != null && stat("fig_fmr", live(() => `${num(c.target_fmr * 100, 2)}%`)),
    ),
    v.suspect_pairs?.length ? suspectPairs(v.suspect_pairs, { group, names }) : null,
    c.genuine || c.impostor
      ? h(
          "details",
          { class: "calibration", open },
          h("summary", {}, tx("versions_calibration")),
          calibrationChart(c),
          percentileTable(c),
        )
      : h("p", { class: "muted" }, tx("versions_no_calibration")),
  );
}

function percentileTable(c) {
  const cell = (value) => h("td", { class: "num" }, value == null ? "—" : live(() => num(value, 3)));
  const row = (name) =>
    h("tr", {}, h("th", { scope: "row" }, tx(`chart_row_${name}`)), PERCENTILES.map((p) => cell(c[name]?.[p])));
  return h(
    "div",
    { class: "table-wrap percentiles" },
    h(
      "table",
      { class: "data" },
      h("caption", {}, tx("versions_percentiles")),
      h("thead", {}, h("tr", {}, h("td"), PERCENTILES.map((p) => h("th", { scope: "col", class: "num" }, p)))),
      h("tbody", {}, row("genuine"), row("impostor")),
    ),
  );
}
