// The admin console: token login, the language switch and a hash router over the views (#/groups/<slug>,
// #/member/<id>, #/review, #/versions/<slug>, #/jobs). Each view module renders itself from the admin API.
import { api, onRefused, session } from "./admin-api.js";
import { errorText, fail, h, live, say } from "./admin-dom.js";
import { renderGroups } from "./admin-groups.js";
import { renderJobs } from "./admin-jobs.js";
import { renderMember } from "./admin-member.js";
import { MESSAGES } from "./admin-messages.js";
import { renderReview } from "./admin-review.js";
import { renderVersions } from "./admin-versions.js";
import { addMessages, locale, onLocaleChange, setLocale, t, translate } from "./i18n.js";

const ROUTES = {
  groups: (view, [slug]) => renderGroups(view, { slug }),
  member: (view, [id]) => renderMember(view, { id: Number(id) }),
  review: (view, [group]) => renderReview(view, { group }),
  versions: (view, [slug]) => renderVersions(view, { slug }),
  jobs: (view) => renderJobs(view),
};
const $ = (id) => document.getElementById(id);

addMessages(MESSAGES);

function showLogin(reason, kind = "error") {
  $("app").hidden = true;
  $("nav").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  $("view").replaceChildren();
  say($("login-message"), reason ?? null, kind);
  $("token").focus();
}

function showApp() {
  $("login").hidden = true;
  $("app").hidden = false;
  $("nav").hidden = false;
  $("logout").hidden = false;
  route();
}

async function route() {
  if (!session.token()) return showLogin();
  const [first, ...params] = location.hash.replace(/^#\/?/, "").split("/").map(decode);
  const name = Object.hasOwn(ROUTES, first) ? first : "groups";
  const section = name === "member" ? "groups" : name;
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.route === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  // A fresh container per route: a slow view that finishes after the next navigation renders off-page.
  const view = h("div", { class: "view", "aria-busy": "true" }, h("p", { class: "muted loading" }, t("loading")));
  $("view").replaceChildren(view);
  try {
    await ROUTES[name](view, params);
  } catch (error) {
    if (error.refused) return; // the login form is already back
    const slot = h("p", { role: "alert" });
    view.replaceChildren(slot);
    fail(slot, error);
  } finally {
    view.removeAttribute("aria-busy");
  }
  // Keyboard and screen-reader users land on the new view's heading, not back at the top of the page.
  if (view.isConnected) view.querySelector("h1")?.focus();
}

// A hand-typed hash may hold a stray "%": kept as typed rather than thrown.
function decode(part) {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

async function login(event) {
  event.preventDefault();
  const input = $("token");
  const button = $("login-submit");
  const token = input.value.trim();
  if (!token) return;
  button.disabled = true;
  try {
    await api("/admin/groups", { token });
    session.start(token);
    input.value = "";
    showApp();
  } catch (error) {
    // 401: a wrong token; 403: this server has no admin token at all; 0: it cannot be reached.
    say($("login-message"), error.status === 401 ? live(() => t("login_refused")) : error);
    input.select();
  } finally {
    button.disabled = false;
  }
}

function syncLocaleSwitch() {
  for (const button of document.querySelectorAll("[data-locale]")) {
    button.setAttribute("aria-pressed", String(button.dataset.locale === locale()));
  }
  document.title = t("page_title");
}

onRefused((error) => {
  session.end();
  showLogin(live(() => `${t("session_ended")} ${errorText(error)}`));
});
onLocaleChange(syncLocaleSwitch);
for (const button of document.querySelectorAll("[data-locale]")) {
  button.addEventListener("click", () => setLocale(button.dataset.locale));
}
$("login-form").addEventListener("submit", login);
$("logout").addEventListener("click", () => {
  session.end();
  location.hash = "";
  showLogin(live(() => t("logged_out")), "info");
});
window.addEventListener("hashchange", () => session.token() && route());

translate(document);
syncLocaleSwitch();
if (session.token()) showApp();
else showLogin();
