// Jobs (upload, scrape, reindex) run on the ingestion worker: a job card follows one live, the jobs view lists
// the recent ones.
import { api } from "./admin-api.js";
import { act, attr, date, errorText, fail, h, label, live, num, tx } from "./admin-dom.js";
import { t } from "./i18n.js";

const POLL_MS = 500;
const LIST_REFRESH_MS = 2000;
// The stages a job's progress reports, in order (reindex reports none: it is one step).
const STAGES = { upload: ["store", "curate", "index"], scrape: ["fetch", "curate", "index"], reindex: ["index"] };
const FINISHED = new Set(["done", "failed"]);
const COUNTS = ["candidates", "stored", "duplicates", "refused", "ok", "flagged", "rejected"];
const COLUMNS = ["col_kind", "col_status", "col_scope", "col_created", "col_duration", "col_outcome"];

// A card that follows one job: polled every POLL_MS until it is done or failed, or until the card leaves the
// page (another view); onFinish(job) runs once at the end.
export function jobCard(jobId, kind, { onFinish } = {}) {
  const badge = h("span", { class: "badge" });
  const elapsed = h("span", { class: "muted elapsed" });
  const steps = attr(h("ol", { class: "steps" }), "aria-label", "job_stages");
  const counts = h("div", { class: "job-counts" });
  const outcome = h("div", { class: "job-outcome", role: "status", "aria-live": "polite" });
  const title = h("strong", {}, live(() => label("kind", kind)));
  const card = h(
    "article",
    { class: "job", dataset: { jobId, kind, status: "queued" } },
    h("header", {}, title, h("code", {}, jobId.slice(0, 8)), badge, elapsed),
    steps,
    counts,
    outcome,
  );
  const show = (job) => {
    card.dataset.status = job.status;
    badge.className = `badge status-${job.status}`;
    badge.replaceChildren(live(() => label("job_status", job.status)));
    elapsed.replaceChildren(live(() => duration(job)));
    steps.replaceChildren(...stepItems(kind, job));
    const totals = job.result?.totals ?? job.progress?.totals;
    counts.replaceChildren(...(totals ? [countChips(totals, job.progress)] : []));
    outcome.replaceChildren(...(FINISHED.has(job.status) ? summary(job) : []));
  };
  const poll = async () => {
    if (!card.isConnected) return;
    let job;
    try {
      job = await api(`/admin/jobs/${encodeURIComponent(jobId)}`);
    } catch (error) {
      if (error.refused) return; // the login form is back
      fail(outcome, error);
      setTimeout(poll, POLL_MS * 4);
      return;
    }
    show(job);
    if (!FINISHED.has(job.status)) setTimeout(poll, POLL_MS);
    else if (onFinish) Promise.resolve(onFinish(job)).catch((error) => fail(outcome, error));
  };
  // The caller attaches the card right after this returns; the first poll runs once it is on the page.
  setTimeout(poll, 0);
  return card;
}

// Each stage complete, current or pending; a failed job marks the stage it stopped in, and ends in "failed".
function stepItems(kind, job) {
  const stages = [...(STAGES[kind] ?? []), "done"];
  let at = Math.max(0, stages.indexOf(job.progress?.stage));
  if (job.status === "queued") at = -1;
  if (job.status === "done") at = stages.length;
  return stages.map((stage, i) => {
    const failed = job.status === "failed" && (i === at || stage === "done");
    const state = failed ? "failed" : i < at ? "complete" : i === at ? "current" : "pending";
    const name = failed && stage === "done" ? "failed" : stage;
    const item = { class: state, "aria-current": state === "current" ? "step" : null };
    return h("li", item, live(() => label("stage", name)));
  });
}

function countChips(totals, progress) {
  const values = { ...totals, refused: Object.values(totals.refused ?? {}).reduce((a, b) => a + b, 0) };
  const items = COUNTS.filter((key) => values[key]).map((key) =>
    h(
      "li",
      { class: `chip count-${key}`, dataset: { count: key } },
      h("b", {}, live(() => num(values[key]))),
      " ",
      tx(`count_${key}`),
    ),
  );
  if (progress?.members_total > 1) {
    const vars = { done: progress.members_done, total: progress.members_total };
    items.unshift(h("li", { class: "chip" }, tx("count_members", vars)));
  }
  const reasons = Object.entries(totals.reasons ?? {}).map(([code, n]) =>
    h("li", {}, live(() => `${reasonText(code)} × ${num(n)}`)),
  );
  return h("div", {}, h("ul", { class: "chips" }, items), reasons.length > 0 && h("ul", { class: "reasons" }, reasons));
}

