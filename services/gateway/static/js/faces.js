// The face boxes over the uploaded photo: one focusable button per face, placed in % of the photo so that they
// follow the picture at any width without being recomputed.
import { el } from "./dom.js";
import { t } from "./i18n.js";

const percent = (value, total) => `${(100 * Math.min(Math.max(value, 0), total)) / total}%`;

// Positions `node` over box [x1, y1, x2, y2] of a photo of {width, height} pixels, in % of the photo.
export function placeBox(node, [x1, y1, x2, y2], { width, height }) {
  Object.assign(node.style, {
    left: percent(x1, width),
    top: percent(y1, height),
    width: percent(Math.min(x2, width) - Math.max(x1, 0), width),
    height: percent(Math.min(y2, height) - Math.max(y1, 0), height),
  });
  return node;
}

export function renderBoxes(container, result, onSelect) {
  const boxes = result.faces.map((face, i) => {
    const box = el(
      "button",
      { type: "button", class: `face-box ${face.verdict}`, "aria-label": t("face_n", { n: i + 1 }) },
      [el("span", { class: "face-number", "aria-hidden": "true", text: String(i + 1) })],
    );
    placeBox(box, face.box, result.image);
    box.addEventListener("click", () => onSelect(i));
    return box;
  });
  container.replaceChildren(...boxes);
}
