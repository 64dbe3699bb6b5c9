// "Add more photos of you for a steadier answer": under a one-face answer, the photos of that person (the first,
// then those added, each with its face box once an answer covers it), a picker for more, up to /about.max_photos in
// all, and what went wrong with one of them. diagnose.js owns the photos and the requests; this module draws them.
import { KNOWN_ERRORS } from "./diagnose-messages.js";
import { el } from "./dom.js";
import { placeBox } from "./faces.js";
import { t } from "./i18n.js";

// Refusals that sending the same photos again cannot change: the user removes or replaces a photo instead.
const NO_RETRY = new Set(["too_many_photos", "upload_too_large", "different_people"]);

// What went wrong, naming the photo when the API did ({code, photo}: photo is 1-based, null when about them all).
export function moreErrorText({ code, photo }, max) {
  const known = KNOWN_ERRORS.has(code) ? code : "generic";
  if (code === "upload_too_large") return t("more_error_upload_too_large");
  if (!photo) return t(`error_${known}`, { max });
  if (code === "different_people" && photo === 1) return t("more_error_different_people_first");
  if (code === "different_people" || code === "no_face") return t(`more_error_${code}`, { n: photo });
  return t("more_error_in_photo", { n: photo, message: t(`error_${known}`, { max }) });
}

function thumbnail(photo, n, verdict) {
  const thumb = el("span", { class: "thumb" }, [el("img", { src: photo.url, alt: t("more_photo_n", { n }) })]);
  if (photo.box) thumb.append(placeBox(el("span", { class: `thumb-box ${verdict}` }), photo.box, photo.image));
  return thumb;
}

// One photo of the tray. The first stays (the answer started from it; a new first photo is a new diagnosis).
function trayItem(photo, index, model, onRemove) {
  const n = index + 1;
  const problem = model.error?.photo === n;
  const item = el("li", { class: `more-photo${problem ? " problem" : ""}${photo.box ? "" : " pending"}` }, [
    thumbnail(photo, n, model.verdict),
    el("span", { class: "more-photo-n", text: t("more_photo_n", { n }) }),
  ]);
  item.dataset.photo = String(n);
  if (index > 0) {
    const remove = el("button", {
      type: "button",
      class: "button remove",
      text: t("more_remove"),
      "aria-label": t("more_remove_label", { n }),
      "aria-describedby": problem ? "more-error" : null,
      disabled: model.busy,
    });
    remove.addEventListener("click", () => onRemove(index));
    item.append(remove);
  }
  return item;
}

// model: {photos: [{url, box, image}], max, busy, status: [key, vars] | null, error: {code, photo} | null,
// verdict}; onRemove(index) when a photo is taken out. `box` and `image` are those of the answer shown, null while
// a photo waits for one.
export function renderMorePhotos(ui, model, onRemove) {
  const { photos, max } = model;
  const room = max - photos.length;
  ui.lead.textContent = room > 0 ? t("more_lead", { n: room }) : t("more_full", { max });
  ui.count.textContent = t("more_count", { n: photos.length, max });
  ui.input.disabled = model.busy || room <= 0;
  ui.tray.hidden = photos.length < 2;
  ui.tray.replaceChildren(...(photos.length < 2 ? [] : photos.map((p, i) => trayItem(p, i, model, onRemove))));
  ui.status.textContent = model.status ? t(...model.status) : "";
  ui.error.hidden = !model.error;
  ui.error.textContent = model.error ? moreErrorText(model.error, max) : "";
  ui.retry.hidden = !model.error || Boolean(model.error.photo) || NO_RETRY.has(model.error.code) || model.busy;
  ui.panel.setAttribute("aria-busy", String(model.busy));
}
