// One member: photo counts, uploading photos (file picker or drag and drop), and the sources a scrape reads.
import { api } from "./admin-api.js";
import { act, attr, date, field, h, label, live, liveAttr, num, photoChips, tx } from "./admin-dom.js";
import { jobCard } from "./admin-jobs.js";
import { t } from "./i18n.js";

const KINDS = ["image_url", "web_page", "folder", "zip", "search"];
const ACCEPT = "image/jpeg,image/png,image/webp,image/heic,image/heif,.heic,.heif,.zip,application/zip";

export async function renderMember(view, { id }) {
  const [member, sources] = await Promise.all([api(`/admin/members/${id}`), api(`/admin/members/${id}/sources`)]);
  const counts = h("div", { class: "member-counts" }, photoChips(member.photos));
  const refreshCounts = async () => {
    counts.replaceChildren(photoChips((await api(`/admin/members/${id}`)).photos));
  };
  const crumbs = h(
    "ol",
    {},
    h("li", {}, h("a", { href: "#/groups" }, tx("groups_title"))),
    h("li", {}, h("a", { href: `#/groups/${encodeURIComponent(member.group)}` }, member.group)),
    h("li", { "aria-current": "page" }, member.name),
  );
  const state = tx(member.active ? "active" : "inactive");
  view.replaceChildren(
    attr(h("nav", { class: "crumbs" }, crumbs), "aria-label", "breadcrumb"),
    h(
      "div",
      { class: "view-head" },
      h("h1", { tabindex: "-1" }, member.name),
      h("code", {}, member.slug),
      h("span", { class: `badge ${member.active ? "status-ok" : "status-off"}` }, state),
    ),
    h("div", { class: "card", id: "member-photos" }, h("h2", {}, tx("member_photos")), counts),
    h("div", { class: "split even" }, uploadCard(member, refreshCounts), sourcesCard(member, sources, refreshCounts)),
  );
}

function uploadCard(member, onFinish) {
  const slot = h("p", { class: "message", role: "alert" });
  const jobs = h("div", { class: "jobs" });
  const input = h("input", { type: "file", id: "upload-files", multiple: true, accept: ACCEPT });
  input.className = "visually-hidden"; // still focusable: the keyboard reaches it, the label shows it
  const list = h("ul", { class: "file-list", "aria-live": "polite" });
  const submit = h("button", { type: "submit", id: "upload-submit", disabled: true }, tx("upload_none"));
  let chosen = [];
  const show = () => {
    const remove = (file) => () => {
      chosen = chosen.filter((f) => f !== file);
      show();
    };
    list.replaceChildren(...chosen.map((file) => fileItem(file, remove(file))));
    submit.disabled = !chosen.length;
    submit.replaceChildren(tx(chosen.length ? "upload_n" : "upload_none", { n: chosen.length }));
  };
  const add = (files) => {
    const known = new Set(chosen.map((f) => `${f.name}/${f.size}`));
    chosen = chosen.concat([...files].filter((f) => !known.has(`${f.name}/${f.size}`)));
    show();
  };
  input.addEventListener("change", () => {
    add(input.files);
    input.value = ""; // so that choosing the same file again fires change again
  });
  const zone = h(
    "div",
    { class: "dropzone", id: "dropzone" },
    h("p", {}, tx("upload_drop")),
    h("label", { for: "upload-files", class: "button secondary" }, tx("upload_choose")),
    input,
    h("small", { class: "muted" }, tx("upload_hint")),
  );
  // dragover must be cancelled for a drop to be allowed at all.
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    add(event.dataTransfer.files);
  });
  const title = h("h2", {}, tx("upload_title"));
  const form = h("form", { class: "card stack", id: "upload" }, title, zone, list, submit, slot, jobs);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    await act(submit, slot, async () => {
      const body = new FormData();
      for (const file of chosen) body.append("files", file, file.name);
      const accepted = await api(`/admin/members/${member.id}/photos`, { method: "POST", form: body });
      chosen = [];
      show();
      jobs.prepend(jobCard(accepted.job_id, "upload", { onFinish }));
    });
    submit.disabled = !chosen.length; // act() re-enabled it
  });
  return form;
}

function fileItem(file, remove) {
  const button = h("button", { type: "button", class: "icon", onclick: remove }, "×");
  return h(
    "li",
    {},
    h("span", { class: "file-name" }, file.name),
    h("span", { class: "muted" }, live(() => size(file.size))),
    attr(button, "aria-label", "upload_remove", { name: file.name }),
  );
}

function size(bytes) {
  const mb = bytes / 1024 / 1024;
  return mb < 1 ? t("size_kb", { n: num(bytes / 1024) }) : t("size_mb", { n: num(mb, 1) });
}

