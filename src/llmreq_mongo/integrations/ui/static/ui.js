// Copy and collapse for the history browser. The pages work without it:
// <details> collapses natively, and the buttons stay hidden until this runs.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("button.copy[data-copy]").forEach(function (button) {
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source || !navigator.clipboard) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(source.textContent).then(
        function () { button.textContent = "Copied"; },
        function () { button.textContent = "Copy failed"; }
      );
    });
  });
  var toggle = document.querySelector("button.toggle-all");
  var blocks = document.querySelectorAll("details.json");
  if (toggle && blocks.length) {
    toggle.hidden = false;
    toggle.addEventListener("click", function () {
      var open = toggle.textContent === "Expand all";
      blocks.forEach(function (d) { d.open = open; });
      toggle.textContent = open ? "Collapse all" : "Expand all";
    });
  }
});
