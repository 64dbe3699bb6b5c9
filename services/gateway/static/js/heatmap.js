// "Why?": the aligned face the model saw, with the regions that raise the resemblance to the member painted warm,
// beside that member's closest gallery photo. The explanation is the face's in POST /diagnose?explain=true, asked
// for (once per photo, by diagnose.js) when a "Why?" is first opened.
import { el } from "./dom.js";
import { t } from "./i18n.js";

const CANVAS_PX = 224;
const MAX_ALPHA = 0.6;

// grid value -> RGBA: positive (the region adds resemblance) warm, yellow to red as it grows; negative faint blue.
function colour(value, maxPositive, maxNegative) {
  if (value > 0 && maxPositive > 0) {
    const k = value / maxPositive;
    return [255, Math.round(210 * (1 - k)), 40, Math.round(255 * MAX_ALPHA * k)];
  }
  if (value < 0 && maxNegative > 0) return [60, 120, 255, Math.round(255 * 0.3 * (-value / maxNegative))];
  return [0, 0, 0, 0];
}

function heatLayer(grid) {
  const rows = grid.length;
  const cols = grid[0].length;
  const values = grid.flat();
  const maxPositive = Math.max(0, ...values);
  const maxNegative = Math.max(0, ...values.map((v) => -v));
  const layer = document.createElement("canvas");
  layer.width = cols;
  layer.height = rows;
  const ctx = layer.getContext("2d");
  const pixels = ctx.createImageData(cols, rows);
  values.forEach((value, i) => pixels.data.set(colour(value, maxPositive, maxNegative), i * 4));
  ctx.putImageData(pixels, 0, 0);
  return layer;
}

// photo: an ImageBitmap of the upload; image: the API's {width, height} of it, the space `transform` maps from.
function drawExplanation(canvas, explanation, photo, image) {
  const ctx = canvas.getContext("2d");
  const s = canvas.width / explanation.size;
  const [[m00, m01, m02], [m10, m11, m12]] = explanation.transform;
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.setTransform(m00 * s, m10 * s, m01 * s, m11 * s, m02 * s, m12 * s);
  ctx.drawImage(photo, 0, 0, image.width, image.height);
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  // The grid covers rows*cell aligned pixels; upscaling the tiny layer with smoothing blends the cells.
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = "high";
  const grid = explanation.grid;
  ctx.drawImage(heatLayer(grid), 0, 0, grid[0].length * explanation.cell * s, grid.length * explanation.cell * s);
}

function figure(explanation, photo, image, name, alike) {
  const canvas = el("canvas", {
    class: "heatmap",
    width: CANVAS_PX,
    height: CANVAS_PX,
    role: "img",
    "aria-label": t("why_face_label", { name }),
  });
  drawExplanation(canvas, explanation, photo, image);
  const memberPhoto = el("img", {
    src: `/members/${explanation.member_id}/photos/${explanation.photo_id}`,
    alt: t("why_member_alt", { name }),
    width: CANVAS_PX,
    height: CANVAS_PX,
    loading: "lazy",
  });
  return el("figure", {}, [
    el("div", { class: "why-images" }, [canvas, memberPhoto]),
    el("figcaption", { text: t(alike ? "why_caption" : "why_caption_nobody", { name }) }),
  ]);
}

function working() {
  return el("div", { class: "why-working" }, [
    el("span", { class: "spinner", "aria-hidden": "true" }),
    el("p", { text: t("why_working") }),
  ]);
}

function failed(code, view, details) {
  const retry = el("button", { type: "button", class: "button", text: t("why_retry") });
  retry.addEventListener("click", () => {
    view.why.retry();
    details.querySelector("summary").focus(); // the button is about to go
  });
  const text = t(code === "network" || code === "timeout" ? `error_${code}` : "why_failed");
  return el("div", { class: "why-problem" }, [el("p", { text }), retry]);
}

// Shows in an open disclosure what view.why.state(index) says: working, the map, or why there is none. Called again
// whenever that state changes; a state already shown is left alone.
export function fillWhy(details, view) {
  const index = Number(details.dataset.face);
  const why = view.why.state(index);
  const body = details.querySelector(".why-body");
  if (body.dataset.status === why.status) return;
  body.dataset.status = why.status;
  body.setAttribute("aria-busy", String(why.status === "working"));
  const content = {
    working,
    done: () => figure(why.explanation, view.photo, view.image, why.name, why.alike),
    failed: () => failed(why.code, view, details),
    mismatch: () => el("div", { class: "why-problem" }, [el("p", { text: t("why_mismatch") })]),
  }[why.status];
  body.replaceChildren(content());
}

// The "Why?" disclosure of face `index`. Its explanation is asked for when it is first opened
// (view.why.toggle starts one request for every face of the photo); it stays open across re-renders.
export function renderWhy(index, view) {
  const details = el("details", { class: "why", "data-face": index }, [
    el("summary", { text: t("why") }),
    el("div", { class: "why-body", "aria-live": "polite" }),
  ]);
  details.addEventListener("toggle", () => {
    view.why.toggle(index, details.open);
    if (details.open) fillWhy(details, view);
  });
  if (view.why.isOpen(index)) {
    details.open = true;
    fillWhy(details, view);
  }
  return details;
}
