// Keyboard shortcuts for a reviewer who clears hundreds of records a day. Static file: the pages'
// Content-Security-Policy allows no inline script.
(function () {
  "use strict";
  function typing(event) {
    var tag = event.target.tagName;
    return tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA";
  }
  function submit(id) {
    var form = document.getElementById(id);
    if (form) { form.requestSubmit(); }
  }
  function follow(id) {
    var link = document.getElementById(id);
    if (link) { window.location.href = link.href; }
  }

  function queuePage() {
    var rows = Array.prototype.slice.call(document.querySelectorAll("tr.queue-row"));
    var selected = rows.length ? 0 : -1;
    function select(index) {
      if (!rows.length) { return; }
      selected = Math.max(0, Math.min(rows.length - 1, index));
      rows.forEach(function (row, i) { row.classList.toggle("selected", i === selected); });
      rows[selected].scrollIntoView({ block: "nearest" });
    }
    rows.forEach(function (row, i) {
      row.addEventListener("click", function (event) {
        if (event.target.tagName !== "A") { window.location.href = row.dataset.href; }
      });
    });
    select(0);
    document.addEventListener("keydown", function (event) {
      if (typing(event) || event.ctrlKey || event.metaKey || event.altKey) { return; }
      if (event.key === "j") { select(selected + 1); }
      else if (event.key === "k") { select(selected - 1); }
      else if (event.key === "Enter" && selected >= 0) { window.location.href = rows[selected].dataset.href; }
      else if (event.key === "ArrowRight") { follow("next-page"); }
      else if (event.key === "ArrowLeft") { follow("previous-page"); }
      else { return; }
      event.preventDefault();
    });
  }

  function reviewPage() {
    document.addEventListener("keydown", function (event) {
      if (event.ctrlKey || event.metaKey || event.altKey) { return; }
      if (typing(event)) {
        if (event.key === "Escape") { event.target.blur(); }
        return;
      }
      if (event.key === "a") { submit("accept"); }
      else if (/^[2-9]$/.test(event.key)) { submit("choose-" + event.key); }
      else if (event.key === "r") { submit("refuse"); }
      else if (event.key === "/") { var search = document.getElementById("ledger-search"); if (search) { search.focus(); } }
      else if (event.key === "q") { window.location.href = document.querySelector(".crumbs a").href; }
      else { return; }
      event.preventDefault();
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var page = document.body.dataset.page;
    if (page === "queue") { queuePage(); }
    if (page === "review") { reviewPage(); }
  });
})();
