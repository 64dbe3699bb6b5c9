// Index versions of a group, newest first, each with the calibration it was published with: the threshold,
// how many genuine and impostor scores it rests on, and their distributions.
import { api } from "./admin-api.js";
import { calibrationChart } from "./admin-chart.js";
import { date, groupPicker, h, live, num, tx } from "./admin-dom.js";

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
  const versions = await api(`/admin/groups/${encodeURIComponent(group.slug)}/versions`);
  const empty = h("div", { class: "card empty" }, tx("versions_empty"));
  list.replaceChildren(...(versions.length ? versions.map(versionCard) : [empty]));
}

// The newest and the serving version show their charts; older ones keep them folded.
function versionCard(v, index) {
  const c = v.calibration ?? {};
  const stat = (key, value) => h("div", {}, h("dt", {}, tx(key)), h("dd", {}, value));
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
      stat("fig_threshold", h("span", { class: "threshold-value" }, live(() => num(v.threshold, 3)))),
      stat("fig_members", live(() => num(v.n_members))),
      stat("fig_faces", live(() => num(v.n_faces))),
      stat("fig_genuine", live(() => num(c.n_genuine ?? 0))),
      stat("fig_impostor", live(() => num(c.n_impostor ?? 0))),
      stat("fig_rejected", live(() => num(c.n_rejected ?? 0))),
      c.target_fmr != null && stat("fig_fmr", live(() => `${num(c.target_fmr * 100, 2)}%`)),
    ),
    c.genuine || c.impostor
      ? h(
          "details",
          { class: "calibration", open: index === 0 || v.active },
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
