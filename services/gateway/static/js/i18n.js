// Messages in English and Japanese. The browser's languages choose at first; the user's switch is remembered.
// Pages add their own messages with addMessages() and mark static text with data-i18n="key"
// (data-i18n-attr="placeholder:key;aria-label:key" for attributes).

export const LOCALES = ["en", "ja"];
const STORE_KEY = "lookalike.locale";
const messages = { en: {}, ja: {} };
const listeners = [];
let current = detect();

function detect() {
  let stored = null;
  try {
    stored = localStorage.getItem(STORE_KEY);
  } catch {
    // Storage can be off (private mode): fall back to the browser's languages.
  }
  if (LOCALES.includes(stored)) return stored;
  for (const lang of navigator.languages || [navigator.language || "en"]) {
    const base = String(lang).toLowerCase().split("-")[0];
    if (LOCALES.includes(base)) return base;
  }
  return "en";
}

export function addMessages(table) {
  for (const locale of LOCALES) Object.assign(messages[locale], table[locale] || {});
}

export function locale() {
  return current;
}

// t("faces_found", {n: 3}) -> "3 faces found"; a missing key falls back to English, then to the key itself.
export function t(key, vars = {}) {
  const text = messages[current][key] ?? messages.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in vars ? String(vars[name]) : `{${name}}`));
}

export function setLocale(next) {
  if (!LOCALES.includes(next) || next === current) return;
  current = next;
  try {
    localStorage.setItem(STORE_KEY, next);
  } catch {
    // Not remembered, still switched.
  }
  translate(document);
  for (const listener of listeners) listener(next);
}

export function onLocaleChange(listener) {
  listeners.push(listener);
}

export function translate(root) {
  document.documentElement.lang = current;
  for (const node of root.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const node of root.querySelectorAll("[data-i18n-attr]")) {
    for (const pair of node.dataset.i18nAttr.split(";")) {
      const [attr, key] = pair.split(":");
      if (attr && key) node.setAttribute(attr.trim(), t(key.trim()));
    }
  }
}
