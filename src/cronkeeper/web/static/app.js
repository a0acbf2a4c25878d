// Cronkeeper dashboard: local times, live countdowns, expandable run rows, dialogs.
// Plain browser JavaScript, no build step; htmx (vendored beside this file) does requests.
(function () {
  "use strict";

  function pad(n) { return String(n).padStart(2, "0"); }

  function localText(date) {
    return date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) +
      " " + pad(date.getHours()) + ":" + pad(date.getMinutes()) + ":" + pad(date.getSeconds());
  }

  function span(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    if (seconds < 60) return seconds + "s";
    if (seconds < 3600) return Math.floor(seconds / 60) + "m " + (seconds % 60) + "s";
    if (seconds < 86400) {
      return Math.floor(seconds / 3600) + "h " + Math.floor(seconds % 3600 / 60) + "m " + (seconds % 60) + "s";
    }
    return Math.floor(seconds / 86400) + "d " + Math.floor(seconds % 86400 / 3600) + "h " +
      Math.floor(seconds % 3600 / 60) + "m";
  }

  function localiseTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      if (el.dataset.local) return;
      var date = new Date(el.getAttribute("datetime"));
      if (isNaN(date.getTime())) return;
      el.title = "UTC: " + date.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
      el.textContent = localText(date);
      el.dataset.local = "1";
    });
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll(".countdown[data-at]").forEach(function (el) {
      var at = Date.parse(el.dataset.at);
      if (isNaN(at)) return;
      var left = (at - now) / 1000;
      el.textContent = left > 0 ? "in " + span(left) : "due now";
    });
  }

  function toggleRow(button) {
    var row = button.closest("tr");
    var next = row.nextElementSibling;
    if (next && next.classList.contains("detail")) {
      next.remove();
      button.setAttribute("aria-expanded", "false");
      return;
    }
    button.setAttribute("aria-expanded", "true");
    htmx.ajax("GET", button.dataset.expand, { target: row, swap: "afterend" });
  }

  document.addEventListener("click", function (event) {
    var target = event.target;
    var expand = target.closest("[data-expand]");
    if (expand) { toggleRow(expand); return; }
    var row = target.closest("tr.run-row");
    if (row && !target.closest("a, button, input, select, textarea")) {
      var button = row.querySelector("[data-expand]");
      if (button) toggleRow(button);
      return;
    }
    var opener = target.closest("[data-dialog]");
    if (opener) {
      var dialog = document.getElementById(opener.dataset.dialog);
      if (dialog && dialog.showModal) {
        event.preventDefault();
        dialog.showModal();
        var input = dialog.querySelector("input[name=confirm]");
        if (input) input.focus();
      }
      return;
    }
    if (target.closest("[data-close]")) {
      var open = target.closest("dialog");
      if (open) open.close();
    }
  });

  document.addEventListener("input", function (event) {
    var input = event.target;
    if (input.dataset && input.dataset.confirmFor !== undefined) {
      var button = input.form.querySelector("[data-confirm-button]");
      if (button) button.disabled = input.value.trim() !== input.dataset.confirmFor;
    }
  });

  document.addEventListener("change", function (event) {
    if (event.target.matches && event.target.matches("select[data-autosubmit]")) {
      event.target.form.submit();
    }
  });

  function onLoad(root) {
    localiseTimes(root);
    tick();
    var body = document.getElementById("history-body");
    if (body && body.querySelector("tr.run-row")) {
      var empty = body.querySelector("tr.no-runs");
      if (empty) empty.remove();
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    onLoad(document);
    setInterval(tick, 1000);
    if (window.htmx) htmx.onLoad(function (el) { onLoad(el.parentNode || document); });
  });
})();