function sourcesCard(member, sources, onFinish) {
  const slot = h("p", { class: "message", role: "alert" });
  const jobs = h("div", { class: "jobs" });
  const body = h("tbody");
  const columns = ["col_kind", "col_value", "col_scraped", null];
  const head = h("thead", {}, h("tr", {}, columns.map((key) => h("th", { scope: "col" }, key && tx(key)))));
  const rows = (list) => {
    const empty = h("tr", {}, h("td", { colspan: columns.length, class: "empty" }, tx("sources_empty")));
    body.replaceChildren(...(list.length ? list.map((source) => sourceRow(source, slot, reload)) : [empty]));
  };
  const reload = async () => rows(await api(`/admin/members/${member.id}/sources`));
  rows(sources);

  const scrape = h("button", { type: "button", id: "scrape-member", class: "secondary" }, tx("member_scrape"));
  const finished = async (job) => {
    await reload(); // last_scraped_at, last_error
    await onFinish(job);
  };
  scrape.addEventListener("click", () =>
    act(scrape, slot, async () => {
      const accepted = await api("/admin/scrape", { method: "POST", json: { member_id: member.id } });
      jobs.prepend(jobCard(accepted.job_id, "scrape", { onFinish: finished }));
    }),
  );
  return h(
    "section",
    { class: "card stack", id: "sources" },
    h("div", { class: "title-row" }, h("h2", {}, tx("sources_title")), scrape),
    h("div", { class: "table-wrap" }, h("table", { class: "data sources" }, head, body)),
    sourceForm(member, reload),
    slot,
    jobs,
  );
}

function sourceRow(source, slot, reload) {
  const remove = h("button", { type: "button", class: "icon danger" }, "×");
  attr(remove, "aria-label", "source_remove", { value: source.value });
  remove.addEventListener("click", () =>
    act(remove, slot, async () => {
      await api(`/admin/sources/${source.id}`, { method: "DELETE" });
      await reload();
    }),
  );
  const options = Object.entries(source.options ?? {})
    .map(([key, value]) => `${key}=${value}`)
    .join(", ");
  return h(
    "tr",
    { dataset: { sourceId: source.id } },
    h("td", {}, live(() => label("kind", source.kind))),
    h(
      "td",
      { class: "value" },
      h("span", {}, source.value),
      options && h("small", { class: "muted" }, options),
      source.last_error && h("small", { class: "message error" }, source.last_error),
    ),
    h("td", {}, source.last_scraped_at ? live(() => date(source.last_scraped_at)) : tx("never")),
    h("td", {}, remove),
  );
}

function sourceForm(member, reload) {
  const slot = h("p", { class: "message", role: "alert" });
  const kindOptions = KINDS.map((k) => h("option", { value: k }, live(() => label("kind", k))));
  const kind = h("select", { id: "source-kind", name: "kind" }, kindOptions);
  const value = h("input", { id: "source-value", name: "value", required: true, maxlength: 2000, autocomplete: "off" });
  // The one option worth a field per kind: how far a crawl goes, how many results a search takes.
  const depth = h("input", { id: "source-depth", type: "number", min: 0, max: 3, value: 1 });
  const limit = h("input", { id: "source-limit", type: "number", min: 1, max: 500, value: 50 });
  const depthField = field("source-depth", "field_depth", depth, "depth_hint");
  const limitField = field("source-limit", "field_limit", limit);
  const placeholder = () => t(`placeholder_${kind.value}`);
  liveAttr(value, "placeholder", placeholder);
  const sync = () => {
    value.setAttribute("placeholder", placeholder());
    depthField.hidden = kind.value !== "web_page";
    limitField.hidden = kind.value !== "search";
  };
  kind.addEventListener("change", sync);
  sync();
  const options = () => {
    if (kind.value === "web_page") return { depth: Number(depth.value) };
    return kind.value === "search" ? { limit: Number(limit.value) } : {};
  };
  const submit = h("button", { type: "submit" }, tx("source_add"));
  const form = h(
    "form",
    { class: "stack", id: "new-source" },
    h("h3", {}, tx("source_new")),
    h(
      "div",
      { class: "row" },
      field("source-kind", "field_kind", kind),
      field("source-value", "field_value", value),
      depthField,
      limitField,
    ),
    h("div", { class: "actions" }, submit),
    slot,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    act(submit, slot, async () => {
      const json = { kind: kind.value, value: value.value.trim(), options: options() };
      await api(`/admin/members/${member.id}/sources`, { method: "POST", json });
      value.value = "";
      await reload();
    });
  });
  return form;
}
