/* Keyboard users can scroll wide tables: Material wraps them in a scrollable div that is not focusable. */
(function () {
  "use strict";
  function focusable() {
    document.querySelectorAll(".md-typeset__scrollwrap").forEach(function (el) {
      if (!el.hasAttribute("tabindex")) {
        el.setAttribute("tabindex", "0");
        el.setAttribute("role", "region");
        el.setAttribute("aria-label", "Scrollable table");
      }
    });
  }
  if (window.document$ && typeof window.document$.subscribe === "function") {
    window.document$.subscribe(focusable);
  } else {
    document.addEventListener("DOMContentLoaded", focusable);
  }
})();
