// Building blocks for the admin views: elements from plain data (no innerHTML, so names and URLs from the
// database can never become markup) and text that follows the language switch without re-rendering a view
// (a re-render would drop typed input and the job cards that are polling).
import { ApiError } from "./admin-api.js";
import { locale, onLocaleChange, t } from "./i18n.js";

const registry = new Set();
let sinceSweep = 0;

onLocaleChange(() => {
  for (const entry of registry) {
    const node = entry.ref.deref();
    if (node) entry.update(node);
    else registry.delete(entry);
  }
});

// `update(node)` must not capture the node itself: the registry holds it weakly so that views can be dropped.
function register(node, update) {
  update(node);
  registry.add({ ref: new WeakRef(node), update });
  if (++sinceSweep > 500) {
    sinceSweep = 0;
    for (const entry of registry) if (!entry.ref.deref()) registry.delete(entry);
  }
  return node;
}

// A text node showing t(key, vars), kept in the current language.
export function tx(key, vars = {}) {
  return register(document.createTextNode(""), (node) => (node.data = t(key, vars)));
}

// A text node showing render(), re-run when the language changes (numbers, dates, composed phrases).
export function live(render) {
  return register(document.createTextNode(""), (node) => (node.data = render()));
}

// An attribute (aria-label, placeholder, title) kept in the current language.
export function attr(node, name, key, vars = {}) {
  return liveAttr(node, name, () => t(key, vars));
}

export function liveAttr(node, name, render) {
  return register(node, (el) => el.setAttribute(name, render()));
}

// h("button", {class: "primary", onclick}, tx("save")): attributes, listeners (on*) and children in one call.
export function h(tag, props = {}, ...children) {
  const node = props.xmlns ? document.createElementNS(props.xmlns, tag) : document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "xmlns") continue;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

const SVG = "http://www.w3.org/2000/svg";

// SVG elements (the charts) with the same calling convention.
export function s(tag, props = {}, ...children) {
  return h(tag, { ...props, xmlns: SVG }, ...children);
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
}

// The translation of a code from the API (a status, a curation reason), or the code itself when it is new.
export function label(prefix, code) {
  const key = `${prefix}_${code}`;
  const text = t(key);
  return text === key ? code : text;
}

export function num(value, digits = 0) {
  const format = { minimumFractionDigits: digits, maximumFractionDigits: digits };
  return new Intl.NumberFormat(locale(), format).format(value);
}

export function date(iso) {
  if (!iso) return "";
  return new Intl.DateTimeFormat(locale(), { dateStyle: "medium", timeStyle: "short" }).format(new Date(iso));
}

// A slug the API accepts (^[a-z0-9][a-z0-9_-]{0,63}$) suggested from a display name; empty for non-Latin names.
export function slugify(name) {
  return name
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "")
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "_")
    .replace(/^_+|_+$/g, "")
    .slice(0, 64);
}

// Photo counts per status as small labelled chips, in a fixed order (usable first, then what needs attention).
const STATUS_ORDER = ["ok", "approved", "flagged", "rejected", "excluded"];

export function photoChips(counts = {}) {
  const rank = (status) => STATUS_ORDER.indexOf(status) + 1 || STATUS_ORDER.length + 1;
  const statuses = Object.keys(counts).sort((a, b) => rank(a) - rank(b));
  if (!statuses.length) return h("span", { class: "muted" }, tx("no_photos"));
  return h(
    "ul",
    { class: "chips" },
    statuses.map((status) =>
      h(
        "li",
        { class: `chip status-${status}`, dataset: { status } },
        h("b", {}, live(() => num(counts[status]))),
        " ",
        live(() => label("status", status)),
      ),
    ),
  );
}

// What went wrong, in words: our translation of the API's stable code, else the API's own message.
export function errorText(error) {
  const text = label("error", error.code);
  return text === error.code ? error.message || error.code : text;
}

// Fill a message slot (role="status" or "alert" in the markup) with an error or a confirmation; null clears it.
export function say(slot, content, kind = "error") {
  slot.className = content ? `message ${kind}` : "message";
  slot.replaceChildren(...(content ? [content instanceof Error ? live(() => errorText(content)) : content] : []));
}

// Run an async action from a button: the button is disabled meanwhile and a failure lands in the slot (never an
// unhandled rejection). An error that is not the API's is a bug: it is reported as well, so tests see it.
export async function act(control, slot, action) {
  control.disabled = true;
  say(slot, null);
  try {
    return await action();
  } catch (error) {
    fail(slot, error);
    return undefined;
  } finally {
    control.disabled = false;
  }
}

export function fail(slot, error) {
  say(slot, error);
  if (!(error instanceof ApiError)) reportError(error);
}

// A labelled form field; `hint` is a message key shown under it and tied to it for screen readers.
export function field(id, labelKey, control, hint) {
  if (hint) control.setAttribute("aria-describedby", `${id}-hint`);
  return h(
    "div",
    { class: "field" },
    h("label", { for: id }, tx(labelKey)),
    control,
    hint ? h("small", { id: `${id}-hint`, class: "muted" }, tx(hint)) : null,
  );
}

// A group picker for a view's header: choosing a group opens `route(slug)` ("" for the `allKey` option, if any).
export function groupPicker(id, groups, selected, route, allKey) {
  const select = h(
    "select",
    { id },
    allKey && h("option", { value: "" }, tx(allKey)),
    groups.map((g) => h("option", { value: g.slug, selected: g.slug === selected }, g.name)),
  );
  select.addEventListener("change", () => (location.hash = route(select.value)));
  const labelNode = h("label", { for: id, class: "visually-hidden" }, tx("field_group"));
  return h("div", { class: "tools" }, labelNode, select);
}

// A canvas sharp on high-density screens, described for screen readers by describe() in the current language.
export function sharpCanvas(width, height, describe) {
  const dpr = window.devicePixelRatio || 1;
  const node = h("canvas", { width: Math.round(width * dpr), height: Math.round(height * dpr), role: "img" });
  node.style.width = `${width}px`;
  node.style.height = `${height}px`;
  liveAttr(node, "aria-label", describe);
  const ctx = node.getContext("2d");
  ctx.scale(dpr, dpr);
  return [node, ctx];
}

// A whole photo (an ImageBitmap from bitmap()) scaled to fit maxPx x maxPx: [canvas, its context, the scale].
export function wholePhoto(image, maxPx, describe) {
  const scale = Math.min(maxPx / image.width, maxPx / image.height);
  const [node, ctx] = sharpCanvas(image.width * scale, image.height * scale, describe);
  ctx.drawImage(image, 0, 0, image.width * scale, image.height * scale);
  return [node, ctx, scale];
}
