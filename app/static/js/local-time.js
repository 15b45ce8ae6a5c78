// Times marked data-local are rendered in UTC by the server; show them in the browser's own time zone,
// on the page and in every fragment htmx swaps in later (tabs, auto-refresh, task outcomes).
(function () {
  function localise(root) {
    root.querySelectorAll("time[data-local]").forEach((element) => {
      const moment = new Date(element.getAttribute("datetime"));
      if (!Number.isNaN(moment.getTime())) {
        element.textContent = moment.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
      }
    });
  }
  if (window.htmx) {
    window.htmx.onLoad((element) => localise(element.parentElement || element));
  } else {
    localise(document);
  }
})();
