// One face's result card: the verdict (same_person, lookalike or no_match) as a headline and a sentence, the
// closest members with resemblance bars, the margin to the runner-up, hints about the photo, the "Why?" heatmap
// and the download of the result image. An answer from several photos of one person says how many.
import { el } from "./dom.js";
import { renderWhy } from "./heatmap.js";
import { t } from "./i18n.js";
import { saveCard } from "./share.js";
import { resembles } from "./verdict.js";

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
  if (resembles(face)) return t(`headline_${face.verdict}`, { name: view.name(face.matches[0]) });
  return t(view.oneGroup ? "headline_nobody" : "headline_nobody_gallery");
}

// What the verdict means, in a sentence under the headline.
function verdictNote(face, view) {
  if (!resembles(face)) return el("p", { class: "verdict-note", text: t("nobody_kind") });
  return el("p", { class: "verdict-note", text: t(`verdict_${face.verdict}`, { name: view.name(face.matches[0]) }) });
}

// The margin in resemblance points (what the bars show) and in ranking score (what the API reports).
function margin(face, view) {
  const [best, runnerUp] = face.matches;
  if (!resembles(face) || !runnerUp || face.margin == null) return null;
  const points = Math.round(best.resemblance - runnerUp.resemblance);
  return el("p", {
    class: "margin",
    text: t("margin", { points, name: view.name(runnerUp), margin: face.margin.toFixed(2) }),
  });
}

export function renderCard(face, index, view) {
  const alike = resembles(face);
  const titleId = `${cardId(index)}-title`;
  const save = el("button", { type: "button", class: "button", text: t("save_card") });
  save.addEventListener("click", () => saveCard(face, index, view).catch(view.onError));
  const hints = face.warnings.filter((w) => HINTS.has(w));
  const parts = [
    el("header", { class: "face-card-header" }, [
      el("span", { class: "face-number", "aria-hidden": "true", text: String(index + 1) }),
      el(
        "div",
        {},
        [
          el("h3", { id: titleId, class: "face-title", text: t("face_n", { n: index + 1 }) }),
          el("p", { class: "headline", text: headline(face, view) }),
          view.photoCount > 1 && el("p", { class: "from-photos", text: t("from_photos", { n: view.photoCount }) }),
        ].filter(Boolean),
      ),
    ]),
    verdictNote(face, view),
    el("h4", { class: "matches-title", text: t(alike ? "top_matches" : "closest_not_close") }),
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
