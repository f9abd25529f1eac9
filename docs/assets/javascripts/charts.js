/* LoRA Handbook charts: progressive enhancement of the build-time SVG figures.
 *
 * Loaded only by pages that contain a chart (the figure carries this <script>). Survives Material's
 * instant navigation (re-runs on document$, keeps one global), re-renders on the light/dark switch,
 * finalizes old Vega views, and loads the offline Vega bundle once, from beside this file.
 */
(function () {
  "use strict";
  if (window.__lhCharts) { window.__lhCharts.scan(); return; }
  var here = document.currentScript && document.currentScript.src;
  var base = here ? here.replace(/charts\.js(\?.*)?$/, "") : "/assets/javascripts/";
  var bundle = null;
  var views = [];
  var generation = 0;

  function loadBundle() {
    if (!bundle) {
      bundle = new Promise(function (resolve, reject) {
        var s = document.createElement("script");
        s.src = base + "vega-bundle.js";
        s.onload = resolve;
        s.onerror = function () { bundle = null; reject(new Error("vega bundle failed to load")); };
        document.head.appendChild(s);
      });
    }
    return bundle;
  }

  function themeConfig() {
    var cs = getComputedStyle(document.body);
    var fg = (cs.getPropertyValue("--md-default-fg-color") || "").trim() || "#000000";
    var light = (cs.getPropertyValue("--md-default-fg-color--lighter") || "").trim() || "#888888";
    return {
      background: "transparent",
      axis: { labelColor: fg, titleColor: fg, domainColor: light, tickColor: light, gridColor: light, gridOpacity: 0.4 },
      legend: { labelColor: fg, titleColor: fg },
      title: { color: fg },
      view: { stroke: null }
    };
  }

  function render() {
    var mine = ++generation;
    views.forEach(function (v) { try { v.finalize(); } catch (e) { /* already gone */ } });
    views = [];
    var targets = Array.prototype.slice.call(document.querySelectorAll(".lh-chart__live[data-spec]"));
    if (!targets.length) return Promise.resolve();
    return loadBundle().then(function () {
      return Promise.all(targets.map(function (el) {
        if (mine !== generation || !document.body.contains(el)) return null;
        var spec = JSON.parse(el.getAttribute("data-spec"));
        return window.vegaEmbed(el, spec, { renderer: "svg", actions: false, config: themeConfig() })
          .then(function (result) {
            if (mine !== generation) { result.view.finalize(); return; }
            views.push(result.view);
            var fig = el.closest("figure");
            el.hidden = false;
            var still = fig && fig.querySelector(".lh-chart__static");
            if (still) still.hidden = true;
            if (fig) fig.setAttribute("data-rendered", "live");
          });
      }));
    }).catch(function (err) { console.warn("LoRA Handbook charts:", err.message); });
  }

  window.__lhCharts = { scan: render };
  if (window.document$ && typeof window.document$.subscribe === "function") {
    window.document$.subscribe(function () { render(); });
  } else if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", render);
  } else {
    render();
  }
  new MutationObserver(function () { render(); })
    .observe(document.body, { attributes: true, attributeFilter: ["data-md-color-scheme"] });
})();
