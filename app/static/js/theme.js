// Proxboard's colour theme, applied in <head> before the first paint (an external file: the
// Content-Security-Policy allows no inline script). <html data-theme> is the user's choice; "auto"
// follows the operating system's light or dark preference, also when it changes later.
(function () {
  "use strict";
  const root = document.documentElement;
  const dark = window.matchMedia("(prefers-color-scheme: dark)");

  function apply() {
    const choice = root.dataset.theme || "auto";
    root.setAttribute("data-bs-theme", choice === "auto" ? (dark.matches ? "dark" : "light") : choice);
  }

  apply();
  dark.addEventListener("change", apply);
})();
