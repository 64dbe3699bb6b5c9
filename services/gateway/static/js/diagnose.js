// The diagnose page: pick, shoot or drop a photo; it is uploaded with progress, then every face is boxed on the
// photo and gets a card. A face's "Why?" heatmap is asked for only when one is opened: POST /diagnose?explain=true
// takes seconds per face, so the first answer comes without it. A one-face answer offers to add more photos of
// that person: all of them are sent again together and their combined answer replaces it. Everything shown is
// rebuilt from `state` when the language changes.
import { ApiError, diagnose, loadAbout, loadGroups, loadMembers } from "./api.js";
import { cardId, renderCard } from "./card.js";
import { KNOWN_ERRORS, MESSAGES } from "./diagnose-messages.js";
import { el } from "./dom.js";
import { renderBoxes } from "./faces.js";
import { fillWhy } from "./heatmap.js";
import { addMessages, locale, onLocaleChange, t, translate } from "./i18n.js";
import { mountLocaleSwitch } from "./locale-switch.js";
import { renderMorePhotos } from "./more-photos.js";
import { resembles } from "./verdict.js";

const $ = (id) => document.getElementById(id);
const ui = {
  file: $("file"),
  camera: $("camera"),
  dropzone: $("dropzone"),
  group: $("group"),
  status: $("status"),
  progress: $("progress"),
  error: $("error"),
  results: $("results"),
  stage: document.querySelector(".stage"),
  photo: $("photo"),
  boxes: $("boxes"),
  cards: $("cards"),
  privacy: $("privacy-text"),
  more: {
    panel: $("more-photos"),
    title: $("more-title"),
    lead: $("more-lead"),
    tray: $("more-tray"),
    status: $("more-status"),
    error: $("more-error"),
    retry: $("more-retry"),
    input: $("more-files"),
    count: $("more-count"),
  },
};
// Until GET /about answers (or if it fails): the server's defaults.
const DEFAULT_EXPLAIN_MAX_FACES = 4;
const DEFAULT_MAX_PHOTOS = 5;
const state = {
  request: null, // the AbortController of the diagnosis in flight
  status: null, // [message key, vars]
  errorCode: null,
  group: "", // the group slug the result was asked for; "" = all
  result: null,
  files: [], // the photos of `result` (one, or several of one person), kept for its explanation
  // The explain=true answer for `result`, asked for when a "Why?" is first opened and shared by all its faces:
  // {answer, error} once settled. A new photo drops it; an error lets the next opening ask again.
  explain: null,
  whyOpen: new Set(), // indices of the faces whose "Why?" is open
  about: null, // GET /about
  photo: null, // ImageBitmap of the upload, EXIF-upright like the API's coordinates; null if undecodable here
  photoUrl: null,
  selected: null,
  members: new Map(), // id -> member, for the Japanese names in meta.name_ja
  groups: new Map(), // slug -> name
  // Photos of the one person of a one-face answer: [{file, url}], the first photo first. They differ from `files`
  // while a combined answer is on its way, or after one was refused (the photo it names can be removed).
  photos: [],
  combining: null, // the AbortController of the combined diagnosis in flight
  more: { busy: false, status: null, error: null }, // error: {code, photo}
};

const maxPhotos = () => state.about?.max_photos ?? DEFAULT_MAX_PHOTOS;

// ---------------------------------------------------------------- status and errors

function setStatus(key, vars = {}) {
  state.status = key ? [key, vars] : null;
  ui.status.textContent = key ? t(key, vars) : "";
}

function showError(code) {
  state.errorCode = code;
  ui.error.hidden = !code;
  ui.error.textContent = code ? t(`error_${KNOWN_ERRORS.has(code) ? code : "generic"}`, { max: maxPhotos() }) : "";
}

// ---------------------------------------------------------------- the privacy notice

// 3600 -> "1 hour", 5400 -> "1 hour 30 minutes" ("1時間30分"): rounded up to the minute, never down.
function duration(seconds) {
  const plural = (unit, n) => t(`unit_${unit}_${n === 1 ? "one" : "other"}`, { n });
  if (seconds < 60) return plural("second", Math.max(0, Math.round(seconds)));
  let minutes = Math.ceil(seconds / 60);
  const parts = [];
  for (const [unit, size] of [["day", 1440], ["hour", 60], ["minute", 1]]) {
    const n = Math.floor(minutes / size);
    minutes -= n * size;
    if (n) parts.push(plural(unit, n));
  }
  return parts.join(t("unit_separator"));
}