// Curation reasons come as codes, some naming the member they point at: other_member:hori_miona.
export function reasonText(code) {
  if (!code) return "";
  const [base, who] = code.split(":");
  const text = t(`reason_${base}`, { member: who ?? "" });
  return text === `reason_${base}` ? code : text;
}

function summary(job) {
  if (job.status === "failed") {
    const error = job.error ?? { code: "internal_error", message: "" };
    return [h("p", { class: "message error" }, live(() => errorText(error)))];
  }
  const result = job.result ?? {};
  // reindex answers with the version it built; upload and scrape with one per group they published.
  const versions = result.version_id ? { [result.group ?? ""]: result } : (result.index_versions ?? {});
  const lines = Object.entries(versions).map(([group, v]) => {
    if (v.error) {
      const text = () => t("job_index_error", { group, message: errorText(v.error) });
      return h("p", { class: "message warn" }, live(text));
    }
    const vars = () => ({
      group,
      version: v.version_id,
      faces: num(v.n_faces),
      members: num(v.n_members),
      threshold: num(v.threshold, 3),
    });
    const line = { class: "message ok", dataset: { versionId: v.version_id } };
    return h("p", line, live(() => t("job_published", vars())));
  });
  return lines.length ? lines : [h("p", { class: "message ok" }, tx("job_done"))];
}

function duration(job) {
  if (!job.started_at) return "";
  const end = job.finished_at ? Date.parse(job.finished_at) : Date.now();
  return t("seconds", { n: num(Math.max(0, end - Date.parse(job.started_at)) / 1000, 1) });
}

function scope(params) {
  if (params.group) return t("scope_group", { group: params.group });
  if (params.member_id !== undefined) {
    const member = t("scope_member", { id: params.member_id });
    return params.files ? `${member} · ${t("scope_files", { n: params.files })}` : member;
  }
  return params.all ? t("scope_all") : "";
}

// The jobs view: the latest jobs, refreshed while any of them is still queued or running.
export async function renderJobs(view) {
  const slot = h("p", { class: "message", role: "alert" });
  const body = h("tbody");
  const refresh = h("button", { type: "button", class: "secondary" }, tx("refresh"));
  const head = h("thead", {}, h("tr", {}, COLUMNS.map((key) => h("th", { scope: "col" }, tx(key)))));
  const table = h("table", { class: "data jobs-table" }, head, body);
  view.replaceChildren(
    h("div", { class: "view-head" }, h("h1", { tabindex: "-1" }, tx("jobs_title")), refresh),
    slot,
    h("div", { class: "card table-wrap" }, table),
  );
  const load = async () => {
    const jobs = await api("/admin/jobs?limit=50");
    const empty = h("tr", {}, h("td", { colspan: COLUMNS.length, class: "empty" }, tx("jobs_empty")));
    body.replaceChildren(...(jobs.length ? jobs.map(jobRow) : [empty]));
    if (jobs.some((j) => !FINISHED.has(j.status))) {
      setTimeout(() => table.isConnected && act(refresh, slot, load), LIST_REFRESH_MS);
    }
  };
  refresh.addEventListener("click", () => act(refresh, slot, load));
  await act(refresh, slot, load);
}

function jobRow(job) {
  return h(
    "tr",
    { dataset: { jobId: job.id, status: job.status } },
    h("td", { class: "nowrap" }, live(() => label("kind", job.kind)), h("br"), h("code", {}, job.id.slice(0, 8))),
    h("td", {}, h("span", { class: `badge status-${job.status}` }, live(() => label("job_status", job.status)))),
    h("td", {}, live(() => scope(job.params ?? {}))),
    h("td", { class: "nowrap" }, live(() => date(job.created_at))),
    h("td", { class: "num nowrap" }, live(() => duration(job))),
    h("td", { class: "outcome" }, FINISHED.has(job.status) ? summary(job) : []),
  );
}
