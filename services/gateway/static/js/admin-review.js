// The review queue: photos curation could not decide on. Each shows the face it judged (cropped from the
// photo) or, when the photo shows several faces, every face with its own approve button.
import { api, bitmap } from "./admin-api.js";
import { act, groupPicker, h, live, num, say, sharpCanvas, tx, wholePhoto } from "./admin-dom.js";
import { jobCard, reasonText } from "./admin-jobs.js";
import { t } from "./i18n.js";

const CROP_PX = 132;
const CHOICE_PX = 112; // the crops of a photo with several faces, side by side
const OVERVIEW_PX = 220;
// A face crop shows some hair and chin around the detector's box, as a person would frame it.
const CROP_MARGIN = 0.35;

export async function renderReview(view, { group } = {}) {
  const groups = await api("/admin/groups");
  const route = (slug) => (slug ? `#/review/${encodeURIComponent(slug)}` : "#/review");
  const filter = groupPicker("review-group", groups, group, route, "review_all_groups");
  const refresh = h("button", { type: "button", class: "secondary" }, tx("refresh"));
  const slot = h("p", { class: "message", role: "alert" });
  const list = h("div", { class: "review-grid", id: "review-list" });
  view.replaceChildren(
    h("div", { class: "view-head" }, h("h1", { tabindex: "-1" }, tx("review_title")), filter, refresh),
    h("p", { class: "lead" }, tx("review_lead")),
    slot,
    list,
  );
  const load = async () => {
    const query = group ? `?group=${encodeURIComponent(group)}` : "";
    const items = await api(`/admin/review${query}`);
    const empty = h("div", { class: "card empty", id: "review-empty" }, tx("review_empty"));
    list.replaceChildren(...(items.length ? items.map(reviewCard) : [empty]));
  };
  refresh.addEventListener("click", () => act(refresh, slot, load));
  await load();
}

function reviewCard(item) {
  const slot = h("p", { class: "message", role: "status", tabindex: "-1" });
  const jobs = h("div", { class: "jobs" });
  const pictures = h("div", { class: "review-pictures" }, h("div", { class: "placeholder" }, tx("loading")));
  const actions = h("div", { class: "actions" });
  const card = h(
    "article",
    { class: "card review-card", dataset: { photoId: item.photo_id, faces: item.faces.length } },
    pictures,
    h(
      "div",
      { class: "review-body" },
      h("h2", {}, h("a", { href: `#/member/${item.member_id}` }, item.member_name)),
      h("p", { class: "muted" }, `${item.group} / ${item.member}`),
      h(
        "dl",
        { class: "facts" },
        h("dt", {}, tx("review_reason")),
        h("dd", {}, live(() => reasonText(item.reason) || t("reason_none"))),
        item.score != null && [h("dt", {}, tx("review_score")), h("dd", {}, live(() => num(item.score, 3)))],
        h("dt", {}, tx("review_size")),
        h("dd", {}, `${item.width} × ${item.height}`),
      ),
      sourceLink(item),
      actions,
      slot,
      jobs,
    ),
  );
  // Decided, the card stays (greyed, buttons off) with the outcome and the re-index it queued, followed live.
  const decide = async (button, verb, faceId) => {
    const json = faceId === undefined ? undefined : { face_id: faceId };
    const path = `/admin/photos/${item.photo_id}/${verb}`;
    const outcome = await act(button, slot, () => api(path, { method: "POST", json }));
    if (!outcome) return;
    card.dataset.decided = outcome.status;
    if (faceId !== undefined) button.closest("li")?.classList.add("chosen");
    for (const control of card.querySelectorAll("button")) control.disabled = true;
    const text = () => `${t(`review_done_${outcome.status}`)} ${t(`review_reindex_${outcome.reindex}`)}`;
    say(slot, live(text), "ok");
    slot.focus(); // the button that had the focus is off now
    if (outcome.reindex_job_id) jobs.append(jobCard(outcome.reindex_job_id, "reindex"));
  };
  const reject = h("button", { type: "button", class: "danger", dataset: { action: "reject" } }, tx("review_reject"));
  reject.addEventListener("click", () => decide(reject, "reject"));
  // A photo with several faces needs the member's face chosen: its approve buttons sit under each crop.
  if (item.faces.length === 1) {
    const approve = h("button", { type: "button", dataset: { action: "approve" } }, tx("review_approve"));
    approve.addEventListener("click", () => decide(approve, "approve"));
    actions.append(approve);
  }
  actions.append(reject);
  drawPictures(pictures, item, decide);
  return card;
}

function sourceLink(item) {
  const href = item.page_url || item.source_url;
  // Only web addresses become links (a folder or ZIP source records a path).
  if (!href || !/^https?:\/\//i.test(href)) return null;
  return h("p", {}, h("a", { href, target: "_blank", rel: "noopener noreferrer" }, tx("review_source")));
}

async function drawPictures(box, item, decide) {
  let image;
  try {
    image = await bitmap(item.url);
  } catch {
    box.replaceChildren(h("div", { class: "placeholder" }, tx("review_no_preview")));
    return;
  }
  const faces = item.faces.map((face, i) => ({ ...face, n: i + 1 }));
  if (faces.length === 1) {
    const describe = () => t("review_face_alt", { member: item.member_name });
    box.replaceChildren(crop(image, item.box ?? faces[0].box, CROP_PX, describe), overview(image, []));
    return;
  }
  const choices = faces.map((face) => {
    const data = { action: "approve", faceId: face.id };
    const button = h("button", { type: "button", class: "secondary", dataset: data }, tx("review_approve_face", face));
    button.addEventListener("click", () => decide(button, "approve", face.id));
    return h("li", {}, crop(image, face.box, CHOICE_PX, () => t("review_face_n", face)), button);
  });
  box.replaceChildren(overview(image, faces), choices.length > 0 && h("ol", { class: "face-choices" }, choices));
}

// A square around the face box with a margin; what falls outside the photo stays the card's grey.
function crop(image, [x1, y1, x2, y2], px, describe) {
  const side = Math.max(x2 - x1, y2 - y1) * (1 + 2 * CROP_MARGIN);
  const [node, ctx] = sharpCanvas(px, px, describe);
  ctx.fillStyle = "#e7e9ee";
  ctx.fillRect(0, 0, px, px);
  const scale = px / side;
  const sx = (x1 + x2) / 2 - side / 2;
  const sy = (y1 + y2) / 2 - side / 2;
  ctx.drawImage(image, -sx * scale, -sy * scale, image.width * scale, image.height * scale);
  node.classList.add("crop");
  return node;
}

// The whole photo, small, with numbered boxes when the admin has to pick a face.
function overview(image, faces) {
  const [node, ctx, scale] = wholePhoto(image, OVERVIEW_PX, () => t("review_photo_alt"));
  ctx.lineWidth = 2;
  ctx.font = "bold 12px system-ui, sans-serif";
  for (const face of faces) {
    const [x1, y1, x2, y2] = face.box.map((v) => v * scale);
    ctx.strokeStyle = "#ffffff";
    ctx.strokeRect(x1 - 1, y1 - 1, x2 - x1 + 2, y2 - y1 + 2);
    ctx.strokeStyle = "#c03a78";
    ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
    ctx.fillStyle = "#c03a78";
    ctx.fillRect(x1, Math.max(0, y1 - 16), 16, 16);
    ctx.fillStyle = "#ffffff";
    ctx.fillText(String(face.n), x1 + 4, Math.max(12, y1 - 4));
  }
  node.classList.add("overview");
  return node;
}