function showPrivacy() {
  const ttl = state.about?.result_ttl_s;
  ui.privacy.textContent = t("privacy", { ttl: Number.isFinite(ttl) ? duration(ttl) : t("ttl_unknown") });
}

function fail(error) {
  if (error.name === "AbortError") return;
  if (!(error instanceof ApiError)) console.warn(error); // a bug of ours: still a friendly message on screen
  setStatus(null);
  showError(error.code || "generic");
}

// ---------------------------------------------------------------- results

const view = {
  name(match) {
    const ja = state.members.get(match.member_id)?.meta?.name_ja;
    return locale() === "ja" && ja ? ja : match.name;
  },
  groupName: (slug) => state.groups.get(slug) || slug,
  // "nobody in this group" when one group was compared, "in the gallery" when several were.
  get oneGroup() {
    return Boolean(state.group) || state.groups.size <= 1;
  },
  onError: fail,
  get photo() {
    return state.photo;
  },
  get image() {
    return state.result.image;
  },
  get photoCount() {
    return state.files.length;
  },
  why: {
    // The first explain_max_faces faces are explained (the answer lists faces largest first), when drawable here.
    available(index) {
      const limit = state.about?.explain_max_faces ?? DEFAULT_EXPLAIN_MAX_FACES;
      const drawable = Boolean(state.photo && state.files.length);
      return drawable && index < limit && state.result.faces[index].matches.length > 0;
    },
    isOpen: (index) => state.whyOpen.has(index),
    toggle(index, open) {
      if (!open) {
        state.whyOpen.delete(index);
        return;
      }
      state.whyOpen.add(index);
      explain();
    },
    retry() {
      if (state.explain?.error) state.explain = null;
      explain();
    },
    state: whyState,
  },
};

// ---------------------------------------------------------------- explanations

function explain() {
  if (state.explain && !state.explain.error) return; // asked for already (or answered)
  const request = state.request; // aborted with the diagnosis when another photo comes
  const entry = { answer: null, error: null };
  state.explain = entry;
  diagnose(state.files, { group: state.group, explain: true, signal: request.signal })
    .then(
      (answer) => {
        entry.answer = answer;
      },
      (error) => {
        if (error.name !== "AbortError" && !(error instanceof ApiError)) console.warn(error);
        entry.error = error;
      },
    )
    .then(() => {
      if (state.explain === entry) refreshWhys();
    });
  refreshWhys();
}

const sameBox = (a, b) => a?.length === b?.length && a.every((v, i) => Math.abs(v - b[i]) <= 1);

// What face `index`'s "Why?" shows: {status: "working" | "failed" (+ code) | "mismatch" | "done" (+ explanation,
// name, alike)}. Faces are matched by position (the server is deterministic for the same bytes) and checked: the
// same box, and an explanation towards the member the card names first. Anything else is not explained rather than
// explained wrong.
function whyState(index) {
  const entry = state.explain;
  if (!entry || (!entry.answer && !entry.error)) return { status: "working" };
  if (entry.error) return { status: "failed", code: entry.error.code || "generic" };
  const face = state.result.faces[index];
  const best = face.matches[0];
  const { image, faces } = entry.answer;
  const twin = faces?.[index];
  const explanation = twin?.explanation;
  const sameImage = image?.width === state.result.image.width && image?.height === state.result.image.height;
  if (!sameImage || !explanation || !best || explanation.member_id !== best.member_id || !sameBox(face.box, twin.box)) {
    return { status: "mismatch" };
  }
  return { status: "done", explanation, name: view.name(best), alike: resembles(face) };
}

function refreshWhys() {
  for (const details of ui.cards.querySelectorAll("details.why[open]")) fillWhy(details, view);
}

// ---------------------------------------------------------------- selection

function select(index, { scroll = false } = {}) {
  state.selected = index;
  [...ui.boxes.children].forEach((box, i) => box.setAttribute("aria-pressed", String(i === index)));
  [...ui.cards.children].forEach((card, i) => card.classList.toggle("selected", i === index));
  if (scroll) reveal($(cardId(index)));
}

function reveal(node) {
  const smooth = !matchMedia("(prefers-reduced-motion: reduce)").matches;
  node.scrollIntoView({ behavior: smooth ? "smooth" : "auto", block: "nearest" });
}

