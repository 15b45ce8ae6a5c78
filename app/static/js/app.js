// Proxboard: progressive enhancement on top of server-rendered pages (everything works without it).
(function () {
  "use strict";

  function showToast(message, category) {
    const colour = { error: "danger", message: "info" }[category] || category || "info";
    const box = document.getElementById("toasts");
    if (!box) return;
    const el = document.createElement("div");
    el.className = "toast align-items-center text-bg-" + colour + " border-0";
    el.setAttribute("role", "status");
    el.dataset.appToast = "";
    el.dataset.category = colour;
    const row = document.createElement("div");
    row.className = "d-flex";
    const body = document.createElement("div");
    body.className = "toast-body";
    body.textContent = message;
    const close = document.createElement("button");
    close.type = "button";
    close.className = "btn-close btn-close-white me-2 m-auto";
    close.dataset.bsDismiss = "toast";
    close.setAttribute("aria-label", "Close");
    row.append(body, close);
    el.append(row);
    box.append(el);
    bootstrap.Toast.getOrCreateInstance(el, { delay: colour === "danger" ? 10000 : 5000 }).show();
    el.addEventListener("hidden.bs.toast", () => el.remove());
  }
  window.proxboardToast = showToast;

  function initToasts(root) {
    root.querySelectorAll("[data-app-toast]:not(.show)").forEach((el) => {
      const danger = el.dataset.category === "danger";
      bootstrap.Toast.getOrCreateInstance(el, { delay: danger ? 10000 : 5000 }).show();
    });
  }

  function initTooltips(root) {
    root.querySelectorAll('[data-bs-toggle="tooltip"]').forEach((el) => {
      bootstrap.Tooltip.getOrCreateInstance(el);
    });
  }

  // Auto-refresh: an element with data-refresh-seconds counts down, then asks htmx to
  // re-fetch its target; pauses while the tab is hidden; "Refresh now" triggers it early.
  function initCountdowns(root) {
    root.querySelectorAll("[data-refresh-seconds]:not([data-countdown-ready])").forEach((el) => {
      el.dataset.countdownReady = "1";
      const period = parseInt(el.dataset.refreshSeconds, 10) || 30;
      const label = el.querySelector("[data-countdown]");
      const text = el.querySelector("[data-countdown-label]");
      if (text) text.hidden = false;  // hidden in the page: without JavaScript nothing counts down
      let remaining = period;
      const tick = () => {
        if (!document.body.contains(el)) { clearInterval(timer); return; }
        if (document.hidden) return;
        remaining -= 1;
        if (remaining <= 0) { remaining = period; refresh(); }
        if (label) label.textContent = remaining + "s";
      };
      const refresh = () => {
        remaining = period;
        if (label) label.textContent = remaining + "s";
        htmx.trigger(el, "refresh");
      };
      el.addEventListener("refresh-now", refresh);
      const button = el.querySelector("[data-refresh-now]");
      if (button) button.addEventListener("click", (event) => { event.preventDefault(); refresh(); });
      const timer = setInterval(tick, 1000);
    });
  }

  // Confirmation dialogs: a link with data-confirm-url loads the confirmation fragment into a modal.
  function initConfirmLinks() {
    document.body.addEventListener("click", (event) => {
      const link = event.target.closest("a[data-confirm]");
      if (!link) return;
      event.preventDefault();
      const modalEl = document.getElementById("confirm-modal");
      if (!modalEl) { window.location = link.href; return; }
      const content = modalEl.querySelector(".modal-content");
      content.replaceChildren();  // a refused answer (403: its toast says why) swaps nothing: no stale dialog
      htmx.ajax("GET", link.href, { target: "#confirm-modal .modal-content", swap: "innerHTML" }).then(() => {
        if (content.childElementCount) bootstrap.Modal.getOrCreateInstance(modalEl).show();
      });
    });
  }

  // <details> keep their open state through htmx swaps (auto-refresh), matched by id.
  function keepDetailsOpen() {
    let open = [];
    document.body.addEventListener("htmx:beforeSwap", () => {
      open = Array.from(document.querySelectorAll("details[id][open]"), (el) => el.id);
    });
    document.body.addEventListener("htmx:afterSwap", () => {
      open.forEach((id) => { const el = document.getElementById(id); if (el) el.open = true; });
    });
  }

  // Revealed credentials: copy a value, or hide them again by putting the Show form back.
  function initCredentials() {
    document.body.addEventListener("click", (event) => {
      const copy = event.target.closest("[data-copy]");
      if (copy) {
        const field = document.querySelector(copy.dataset.copy);
        if (!field) return;
        navigator.clipboard.writeText(field.value).then(
          () => showToast("Copied to the clipboard.", "success"),
          () => { field.select(); showToast("Press Ctrl+C to copy.", "info"); });
        return;
      }
      const hide = event.target.closest("[data-hide-credentials]");
      if (!hide) return;
      const box = hide.closest("[data-credentials]");
      const form = box && box.querySelector("template[data-hidden-form]");
      if (!form) return;
      event.preventDefault();
      box.replaceChildren(form.content.cloneNode(true));
      htmx.process(box);
    });
  }

  // Card menus are <details> (they work without JavaScript); close them like a dropdown.
  function initMenus() {
    document.addEventListener("click", (event) => {
      document.querySelectorAll("details.card-menu[open]").forEach((menu) => {
        if (!menu.contains(event.target) || event.target.closest(".dropdown-item")) menu.removeAttribute("open");
      });
    });
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape") document.querySelectorAll("details.card-menu[open]").forEach((m) => m.removeAttribute("open"));
    });
  }

  // A field that matters only for some choices of a select: data-shown-for="<select id> value value…".
  // Without JavaScript every field shows (its help says when it applies).
  function initShownFor(root) {
    root.querySelectorAll("[data-shown-for]").forEach((field) => {
      const [id, ...values] = field.dataset.shownFor.split(" ");
      const select = document.getElementById(id);
      if (!select) return;
      const update = () => { field.hidden = !values.includes(select.value); };
      select.addEventListener("change", update);
      update();
    });
  }

  // Tabs scroll sideways on phones (app.css): bring the open one, whose label shows, fully into view.
  function revealActiveTabs(root) {
    root.querySelectorAll(".nav-tabs").forEach((nav) => {
      const active = nav.querySelector(".nav-link.active");
      if (!active || nav.scrollWidth <= nav.clientWidth) return;
      const box = active.getBoundingClientRect();
      const bounds = nav.getBoundingClientRect();
      if (box.right > bounds.right) nav.scrollLeft += box.right - bounds.right;
      else if (box.left < bounds.left) nav.scrollLeft -= bounds.left - box.left;
    });
  }

  // Auto-refresh asks "has it changed?": the refreshing element keeps the ETag of what it shows and
  // sends it as If-None-Match; a 304 (nothing new, no body) leaves the page as it is.
  function initConditionalRefresh() {
    htmx.config.responseHandling.unshift({ code: "304", swap: false });
    const refreshing = (el) => el && el.hasAttribute && el.hasAttribute("data-refresh-seconds");
    document.body.addEventListener("htmx:configRequest", (event) => {
      const el = event.detail.elt;
      if (event.detail.verb === "get" && refreshing(el) && el.dataset.etag) {
        event.detail.headers["If-None-Match"] = el.dataset.etag;
      }
    });
    document.body.addEventListener("htmx:afterRequest", (event) => {
      const el = event.detail.elt;
      const xhr = event.detail.xhr;
      if (!refreshing(el) || !xhr || xhr.status !== 200) return;
      const tag = xhr.getResponseHeader("ETag");
      if (tag) el.dataset.etag = tag; else delete el.dataset.etag;
    });
  }

  function init(root) {
    revealActiveTabs(root);
    initShownFor(root);
    initToasts(root);
    initTooltips(root);
    initCountdowns(root);
  }

  // Again once fonts and images are in (icons widen the tabs) and when the window changes width.
  window.addEventListener("load", () => revealActiveTabs(document));
  window.addEventListener("resize", () => revealActiveTabs(document));

  document.addEventListener("DOMContentLoaded", () => {
    init(document);
    initConditionalRefresh();
    initConfirmLinks();
    initMenus();
    keepDetailsOpen();
    initCredentials();
    document.body.addEventListener("htmx:afterSettle", (event) => init(event.detail.elt || document));
    document.body.addEventListener("toast", (event) => showToast(event.detail.message, event.detail.category));
    document.body.addEventListener("close-modal", () => {
      const modalEl = document.getElementById("confirm-modal");
      if (modalEl) bootstrap.Modal.getOrCreateInstance(modalEl).hide();
    });
    document.body.addEventListener("htmx:responseError", (event) => {
      const xhr = event.detail.xhr;
      if (xhr.status === 401) { window.location.reload(); return; }
      // The answer brought its own toast (a 403 naming the role needed): htmx already showed it.
      if ((xhr.getResponseHeader("HX-Trigger") || "").includes('"toast"')) return;
      showToast("The server answered " + xhr.status + ". Please try again.", "danger");
    });
    document.body.addEventListener("htmx:sendError", () => {
      showToast("Cannot reach Proxboard. Check your connection.", "danger");
    });
  });
})();
