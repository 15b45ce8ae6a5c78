// Creation wizard: password generate/copy buttons and a single Create click (the server also refuses a second one).
(function () {
  "use strict";
  const ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";

  function generate(length) {
    const values = new Uint32Array(length);
    crypto.getRandomValues(values);
    return Array.from(values, (v) => ALPHABET[v % ALPHABET.length]).join("");
  }

  document.querySelectorAll("[data-generate-password]").forEach((button) => {
    button.hidden = false;
    button.addEventListener("click", () => {
      const value = generate(20);
      ["password", "password_confirm"].forEach((id) => {
        const input = document.getElementById(id);
        if (input) { input.value = value; input.type = "text"; }
      });
    });
  });

  document.querySelectorAll("[data-copy]").forEach((button) => {
    if (!navigator.clipboard) return;
    button.hidden = false;
    button.addEventListener("click", () => {
      const input = document.querySelector(button.dataset.copy);
      if (!input || !input.value) return;
      navigator.clipboard.writeText(input.value).then(
        () => window.proxboardToast && window.proxboardToast("Password copied.", "success"),
        () => window.proxboardToast && window.proxboardToast("Copy failed; select the text instead.", "danger"));
    });
  });

  // A field's error goes away as soon as the person changes the field (the server checks again on Next).
  document.addEventListener("input", clearError);
  document.addEventListener("change", clearError);
  function clearError(event) {
    const input = event.target.closest(".is-invalid");
    if (!input) return;
    input.classList.remove("is-invalid");
    const box = input.closest(".input-group") || input;
    box.parentElement.querySelectorAll(".invalid-feedback").forEach((message) => { message.hidden = true; });
  }

  document.querySelectorAll("[data-create-form]").forEach((form) => {
    form.addEventListener("submit", () => {
      form.querySelectorAll("button[type=submit]").forEach((b) => { b.disabled = true; });
    });
  });
})();

// Progress page: keep the log scrolled to the newest line while new ones arrive.
(function () {
  "use strict";
  const log = document.getElementById("provision-log");
  if (!log) return;
  log.scrollTop = log.scrollHeight;
  document.body.addEventListener("htmx:oobAfterSwap", (event) => {
    if (event.detail.target && event.detail.target.id === "provision-log") log.scrollTop = log.scrollHeight;
  });
})();