function render() {
  const { result } = state;
  ui.results.hidden = false;
  ui.results.classList.toggle("no-photo", !state.photo);
  renderBoxes(ui.boxes, result, (i) => select(i, { scroll: true }));
  const cards = result.faces.map((face, i) => renderCard(face, i, view));
  cards.forEach((card, i) => card.addEventListener("click", () => select(i)));
  ui.cards.replaceChildren(...cards);
  if (state.selected !== null) select(state.selected);
  renderMore();
}

// ---------------------------------------------------------------- more photos of the same person

// Offered under a one-face answer; kept while an answer from several photos is shown.
function renderMore() {
  const { result } = state;
  ui.more.panel.hidden = !result || (result.faces.length !== 1 && state.files.length < 2);
  if (ui.more.panel.hidden) return;
  const [face] = result.faces;
  // A photo's box comes from the answer shown, when that answer was given for it.
  const photos = state.photos.map(({ file, url }) => {
    const i = state.files.indexOf(file);
    const box = i < 0 ? null : (face.boxes?.[i] ?? (i === 0 ? face.box : null));
    return { url, box, image: result.images?.[i] ?? result.image };
  });
  const model = { ...state.more, photos, max: maxPhotos(), verdict: face.verdict };
  renderMorePhotos(ui.more, model, removePhoto);
  ui.cards.classList.toggle("updating", state.more.busy);
  ui.cards.setAttribute("aria-busy", String(state.more.busy));
}

function setMore(changes) {
  Object.assign(state.more, changes);
  renderMore();
}

function addPhotos(files) {
  const all = [...state.photos.map((p) => p.file), ...files];
  // Refused here rather than by the server after the upload: the same words as its 413s.
  if (all.length > maxPhotos()) return setMore({ status: null, error: { code: "too_many_photos", photo: null } });
  const limit = state.about?.max_upload_bytes;
  if (limit && all.reduce((sum, f) => sum + f.size, 0) > limit) {
    return setMore({ status: null, error: { code: "upload_too_large", photo: null } });
  }
  state.photos.push(...files.map((file) => ({ file, url: URL.createObjectURL(file) })));
  combine();
}

function removePhoto(index) {
  const [removed] = state.photos.splice(index, 1);
  URL.revokeObjectURL(removed.url);
  ui.more.title.focus(); // its button is gone (and the picker is off while the rest is sent)
  const files = state.photos.map((p) => p.file);
  // Back to the photos of the answer shown (the refused one removed): nothing to ask.
  if (files.length === state.files.length && files.every((f, i) => f === state.files[i])) {
    state.combining?.abort();
    setMore({ busy: false, status: null, error: null });
    return;
  }
  combine();
}

// Sends every photo of the tray together; their answer replaces the one shown. A refusal leaves the answer shown
// as it was and says which photo it is about.
async function combine() {
  const files = state.photos.map((p) => p.file);
  state.combining?.abort();
  const request = new AbortController();
  state.combining = request;
  setMore({ busy: true, status: ["more_combining", { n: files.length }], error: null });
  try {
    const result = await diagnose(files, { group: state.group, signal: request.signal });
    state.result = result;
    state.files = files;
    state.explain = null; // asked again, for these photos, when a "Why?" is opened
    state.whyOpen.clear();
    state.more.busy = false;
    state.more.status = ["more_done", { n: files.length }];
    render();
  } catch (error) {
    if (error.name === "AbortError") return;
    if (!(error instanceof ApiError)) console.warn(error);
    setMore({ busy: false, status: null, error: { code: error.code || "generic", photo: error.photo ?? null } });
  }
}

function clearResults() {
  state.result = null;
  state.files = [];
  state.combining?.abort();
  for (const { url } of state.photos) URL.revokeObjectURL(url);
  state.photos = [];
  state.more = { busy: false, status: null, error: null };
  ui.more.panel.hidden = true;
  ui.cards.classList.remove("updating");
  state.explain = null;
  state.whyOpen.clear();
  state.selected = null;
  state.photo?.close();
  state.photo = null;
  if (state.photoUrl) URL.revokeObjectURL(state.photoUrl);
  state.photoUrl = null;
  ui.results.hidden = true;
  ui.results.classList.remove("analysing");
  ui.boxes.replaceChildren();
  ui.cards.replaceChildren();
  ui.photo.removeAttribute("src");
  ui.stage.style.removeProperty("--photo-ratio");
}

