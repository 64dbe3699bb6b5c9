// The language toggle: buttons with data-locale="en|ja" inside a container; the pressed one is the current locale.
import { locale, onLocaleChange, setLocale } from "./i18n.js";

export function mountLocaleSwitch(container) {
  const buttons = [...container.querySelectorAll("[data-locale]")];
  const sync = () => {
    for (const button of buttons) button.setAttribute("aria-pressed", String(button.dataset.locale === locale()));
  };
  for (const button of buttons) button.addEventListener("click", () => setLocale(button.dataset.locale));
  onLocaleChange(sync);
  sync();
}
