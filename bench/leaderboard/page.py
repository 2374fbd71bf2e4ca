"""The inline CSS and JavaScript of ``leaderboards/index.html`` (kept in Python so no package data is needed).

The script sorts a table when a header is clicked (numbers best-first on the first click), and
honours ``index.html?sort=COLUMN&dir=asc|desc`` on load, where COLUMN is a header's ``data-col``
(``rank``, ``entry``, ``paper``, ``clean``, ``robust``, ``claimed``, ``attack``, ``threat``, ``verified``); the
browser test relies on that hook. Empty cells always sort last. Following a link to an entry's details
(``#entry-TRACK-NAME``) opens them.
"""

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem; color: #1b1f24; }
h1 { font-size: 1.6rem; }
h2 { font-size: 1.25rem; margin-top: 2rem; }
table.board { border-collapse: collapse; font-size: 0.85rem; display: block; overflow-x: auto; }
table.board th, table.board td { border: 1px solid #d0d7de; padding: 0.3rem 0.5rem; white-space: nowrap; }
table.board th { background: #f6f8fa; cursor: pointer; user-select: none; position: sticky; top: 0; }
table.board th[aria-sort="ascending"]::after { content: " \\25B2"; }
table.board th[aria-sort="descending"]::after { content: " \\25BC"; }
table.board td:nth-child(n+4):nth-child(-n+6) { text-align: right; }
table.board tbody tr:nth-child(even) { background: #fafbfc; }
code { background: #f6f8fa; padding: 0 0.2rem; }
table.cells { border-collapse: collapse; font-size: 0.8rem; margin: 0.5rem 0 1rem; display: block; overflow-x: auto; }
table.cells th, table.cells td { border: 1px solid #d0d7de; padding: 0.2rem 0.4rem; white-space: nowrap; }
table.cells th { background: #f6f8fa; }
details { margin: 0.3rem 0; }
summary { cursor: pointer; }
.unreliable { color: #b35806; font-weight: 600; }
.unverified { color: #6e7781; }
ol.notes { font-size: 0.85rem; color: #424a53; }
"""

SCRIPT = """
(function () {
  "use strict";
  function key(cell, type) {
    var raw = cell.getAttribute("data-value");
    if (raw === null || raw === "") { return null; }
    return type === "number" ? parseFloat(raw) : raw;
  }
  function sortTable(table, col, dir) {
    var headers = table.tHead.rows[0].cells, index = -1;
    for (var i = 0; i < headers.length; i++) {
      if (headers[i].getAttribute("data-col") === col) { index = i; }
      headers[i].removeAttribute("aria-sort");
    }
    if (index < 0) { return; }
    var type = headers[index].getAttribute("data-type");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows).map(function (row, position) {
      return { row: row, value: key(row.cells[index], type), position: position };
    });
    var sign = dir === "desc" ? -1 : 1;
    rows.sort(function (a, b) {
      if (a.value === null || b.value === null) {
        return (a.value === null) - (b.value === null) || a.position - b.position;
      }
      var order = a.value < b.value ? -1 : a.value > b.value ? 1 : 0;
      return sign * order || a.position - b.position;
    });
    rows.forEach(function (item) { body.appendChild(item.row); });
    headers[index].setAttribute("aria-sort", dir === "desc" ? "descending" : "ascending");
  }
  var tables = document.querySelectorAll("table.board");
  Array.prototype.forEach.call(tables, function (table) {
    table.tHead.addEventListener("click", function (event) {
      var th = event.target.closest("th");
      if (!th) { return; }
      var current = th.getAttribute("aria-sort");
      var dir = current === "ascending" ? "desc" : current === "descending" ? "asc"
        : th.getAttribute("data-better") === "higher" ? "desc" : "asc";
      sortTable(table, th.getAttribute("data-col"), dir);
    });
  });
  function openTarget() {
    var id = decodeURIComponent(window.location.hash.slice(1));
    var target = id ? document.getElementById(id) : null;
    if (target && target.tagName === "DETAILS") { target.open = true; }
  }
  window.addEventListener("hashchange", openTarget);
  openTarget();
  var params = new URLSearchParams(window.location.search);
  if (params.get("sort")) {
    Array.prototype.forEach.call(tables, function (table) {
      sortTable(table, params.get("sort"), params.get("dir") === "desc" ? "desc" : "asc");
    });
  }
})();
"""