// ---------------------------------------------------------------- the diagnosis

// The photo is shown as soon as the browser has decoded it, while the upload runs.
async function preview(file, request) {
  // Chromium applies the EXIF orientation here too, so the picture matches the API's coordinates.
  const photo = await createImageBitmap(file).catch(() => null); // HEIC: the server reads it, Chromium cannot
  if (!photo) return;
  if (request.signal.aborted) {
    photo.close();
    return;
  }
  state.photo = photo;
  state.photoUrl = URL.createObjectURL(file);
  ui.stage.style.setProperty("--photo-ratio", String(photo.width / photo.height)); // caps its height on wide screens
  ui.photo.src = state.photoUrl;
  ui.results.hidden = false;
  await ui.photo.decode().catch(() => {}); // its height is known once decoded
  if (!request.signal.aborted) reveal(ui.results); // below the fold on small screens
}

async function run(file) {
  state.request?.abort();
  const request = new AbortController();
  state.request = request;
  clearResults();
  showError(null);
  const limit = state.about?.max_upload_bytes;
  if (limit && file.size > limit) {
    // Not worth uploading only to be refused: the same message as the server's 413.
    setStatus(null);
    ui.progress.hidden = true;
    showError("upload_too_large");
    return;
  }
  setStatus("status_uploading");
  ui.progress.value = 0;
  ui.progress.hidden = false;
  ui.results.classList.add("analysing");
  const shown = preview(file, request);
  state.group = ui.group.value;
  try {
    const result = await diagnose([file], {
      group: state.group,
      signal: request.signal,
      onProgress: (fraction) => {
        ui.progress.value = Math.round(fraction * 100);
      },
      onUploaded: () => {
        ui.progress.removeAttribute("value"); // indeterminate while the server works
        setStatus("status_analysing");
      },
    });
    await shown;
    state.result = result;
    state.files = [file];
    state.photos = [{ file, url: URL.createObjectURL(file) }];
    ui.results.classList.remove("analysing");
    render();
    const n = result.faces.length;
    setStatus(n === 1 ? "faces_found_one" : "faces_found_other", { n });
  } catch (error) {
    if (error.name !== "AbortError") clearResults();
    fail(error);
  } finally {
    if (state.request === request) ui.progress.hidden = true;
  }
}

// ---------------------------------------------------------------- inputs

function pick(event) {
  const [file] = event.target.files;
  event.target.value = ""; // picking the same photo again still fires "change"
  if (file) run(file);
}

function bindDrop(zone) {
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  });
  zone.addEventListener("dragleave", (event) => {
    if (!zone.contains(event.relatedTarget)) zone.classList.remove("dragging");
  });
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    const file = [...event.dataTransfer.files].find((f) => f.type.startsWith("image/")) || event.dataTransfer.files[0];
    if (file) run(file);
  });
  // A photo dropped beside the zone must not make the browser leave the page to display it.
  for (const type of ["dragover", "drop"]) window.addEventListener(type, (event) => event.preventDefault());
}

async function fillGroups() {
  const [groups, members] = await Promise.all([loadGroups(), loadMembers()]);
  for (const group of groups) {
    state.groups.set(group.slug, group.name);
    ui.group.append(el("option", { value: group.slug, text: group.name }));
  }
  for (const member of members) state.members.set(member.id, member);
  if (state.result) render(); // the Japanese names arrived after the result
}

async function fillAbout() {
  state.about = await loadAbout();
  showPrivacy();
  if (state.result) render(); // explain_max_faces arrived after the result
}

addMessages(MESSAGES);
translate(document);
mountLocaleSwitch(document.querySelector(".locale-switch"));
showPrivacy();
onLocaleChange(() => {
  showPrivacy();
  if (state.status) setStatus(...state.status);
  if (state.errorCode) showError(state.errorCode);
  if (state.result) render();
});
ui.file.addEventListener("change", pick);
ui.camera.addEventListener("change", pick);
ui.more.input.addEventListener("change", (event) => {
  const files = [...event.target.files];
  event.target.value = ""; // the same photos picked again still fire "change"
  if (files.length) addPhotos(files);
});
ui.more.retry.addEventListener("click", combine);
bindDrop(ui.dropzone);
fillGroups().catch(fail);
fillAbout().catch((error) => console.warn("GET /about:", error)); // the notice keeps its general wording
