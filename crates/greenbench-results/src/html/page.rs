//! The HTML page every report page is built on: the skeleton with its inline style sheet and
//! script (no network fetch: the page opens from `file://` and prints), sortable tables, and
//! the small helpers pages share (escaping, data URLs).

use crate::plot::escape;
use std::fmt::Write;

/// Inline style: readable on screen, clean on paper, tables that scroll sideways on a phone.
const STYLE: &str = r#"
:root { --ink: #1b1b1b; --muted: #555; --rule: #d0d0d0; --head: #f2f2f2; --mark: #8a4b00; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
  margin: 0 auto; max-width: 1180px; padding: 1.2em 1.4em 3em; }
h1 { font-size: 1.7em; margin: .2em 0 .4em; } h2 { margin-top: 2em; border-bottom: 1px solid var(--rule); }
h3 { margin-top: 1.4em; }
nav ul { columns: 2; padding-left: 1.2em; } .muted, figcaption, .note { color: var(--muted); }
.scroll { overflow-x: auto; margin: .6em 0; }
table { border-collapse: collapse; font-size: 13px; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid var(--rule); padding: 3px 6px; vertical-align: top; }
th { background: var(--head); text-align: left; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th[aria-sort="ascending"]::after { content: " \25B2"; }
table.sortable th[aria-sort="descending"]::after { content: " \25BC"; }
td.num { text-align: right; white-space: nowrap; }
table.cells td { white-space: nowrap; }
.mark { color: var(--mark); font-weight: 600; }
tr.failed td { background: #fff1f0; }
figure { margin: 1em 0; } figure svg, figure img { max-width: 100%; height: auto; }
details { margin: .3em 0 1em; } summary { cursor: pointer; color: var(--muted); }
pre { background: #f7f7f7; padding: .6em; overflow-x: auto; font-size: 12.5px; }
.labels { display: flex; flex-wrap: wrap; gap: 12px; } .labels a { display: block; }
.labels img { width: 380px; border: 1px solid var(--rule); }
@media print { nav, summary { display: none; } details { display: block; } a { color: inherit; }
  h2 { break-before: auto; } table, figure { break-inside: avoid; } body { max-width: none; } }
"#;

/// Inline script: errors land in `data-js-errors` on the body (a test reads them), tables
/// with class `sortable` sort by a clicked column (numbers by their `data-v`), and
/// `data-js-ready` says the script ran to the end.
const SCRIPT: &str = r#"
(function () {
  var errors = [];
  window.addEventListener('error', function (e) {
    errors.push(String(e.message || e));
    document.body.setAttribute('data-js-errors', errors.join(' | '));
  });
  function key(td) {
    var v = td.getAttribute('data-v');
    if (v !== null && v !== '') { return { n: parseFloat(v) }; }
    return { s: td.textContent.trim().toLowerCase() };
  }
  function cmp(a, b) {
    if (a.n !== undefined && b.n !== undefined) { return a.n - b.n; }
    if (a.n !== undefined) { return -1; }
    if (b.n !== undefined) { return 1; }
    return a.s < b.s ? -1 : a.s > b.s ? 1 : 0;
  }
  var tables = document.querySelectorAll('table.sortable');
  tables.forEach(function (table) {
    var heads = table.querySelectorAll('thead th');
    heads.forEach(function (th, col) {
      th.setAttribute('tabindex', '0');
      th.setAttribute('title', 'sort by this column');
      function sort() {
        var asc = th.getAttribute('aria-sort') !== 'ascending';
        heads.forEach(function (h) { h.removeAttribute('aria-sort'); });
        th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (r1, r2) {
          var c = cmp(key(r1.cells[col]), key(r2.cells[col]));
          return asc ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      }
      th.addEventListener('click', sort);
      th.addEventListener('keydown', function (e) { if (e.key === 'Enter') { sort(); } });
    });
  });
  var labels = document.querySelectorAll('img.label');
  var loaded = 0;
  labels.forEach(function (img) { if (img.complete && img.naturalWidth > 0) { loaded++; } });
  document.body.setAttribute('data-labels-rendered', String(loaded));
  document.body.setAttribute('data-sortable-tables', String(tables.length));
  document.body.setAttribute('data-js-ready', '1');
})();
"#;

/// A whole page: `title`, the body, and the script at the end (it runs after the DOM and
/// the inline images are there; `window.onload` is not needed).
pub fn page(title: &str, body: &str) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"generator\" content=\"greenbench report\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}\n\
         <script>{SCRIPT}</script>\n</body>\n</html>\n",
        escape(title)
    );
    s
}

/// One table cell: its text, and the number it sorts by (absent: sorts as text).
pub struct Td {
    pub text: String,
    pub sort: Option<f64>,
    /// Inner HTML instead of escaped text (marks, links).
    pub html: bool,
}

impl Td {
    pub fn text(t: impl Into<String>) -> Td {
        Td {
            text: t.into(),
            sort: None,
            html: false,
        }
    }
    pub fn num(t: impl Into<String>, v: Option<f64>) -> Td {
        Td {
            text: t.into(),
            sort: v,
            html: false,
        }
    }
    pub fn html(t: impl Into<String>) -> Td {
        Td {
            text: t.into(),
            sort: None,
            html: true,
        }
    }
}

/// A table being built: a caption, a header, rows (each with an optional class).
pub struct HtmlTable {
    id: String,
    /// Extra classes of the `<table>`.
    class: String,
    caption: String,
    header: Vec<(String, bool)>,
    rows: Vec<(String, Vec<Td>)>,
}

impl HtmlTable {
    /// `spec` as the terminal table's: names separated by `|`, a leading `>` for a figure.
    pub fn new(id: &str, caption: &str, spec: &str) -> Self {
        HtmlTable {
            id: id.to_string(),
            class: String::new(),
            caption: caption.to_string(),
            header: spec
                .split('|')
                .map(|c| match c.strip_prefix('>') {
                    Some(n) => (n.to_string(), true),
                    None => (c.to_string(), false),
                })
                .collect(),
            rows: vec![],
        }
    }

    /// The table with an extra class (`cells`: figures kept on one line).
    pub fn with_class(mut self, class: &str) -> Self {
        self.class = format!(" {class}");
        self
    }

    /// A row; `attrs` are the `<tr>`'s attributes as written (` class="failed"`), or empty.
    pub fn row(&mut self, attrs: impl Into<String>, cells: Vec<Td>) {
        assert_eq!(cells.len(), self.header.len(), "row width");
        self.rows.push((attrs.into(), cells));
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table, sortable, inside a sideways-scrolling box; `data-rows` holds its row count.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = write!(
            s,
            "<div class=\"scroll\"><table class=\"sortable{}\" id=\"{}\" data-rows=\"{}\">\
             <caption class=\"muted\">{}</caption><thead><tr>",
            self.class,
            escape(&self.id),
            self.rows.len(),
            escape(&self.caption)
        );
        for (h, _) in &self.header {
            let _ = write!(s, "<th scope=\"col\">{}</th>", escape(h));
        }
        s.push_str("</tr></thead><tbody>\n");
        for (attrs, cells) in &self.rows {
            let _ = write!(s, "<tr{attrs}>");
            for (i, td) in cells.iter().enumerate() {
                let num = self.header[i].1;
                let body = if td.html {
                    td.text.clone()
                } else {
                    escape(&td.text)
                };
                let _ = write!(
                    s,
                    "<td{}{}>{body}</td>",
                    if num { " class=\"num\"" } else { "" },
                    td.sort
                        .filter(|v| v.is_finite())
                        .map(|v| format!(" data-v=\"{v:e}\""))
                        .unwrap_or_default()
                );
            }
            s.push_str("</tr>\n");
        }
        s.push_str("</tbody></table></div>\n");
        s
    }
}

/// A name safe in a file name and an HTML id: runs of anything but ASCII letters and
/// digits become one `-` (`vm (AMD EPYC)` -> `vm-AMD-EPYC`).
pub fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

/// Standard base64 (RFC 4648, with padding), for `data:` URLs.
pub fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(A[(n >> 18) as usize & 63] as char);
        out.push(A[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            A[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            A[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

/// A figure: the SVG inline, its caption, and its data as a table under a disclosure (the
/// figure's numbers, each with the file it came from).
pub fn figure(id: &str, svg: &str, caption: &str, data: Option<&HtmlTable>) -> String {
    let svg = svg
        .trim_start_matches(|c| c != '<')
        .trim_start_matches("<?xml version=\"1.0\" encoding=\"UTF-8\"?>")
        .trim_start();
    let mut s = format!(
        "<figure id=\"{}\">{svg}<figcaption>{}</figcaption>",
        escape(id),
        escape(caption)
    );
    if let Some(t) = data {
        let _ = write!(
            s,
            "<details><summary>the figure's data</summary>{}</details>",
            t.render()
        );
    }
    s.push_str("</figure>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn tables_escape_and_count() {
        let mut t = HtmlTable::new("t", "cap", "a|>b");
        t.row("", vec![Td::text("<x>"), Td::num("1.5 us", Some(1.5e-6))]);
        let h = t.render();
        assert!(h.contains("data-rows=\"1\""));
        assert!(h.contains("<td>&lt;x&gt;</td>"));
        assert!(
            h.contains("<td class=\"num\" data-v=\"1.5e-6\">1.5 us</td>"),
            "{h}"
        );
        assert_eq!(slug("a b/c.onnx"), "a-b-c-onnx");
        assert_eq!(slug("vm (AMD EPYC)"), "vm-AMD-EPYC");
    }
}
