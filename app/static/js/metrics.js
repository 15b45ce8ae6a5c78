// Metrics graphs (_macros/metrics.html): draws a uPlot chart into every [data-metrics-chart] from the JSON
// block beside it, on the page and in every fragment htmx swaps in later; follows the light/dark theme
// (<html data-bs-theme>) and the width of its card. The page may include this file again with each swap:
// it sets itself up once. uPlot is loaded on first need, from the URL the panel names.
(function () {
  "use strict";
  if (window.proxboardMetrics) {
    window.proxboardMetrics.drawAll(document);
    return;
  }

  const HEIGHT = 200;
  // Readable on white and on Bootstrap's dark body: [light theme, dark theme] per line of a chart.
  const PALETTE = [
    ["#0b5ed7", "#6ea8fe"], ["#d63384", "#e685b5"], ["#198754", "#75b798"], ["#fd7e14", "#feb272"],
  ];
  const charts = new Set();
  let loading = null;

  function loadUplot(src) {
    if (window.uPlot) return Promise.resolve(window.uPlot);
    if (!loading) {
      loading = new Promise((resolve, reject) => {
        const script = document.createElement("script");
        script.src = src;
        script.onload = () => resolve(window.uPlot);
        script.onerror = () => reject(new Error("uPlot did not load from " + src));
        document.head.append(script);
      });
    }
    return loading;
  }

  function binary(value, suffix) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let size = Math.abs(value);
    let unit = 0;
    while (size >= 1024 && unit < units.length - 1) {
      size /= 1024;
      unit += 1;
    }
    const number = size >= 100 || unit === 0 ? size.toFixed(0) : size.toFixed(1).replace(/\.0$/, "");
    return (value < 0 ? "-" : "") + number + " " + units[unit] + suffix;
  }

  // Tick steps of whole binary units (256 MiB, 1 GiB…) for sizes and rates: decimal steps read as 477 MiB.
  const BINARY_STEPS = [];
  for (let power = 0; power <= 5; power += 1) {
    [1, 2, 4, 8, 16, 32, 64, 128, 256, 512].forEach((m) => BINARY_STEPS.push(m * Math.pow(1024, power)));
  }

  function formatter(unit) {
    if (unit === "percent") {
      return (v) => (Math.abs(v) < 1 ? v.toFixed(2) : Math.abs(v) < 10 ? v.toFixed(1) : v.toFixed(0))
        .replace(/(\.\d*?)0+$/, "$1").replace(/\.$/, "") + " %";
    }
    if (unit === "bytes") return (v) => binary(v, "");
    if (unit === "bytes/s") return (v) => binary(v, "/s");
    return (v) => (Math.abs(v) < 10 ? v.toFixed(2) : v.toFixed(1));
  }

  function theme() {
    const dark = document.documentElement.getAttribute("data-bs-theme") === "dark";
    const style = getComputedStyle(document.documentElement);
    return {
      dark: dark,
      text: style.getPropertyValue("--bs-body-color").trim() || (dark ? "#dee2e6" : "#212529"),
      grid: dark ? "rgba(255,255,255,0.12)" : "rgba(0,0,0,0.1)",
    };
  }

  // The y axis as wide as its widest label ("1.5 GiB/s", "0.75 %"): a fixed width cut the long ones. uPlot
  // asks again while the layout settles, with other labels each time; the size only grows, so it settles.
  function axisSize(u, values, axisIndex, cycle) {
    const axis = u.axes[axisIndex];
    u.ctx.font = axis.font[0];
    const widest = (values || []).reduce((most, value) => Math.max(most, u.ctx.measureText(value).width), 0);
    const size = Math.ceil(axis.ticks.size + axis.gap + widest / (window.devicePixelRatio || 1)) + 4;
    return cycle > 1 ? Math.max(axis._size || 0, size) : size;
  }

  // The chart's own box (the card body around it has padding): uPlot draws at a fixed pixel size.
  function widthOf(element) {
    return Math.max(element.clientWidth, 200);
  }

  function options(data, width) {
    const colours = theme();
    const fmt = formatter(data.unit);
    const axis = {
      stroke: colours.text,
      grid: { stroke: colours.grid, width: 1 },
      ticks: { stroke: colours.grid, width: 1 },
    };
    const names = [];
    const series = [{ label: "Time" }];
    data.series.forEach((line) => {
      const base = line.label.replace(/ \(max\)$/, "");
      if (!names.includes(base)) names.push(base);
      const colour = PALETTE[names.indexOf(base) % PALETTE.length][colours.dark ? 1 : 0];
      series.push({
        label: line.label,
        stroke: colour,
        width: line.cf === "max" ? 1 : 1.5,
        dash: line.cf === "max" ? [4, 3] : undefined,
        spanGaps: false, // a stopped container has no points: leave the hole
        value: (u, v) => (v == null ? "–" : fmt(v)),
        points: { show: false },
      });
    });
    return {
      width: width,
      height: HEIGHT,
      series: series,
      cursor: { points: { size: 6 } },
      scales: { y: { range: (u, min, max) => [Math.min(0, min), max > 0 ? max * 1.05 : 1] } },
      axes: [
        Object.assign({}, axis, { space: width < 500 ? 60 : 80 }),
        Object.assign({}, axis, {
          size: axisSize,
          values: (u, ticks) => ticks.map(fmt),
          incrs: data.unit === "bytes" || data.unit === "bytes/s" ? BINARY_STEPS : undefined,
        }),
      ],
      legend: { live: true, markers: { fill: (u, i) => series[i].stroke || "transparent" } },
    };
  }

  function draw(element) {
    const block = element.parentElement.querySelector("script[data-metrics-data]");
    if (!block) return;
    const data = JSON.parse(block.textContent);
    const panel = element.closest("[data-uplot-src]");
    const shared = panel && panel.querySelector("script[data-metrics-times]");
    data.times = data.times || (shared ? JSON.parse(shared.textContent) : []);
    const width = widthOf(element);
    const rows = [data.times].concat(data.series.map((line) => line.values));
    element.replaceChildren();
    const chart = new window.uPlot(options(data, width), rows, element);
    chart.proxboard = { element: element, data: data, rows: rows };
    element.dataset.drawn = "true";
    charts.add(chart);
  }

  function forget() {
    charts.forEach((chart) => {
      if (!chart.proxboard.element.isConnected) {
        chart.destroy();
        charts.delete(chart);
      }
    });
  }

  function drawAll(root) {
    const found = (root.querySelectorAll ? root : document).querySelectorAll("[data-metrics-chart]:not([data-drawn])");
    if (!found.length) return;
    const panel = document.querySelector("[data-uplot-src]");
    if (!panel) return;
    loadUplot(panel.dataset.uplotSrc).then(() => {
      forget();
      found.forEach((element) => element.isConnected && draw(element));
    }).catch((error) => console.warn(error.message));
  }

  function redrawAll() {
    forget();
    charts.forEach((chart) => {
      const { element, data, rows } = chart.proxboard;
      chart.destroy();
      charts.delete(chart);
      element.replaceChildren();
      const redrawn = new window.uPlot(options(data, widthOf(element)), rows, element);
      redrawn.proxboard = chart.proxboard;
      charts.add(redrawn);
    });
  }

  // Follow the card's width (a phone turned, a window resized); uPlot draws at a fixed pixel size.
  const resized = new ResizeObserver(() => {
    forget();
    charts.forEach((chart) => {
      const width = widthOf(chart.proxboard.element);
      if (Math.abs(chart.width - width) > 2) chart.setSize({ width: width, height: HEIGHT });
    });
  });
  resized.observe(document.body);

  new MutationObserver(() => redrawAll()).observe(document.documentElement, {
    attributes: true, attributeFilter: ["data-bs-theme"],
  });

  // htmx keeps the page's HTML to restore on Back: a canvas keeps no pixels there, and uPlot's style=""
  // attributes would come back as inline styles the Content-Security-Policy refuses. Leave empty boxes.
  document.addEventListener("htmx:beforeHistorySave", () => {
    charts.forEach((chart) => {
      chart.destroy();
      chart.proxboard.element.replaceChildren();
      delete chart.proxboard.element.dataset.drawn;
    });
    charts.clear();
  });
  document.addEventListener("htmx:historyRestore", () => drawAll(document));

  window.proxboardMetrics = { drawAll: drawAll, charts: () => Array.from(charts) };
  if (window.htmx) {
    window.htmx.onLoad((element) => drawAll(element));
  }
  drawAll(document);
})();
