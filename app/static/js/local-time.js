// Times marked data-local are rendered in UTC by the server; show them in the browser's own time zone.
document.querySelectorAll("time[data-local]").forEach((element) => {
  const moment = new Date(element.getAttribute("datetime"));
  if (!Number.isNaN(moment.getTime())) {
    element.textContent = moment.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
  }
});
