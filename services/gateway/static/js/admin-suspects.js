// An index version's suspected label errors: pairs of photos of two members that score like one and the same
// person (a photo filed under the wrong member, one person under two names, twins). Both photos side by side,
// fetched with the token like the review queue's, the members, the similarity, the kind, and whether the photo
// waits in the review queue (flagged) or a reviewer kept it (approved).
import { bitmap } from "./admin-api.js";
import { h, label, live, num, tx, wholePhoto } from "./admin-dom.js";
import { t } from "./i18n.js";

const PHOTO_PX = 160;

// names: member id -> display name (pairs of members the caller does not know show their slug).
export function suspectPairs(pairs, { group, names }) {
  const items = pairs.map((pair) => {
    const member = names.get(pair.member_id) ?? pair.member;
    const other = names.get(pair.other_member_id) ?? pair.other_member;
    return suspectPair(pair, member, other);
  });
  return h(
    "section",
    { class: "suspects" },
    h("h3", {}, live(() => t("suspects_title", { n: num(pairs.length) }))),
    h("p", { class: "muted" }, tx("suspects_lead")),
    h("ul", { class: "suspect-list" }, items),
    h("p", {}, h("a", { class: "review-link", href: `#/review/${encodeURIComponent(group)}` }, tx("suspects_review"))),
  );
}

function suspectPair(pair, member, other) {
  const kind = () => {
    const key = `suspect_kind_${pair.kind}`;
    const text = t(key, { member, other });
    return text === key ? pair.kind : text; // a kind newer than this page
  };
  const status = h("span", { class: `chip status-${pair.status}` }, live(() => label("suspect_status", pair.status)));
  return h(
    "li",
    { class: "suspect-pair", dataset: { photoId: pair.photo_id, kind: pair.kind, status: pair.status } },
    h(
      "div",
      { class: "suspect-photos" },
      photo(pair.photo_url, pair.photo_id, member),
      photo(pair.other_photo_url, pair.other_photo_id, other),
    ),
    h("p", { class: "suspect-similarity" }, live(() => t("suspect_similarity", { value: num(pair.similarity, 3) }))),
    h("p", { class: "suspect-kind" }, live(kind)),
    h("p", {}, status),
  );
}

// The photo behind the token (an <img> cannot send it), drawn once it arrives.
function photo(url, id, member) {
  const slot = h("div", { class: "placeholder" }, tx("loading"));
  const caption = h("figcaption", {}, h("b", {}, member), " ", live(() => t("suspect_photo_n", { id })));
  bitmap(url).then(
    (image) => slot.replaceWith(wholePhoto(image, PHOTO_PX, () => t("suspect_photo_alt", { member, id }))[0]),
    () => slot.replaceChildren(tx("review_no_preview")),
  );
  return h("figure", { class: "suspect-photo", dataset: { photoId: id } }, slot, caption);
}
