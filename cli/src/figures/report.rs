//! One self-contained HTML page: a title, a results table and the figures inlined as SVG.

use std::fmt::Write;
use std::path::Path;

use super::{write_atomic, FigureError};

/// A figure of the report: a caption and an SVG document as the renderers here return it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportFigure {
    pub caption: String,
    pub svg: String,
}

/// The content of a report page. Table rows may be shorter or longer than the header; they are
/// shown as given.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub title: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Paragraphs shown under the table (a summary, a verdict).
    pub notes: Vec<String>,
    /// Further tables, each under its heading, after the notes.
    pub tables: Vec<ReportTable>,
    pub figures: Vec<ReportFigure>,
}

/// A table of the report with a heading.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportTable {
    pub heading: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

const STYLE: &str = "body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0 2em; }
th, td { border: 1px solid #bbb; padding: 0.3em 0.8em; text-align: left; }
th { background: #eee; }
figure { margin: 0 0 2.5em; }
figure svg { max-width: 100%; height: auto; }
figcaption { margin-top: 0.4em; color: #444; }";

/// The page as HTML5: no scripts, no external files. Every text (title, table cells, captions)
/// is HTML-escaped; each SVG is inlined as given, after dropping an XML declaration if it has
/// one, so it must come from a trusted renderer such as this module's.
pub fn html_report(report: &Report) -> String {
    let mut html = String::new();
    let title = escape(&report.title);
    // Writing into a String cannot fail.
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{title}</title>\n<style>\n{STYLE}\n</style>\n</head>\n<body>\n<h1>{title}</h1>\n"
    );
    if !report.header.is_empty() || !report.rows.is_empty() {
        html.push_str("<table>\n");
        push_row(&mut html, "th", &report.header);
        for row in &report.rows {
            push_row(&mut html, "td", row);
        }
        html.push_str("</table>\n");
    }
    for note in &report.notes {
        let _ = writeln!(html, "<p>{}</p>", escape(note));
    }
    for table in &report.tables {
        let _ = writeln!(html, "<h2>{}</h2>\n<table>", escape(&table.heading));
        push_row(&mut html, "th", &table.header);
        for row in &table.rows {
            push_row(&mut html, "td", row);
        }
        html.push_str("</table>\n");
    }
    for figure in &report.figures {
        let svg = strip_xml_declaration(&figure.svg);
        let caption = escape(&figure.caption);
        let _ = write!(
            html,
            "<figure>\n{svg}\n<figcaption>{caption}</figcaption>\n</figure>\n"
        );
    }
    html.push_str("</body>\n</html>\n");
    html
}

/// Writes [`html_report`] to `path`.
pub fn write_html_report(path: &Path, report: &Report) -> Result<(), FigureError> {
    write_atomic(path, html_report(report).as_bytes())
}

fn push_row(html: &mut String, tag: &str, cells: &[String]) {
    if cells.is_empty() {
        return;
    }
    html.push_str("<tr>");
    for cell in cells {
        let _ = write!(html, "<{tag}>{}</{tag}>", escape(cell));
    }
    html.push_str("</tr>\n");
}

/// `text` with the five characters that are special in HTML replaced by entities.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `svg` without a leading `<?xml ...?>` declaration, which is not allowed inside HTML.
fn strip_xml_declaration(svg: &str) -> &str {
    let trimmed = svg.trim_start();
    if trimmed.starts_with("<?xml") {
        if let Some(end) = trimmed.find("?>") {
            return trimmed[end + 2..].trim_start();
        }
    }
    trimmed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_special_characters() {
        assert_eq!(
            escape("a<b & \"c\" 'd'>"),
            "a&lt;b &amp; &quot;c&quot; &#39;d&#39;&gt;"
        );
    }

    #[test]
    fn drops_xml_declaration() {
        let svg = "<?xml version=\"1.0\"?>\n<svg></svg>";
        assert_eq!(strip_xml_declaration(svg), "<svg></svg>");
        assert_eq!(strip_xml_declaration("<svg/>"), "<svg/>");
    }
}
