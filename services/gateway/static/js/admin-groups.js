// The groups view: every group, one group's figures and members with their photo counts, the forms that add a
// group or a member, and the buttons that re-index or scrape the whole group.
import { api } from "./admin-api.js";
import { act, attr, field, h, live, num, photoChips, slugify, tx } from "./admin-dom.js";
import { jobCard } from "./admin-jobs.js";
import { t } from "./i18n.js";

const enc = encodeURIComponent;

export async function renderGroups(view, { slug } = {}) {
  const groups = await api("/admin/groups");
  const current = groups.find((g) => g.slug === slug) ?? groups[0];
  const detail = h("section", { class: "group-detail" });
  view.replaceChildren(
    h("div", { class: "view-head" }, h("h1", { tabindex: "-1" }, tx("groups_title"))),
    h(
      "div",
      { class: "split" },
      h("aside", { class: "card group-list" }, groupList(groups, current), newGroupForm(groups.length > 0)),
      detail,
    ),
  );
  if (current) await renderGroup(detail, current);
  else detail.replaceChildren(h("div", { class: "card empty" }, tx("groups_empty")));
}

function groupList(groups, current) {
  const links = groups.map((g) =>
    h(
      "li",
      {},
      h(
        "a",
        { href: `#/groups/${enc(g.slug)}`, "aria-current": g === current ? "page" : null, dataset: { slug: g.slug } },
        h("span", { class: "group-name" }, g.name),
        h("span", { class: "muted" }, live(() => t("group_line", { slug: g.slug, n: num(g.members) }))),
      ),
    ),
  );
  return attr(h("nav", {}, h("ul", { class: "group-links" }, links)), "aria-label", "groups_title");
}

// Name and slug inputs of a new group or member: the slug follows the name until the admin types their own.
function nameAndSlug(prefix) {
  const name = h("input", { id: `${prefix}-name`, name: "name", required: true, maxlength: 200, autocomplete: "off" });
  const slug = h("input", {
    id: `${prefix}-slug`,
    name: "slug",
    required: true,
    pattern: "[a-z0-9][a-z0-9_\\-]{0,63}",
    autocomplete: "off",
    spellcheck: "false",
  });
  let edited = false;
  slug.addEventListener("input", () => (edited = slug.value !== ""));
  name.addEventListener("input", () => {
    if (!edited) slug.value = slugify(name.value);
  });
  return {
    fields: [field(`${prefix}-name`, "field_name", name), field(`${prefix}-slug`, "field_slug", slug, "slug_hint")],
    value: () => ({ slug: slug.value, name: name.value.trim() }),
    name,
  };
}

// Created, the new thing is opened at `target(made)`.
function createForm(prefix, path, submitKey, target) {
  const slot = h("p", { class: "message", role: "alert" });
  const inputs = nameAndSlug(prefix);
  const submit = h("button", { type: "submit" }, tx(submitKey));
  const form = h("form", { id: prefix }, h("div", { class: "row" }, inputs.fields, submit), slot);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    act(submit, slot, async () => {
      location.hash = target(await api(path, { method: "POST", json: inputs.value() }));
    });
  });
  return { form, name: inputs.name };
}

function newGroupForm(hasGroups) {
  const { form } = createForm("new-group", "/admin/groups", "group_add", (made) => `#/groups/${enc(made.slug)}`);
  // Folded while there are groups: creating one is rare next to working in one.
  return h("details", { class: "new-group", open: !hasGroups }, h("summary", {}, tx("group_new")), form);
}

function newMemberForm(group) {
  const path = `/admin/groups/${enc(group.slug)}/members`;
  // The next thing an admin does with a new member is give them photos: their page opens.
  const { form, name } = createForm("new-member", path, "member_add", (made) => `#/member/${made.id}`);
  attr(name, "placeholder", "member_name_example");
  return h("section", { class: "card inline-form" }, h("h3", {}, tx("member_new")), form);
}

async function renderGroup(detail, group) {
  const slot = h("p", { class: "message", role: "alert" });
  const jobs = h("div", { class: "jobs" });
  const members = h("div", { class: "table-wrap" });
  const refresh = () => loadMembers(members, group);
  const button = (id, key, kind, path, extra = {}) => {
    const control = h("button", { type: "button", id, ...extra }, tx(key));
    control.addEventListener("click", () =>
      act(control, slot, async () => {
        const accepted = await api(path, { method: "POST", json: { group: group.slug } });
        jobs.prepend(jobCard(accepted.job_id, kind, { onFinish: refresh }));
      }),
    );
    return control;
  };
  detail.replaceChildren(
    h(
      "div",
      { class: "card group-head", dataset: { slug: group.slug } },
      h("div", { class: "title-row" }, h("h2", {}, group.name), h("code", {}, group.slug)),
      h(
        "dl",
        { class: "figures" },
        figure("fig_members", num(group.members)),
        figure("fig_version", group.index_version ? `v${group.index_version}` : "—"),
        figure("fig_threshold", group.threshold == null ? "—" : num(group.threshold, 3)),
      ),
      photoChips(group.photos),
      h(
        "div",
        { class: "actions" },
        button("reindex", "group_reindex", "reindex", "/admin/reindex"),
        button("scrape-group", "group_scrape", "scrape", "/admin/scrape", { class: "secondary" }),
        h("a", { class: "button-link", href: `#/versions/${enc(group.slug)}` }, tx("group_versions")),
      ),
      slot,
      jobs,
    ),
    h("section", { class: "card members-card" }, h("h3", {}, tx("members_title")), members),
    newMemberForm(group),
  );
  await refresh();
}

function figure(labelKey, value) {
  return h("div", {}, h("dt", {}, tx(labelKey)), h("dd", {}, value));
}

async function loadMembers(box, group) {
  const rows = await api(`/admin/groups/${enc(group.slug)}/members`);
  // A phone shows names and photo counts only.
  const columns = [["col_name"], ["col_slug", "wide-only"], ["col_state", "wide-only"], ["col_photos"]];
  const head = columns.map(([key, cls]) => h("th", { scope: "col", class: cls }, tx(key)));
  const body = rows.length
    ? rows.map(memberRow)
    : [h("tr", {}, h("td", { colspan: columns.length, class: "empty" }, tx("members_empty")))];
  box.replaceChildren(h("table", { class: "data members" }, h("thead", {}, h("tr", {}, head)), h("tbody", {}, body)));
}

function memberRow(m) {
  const state = tx(m.active ? "active" : "inactive");
  return h(
    "tr",
    { dataset: { memberId: m.id, slug: m.slug } },
    h(
      "th",
      { scope: "row" },
      h("a", { href: `#/member/${m.id}` }, m.name),
      m.meta?.name_ja ? h("span", { class: "alt-name muted", lang: "ja" }, m.meta.name_ja) : null,
    ),
    h("td", { class: "wide-only" }, h("code", {}, m.slug)),
    h("td", { class: "wide-only" }, h("span", { class: `badge ${m.active ? "status-ok" : "status-off"}` }, state)),
    h("td", {}, photoChips(m.photos)),
  );
}
