// Bulk actions on the dashboard: count the selection, keep it through the grid's refreshes, make the bar
// sticky while something is selected, and open the confirmation in the dialog. Without this script the
// bar is a plain GET form to the confirmation page.
(function () {
  "use strict";
  const selected = new Set();

  function form() { return document.getElementById("bulk-form"); }
  function boxes() { return Array.from(document.querySelectorAll("input[data-bulk-select]")); }

  function update() {
    const bar = form();
    if (!bar) return;
    const all = bar.querySelector("[data-bulk-all]").checked;
    const count = all ? Number(bar.dataset.matching || 0) : selected.size;
    const label = bar.querySelector("[data-bulk-count]");
    if (label) label.textContent = count + " selected";
    bar.classList.toggle("bulk-active", count > 0);
    const page = bar.querySelector("[data-bulk-page]");
    const visible = boxes();
    if (page) page.checked = visible.length > 0 && visible.every((box) => box.checked);
  }

  function restore() {
    const bar = form();
    // the refreshed grid's active filter pill holds how many containers match now
    const pill = document.querySelector("#dashboard-body [aria-current=page] .badge");
    if (bar && pill) {
      bar.dataset.matching = pill.textContent.trim();
      bar.querySelector("[data-bulk-matching]").textContent = bar.dataset.matching;
    }
    const all = bar && bar.querySelector("[data-bulk-all]").checked;
    boxes().forEach((box) => { box.checked = all || selected.has(box.value); });
    update();
  }

  function clear() {
    selected.clear();
    const bar = form();
    if (bar) bar.querySelector("[data-bulk-all]").checked = false;
    restore();
  }

  document.addEventListener("DOMContentLoaded", () => {
    const bar = form();
    if (!bar) return;
    bar.querySelectorAll(".bulk-js").forEach((el) => { el.hidden = false; });
    boxes().forEach((box) => { if (box.checked) selected.add(box.value); });
    update();

    document.body.addEventListener("change", (event) => {
      const box = event.target.closest("input[data-bulk-select]");
      if (box) {
        const all = form().querySelector("[data-bulk-all]");
        if (!box.checked && all.checked) {  // leaving one out: from "all matching" back to the cards checked
          all.checked = false;
          boxes().forEach((b) => { if (b.checked) selected.add(b.value); });
        }
        if (box.checked) selected.add(box.value); else selected.delete(box.value);
        update();
      } else if (event.target.matches("[data-bulk-page]")) {
        boxes().forEach((b) => {
          b.checked = event.target.checked;
          if (b.checked) selected.add(b.value); else selected.delete(b.value);
        });
        update();
      } else if (event.target.matches("[data-bulk-all]")) {
        if (!event.target.checked) selected.clear();
        restore();
      }
    });
    document.body.addEventListener("htmx:afterSwap", restore);
    document.body.addEventListener("bulk-started", clear);

    bar.addEventListener("submit", (event) => {
      const modalEl = document.getElementById("confirm-modal");
      if (!modalEl) return;
      event.preventDefault();
      const data = new FormData(bar, event.submitter);
      if (!bar.querySelector("[data-bulk-all]").checked && !data.getAll("vmid").length) {
        document.body.dispatchEvent(new CustomEvent("toast", { detail: { message: "Select containers first.", category: "warning" } }));
        return;
      }
      const url = bar.getAttribute("action") + "?" + new URLSearchParams(data).toString();  // bar.action is its "action" buttons
      const content = modalEl.querySelector(".modal-content");
      content.replaceChildren();
      htmx.ajax("GET", url, { target: "#confirm-modal .modal-content", swap: "innerHTML" }).then(() => {
        if (content.childElementCount) bootstrap.Modal.getOrCreateInstance(modalEl).show();
      });
    });
  });
})();
