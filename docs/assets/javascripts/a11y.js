/* Keyboard users can scroll wide tables: Material wraps them (at run time, after its own page-load work) in
 * a scrollable div that is not focusable. Watch the document and make each wrapper a focusable region. */
(function () {
  "use strict";
  function focusable() {
    document.querySelectorAll(".md-typeset__scrollwrap:not([tabindex])").forEach(function (el) {
      el.setAttribute("tabindex", "0");
      el.setAttribute("role", "region");
      el.setAttribute("aria-label", "Scrollable table");
    });
  }
  focusable();
  new MutationObserver(focusable).observe(document.documentElement, { childList: true, subtree: true });
})();
