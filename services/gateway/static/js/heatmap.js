// "Why?": the aligned face the model saw, with the regions that raise the resemblance to the member painted warm,
// beside that member's closest gallery photo. The explanation comes with the face from POST /diagnose?explain=true.
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

export function renderExplanation(explanation, photo, image, name) {
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
  return el("details", { class: "why" }, [
    el("summary", { text: t("why") }),
    el("figure", {}, [
      el("div", { class: "why-images" }, [canvas, memberPhoto]),
      el("figcaption", { text: t("why_caption", { name }) }),
    ]),
  ]);
}
