// Every table on the page in a frame that scrolls sideways on a narrow screen (the page
// itself never does), with a CSV button that downloads what the table shows. The CSV is
// made in the browser from the table's cells, so it is exactly what is on screen and
// needs no API route; a click handler on the document (no inline script: the CSP forbids
// it) serves tables added later too: `GridTables.frame(table)` gives one its frame and
// button. Columns whose header has class `bar-col` (drawn bars) are left out.
"use strict";
window.GridTables = (() => {
  const FORMULA = /^[=+@\t\r]|^-(?![0-9.])/; // what a spreadsheet would run as a formula

  function cell(value) {
    let text = value.replace(/\s*\n\s*/g, " ").trim();
    if (FORMULA.test(text)) text = `'${text}`; // chain text (names, titles) is anyone's
    return /[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
  }

  function rows(table) {
    const head = table.tHead ? [...table.tHead.rows] : [];
    const skip = new Set();
    if (head.length) {
      [...head[head.length - 1].cells].forEach((th, i) => {
        if (th.classList.contains("bar-col")) skip.add(i);
      });
    }
    const body = [...table.tBodies].flatMap((b) => [...b.rows])
      .filter((r) => ![...r.cells].some((c) => c.colSpan > 1)); // "empty", "none" notes
    return [...head, ...body].map((r) => [...r.cells].filter((c, i) => !skip.has(i))
      .map((c) => cell(c.innerText)));
  }

  function csv(table) { // CRLF lines as RFC 4180 has them
    return rows(table).map((r) => r.join(",")).join("\r\n") + "\r\n";
  }

  function download(table) {
    const view = document.body.dataset.selection ? `-${document.body.dataset.selection}` : "";
    const blob = new Blob(["\ufeff", csv(table)], { type: "text/csv;charset=utf-8" });
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = `gridtokenx-${table.id}${view}.csv`;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  }

  function frame(table) {
    if (!table.id || table.parentElement.classList.contains("table-frame")) return;
    const box = document.createElement("div");
    box.className = "table-frame";
    table.replaceWith(box);
    const button = document.createElement("button");
    button.type = "button";
    button.className = "csv";
    button.dataset.table = table.id;
    button.title = "Download this table as CSV";
    button.textContent = "CSV";
    box.append(button, table);
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest && event.target.closest("button.csv[data-table]");
    const table = button && document.getElementById(button.dataset.table);
    if (table) download(table);
  });
  for (const table of document.querySelectorAll("main table[id]")) frame(table);
  return { frame, csv };
})();
