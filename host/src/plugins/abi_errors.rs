//! Condenses abi_stable's layout-mismatch report (hundreds of lines, both layouts printed in
//! full) into one line per mismatch: the path from the root module to the field that differs.
//!
//! The report is only available as text (abi_stable formats it before handing it out), so this
//! parses the 0.11.3 text format: blocks that start with `<n> error(s)inside:`, then the path as
//! `field_name:` / `type:` pairs, then the two layouts, then `Error:` lines each followed by
//! `Expected:` and `Found:` values. abi_stable is pinned to =0.11.3 and a test covers a real
//! report, so a format change cannot go unnoticed.

/// One line per distinct mismatch, e.g. `PluginRoot > new_backend > host > api >
/// max_log_level > returns(LogLevel): incompatible type size (expected 1, found 2)`.
pub fn summarize_layout_error(report: &str) -> Vec<String> {
    let lines: Vec<&str> = report.lines().collect();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(count) = error_count(lines[i]) else {
            i += 1;
            continue;
        };
        i += 1;
        let mut path: Vec<(String, String)> = Vec::new();
        while i < lines.len() && !lines[i].starts_with("Layout of expected type:") {
            if error_count(lines[i]).is_some() {
                break;
            }
            let t = lines[i].trim();
            if let Some(name) = t.strip_prefix("field_name:") {
                path.push((name.to_string(), String::new()));
            } else if let Some(ty) = t.strip_prefix("type:") {
                if let Some(last) = path.last_mut() {
                    if last.1.is_empty() {
                        last.1 = ty.trim().to_string();
                    }
                }
            }
            i += 1;
        }
        // Skip the layouts; collect this block's `Error:` entries.
        while i < lines.len() && error_count(lines[i]).is_none() {
            if let Some(message) = lines[i].strip_prefix("Error:") {
                if count > 0 {
                    let expected = value_after(&lines, i, "Expected:");
                    let found = value_after(&lines, i, "Found:");
                    let line = format!(
                        "{}: {} (expected {}, found {})",
                        render_path(&path),
                        message.trim(),
                        expected.unwrap_or("?"),
                        found.unwrap_or("?")
                    );
                    if !out.contains(&line) {
                        out.push(line);
                    }
                }
            }
            i += 1;
        }
    }
    out
}

fn error_count(line: &str) -> Option<usize> {
    line.trim()
        .strip_suffix("error(s)inside:")
        .and_then(|n| n.trim().parse().ok())
}

/// The value on the line after `label`, searched within the few lines after an `Error:` line.
fn value_after<'a>(lines: &[&'a str], error_line: usize, label: &str) -> Option<&'a str> {
    let end = (error_line + 6).min(lines.len());
    (error_line + 1..end)
        .find(|&j| lines[j].trim() == label)
        .and_then(|j| lines.get(j + 1))
        .map(|v| v.trim())
}

/// Field names read best; tuple fields (`0`, `field_0`) are shown by their type instead.
fn render_path(path: &[(String, String)]) -> String {
    let steps: Vec<String> = path
        .iter()
        .enumerate()
        .map(|(n, (name, ty))| {
            let is_last = n + 1 == path.len();
            let anonymous = name == "0" || name.starts_with("field_");
            let name = if name == "__returns" {
                "returns"
            } else {
                name.as_str()
            };
            match (anonymous, is_last) {
                (true, _) => ty.clone(),
                (false, true) => format!("{name}({ty})"),
                (false, false) => name.to_string(),
            }
        })
        .collect();
    steps.join(" > ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real report: a plugin whose copy of the ABI crate widened `LogLevel` from u8 to u16.
    const REPORT: &str = include_str!("../../tests/data/abi-layout-mismatch.txt");

    #[test]
    fn real_report_condenses_to_the_path_of_the_mismatching_field() {
        let lines = summarize_layout_error(REPORT);
        assert!(!lines.is_empty());
        let first = &lines[0];
        assert!(first.starts_with("PluginRoot > "), "{first}");
        assert!(first.contains("LogLevel"), "{first}");
        assert!(first.contains("(expected 1, found 2)"), "{first}");
        assert!(lines.iter().all(|l| !l.contains('\n')));
        assert!(
            lines
                .iter()
                .any(|l| l.contains("mismatched type (expected u8, found u16)")),
            "{lines:#?}"
        );
    }

    #[test]
    fn reports_without_errors_give_nothing() {
        assert!(summarize_layout_error("0 error(s)inside:\n    field_name:0\n").is_empty());
    }
}
