// One face's result card: headline, the closest members with resemblance bars, the margin to the runner-up,
// hints about the photo, the "Why?" heatmap and the download of the result image.
import { el } from "./dom.js";
import { renderWhy } from "./heatmap.js";
import { t } from "./i18n.js";
import { saveCard } from "./share.js";

const SHOWN_MATCHES = 3;
const HINTS = new Set(["small_face", "blurred", "turned"]);

export const cardId = (index) => `face-card-${index + 1}`;

function memberRow(match, view) {
  const pct = Math.round(match.resemblance);
  return el("li", { class: "member" }, [
    el("img", { src: match.photo_url, alt: "", width: 64, height: 64 }),
    el("div", { class: "member-info" }, [
      el("div", { class: "member-line" }, [
        el("span", { class: "member-name", text: view.name(match) }),
        el("span", { class: "member-pct", text: `${pct}%` }),
      ]),
      el("div", { class: "bar", "aria-hidden": "true" }, [el("span", { class: "bar-fill", style: `width:${pct}%` })]),
    ]),
  ]);
}

function headline(face, view) {
  const best = face.matches[0];
  if (face.verdict === "match") return t("headline_match", { name: view.name(best) });
  return t(view.oneGroup ? "headline_nobody" : "headline_nobody_gallery");
}

// The margin in resemblance points (what the bars show) and in raw similarity (what the API reports).
function margin(face, view) {
  const [best, runnerUp] = face.matches;
  if (face.verdict !== "match" || !runnerUp || face.margin == null) return null;
  const points = Math.round(best.resemblance - runnerUp.resemblance);
  return el("p", {
    class: "margin",
    text: t("margin", { points, name: view.name(runnerUp), margin: face.margin.toFixed(2) }),
  });
}


export function renderCard(face, index, view) {
  const isMatch = face.verdict === "match";
  const titleId = `${cardId(index)}-title`;
  const save = el("button", { type: "button", class: "button", text: t("save_card") });
  save.addEventListener("click", () => saveCard(face, index, view).catch(view.onError));
  const hints = face.warnings.filter((w) => HINTS.has(w));
  const parts = [
    el("header", { class: "face-card-header" }, [
      el("span", { class: "face-number", "aria-hidden": "true", text: String(index + 1) }),
      el("div", {}, [
        el("h3", { id: titleId, class: "face-title", text: t("face_n", { n: index + 1 }) }),
        el("p", { class: "headline", text: headline(face, view) }),
      ]),
    ]),
    isMatch ? null : el("p", { class: "nobody", text: t("nobody_kind") }),
    isMatch && face.same_person_likely
      ? el("p", { class: "same-person", text: t("same_person", { name: view.name(face.matches[0]) }) })
      : null,
    el("h4", { class: "matches-title", text: t(isMatch ? "top_matches" : "closest_not_close") }),
    el("ol", { class: "members" }, face.matches.slice(0, SHOWN_MATCHES).map((m) => memberRow(m, view))),
    margin(face, view),
    hints.length ? el("ul", { class: "hints" }, hints.map((w) => el("li", { text: t(`hint_${w}`) }))) : null,
    view.why.available(index) ? renderWhy(index, view) : null,
    el("div", { class: "card-actions" }, [save]),
  ];
  return el(
    "article",
    { id: cardId(index), class: `face-card ${face.verdict}`, "aria-labelledby": titleId },
    parts.filter(Boolean),
  );
}
