//! How `run --dry-run` prints its plan: a table on stdout (arguments shortened to fit), or
//! with `--json` one JSON document with every argument in full.

use comfy_table::{presets::UTF8_BORDERS_ONLY, ContentArrangement, Table};
use serde_json::{json, Value};

use crate::dry_run::PlannedWrite;

/// Longest arguments cell of the table; `--json` has them whole.
const ARGUMENTS_WIDTH: usize = 160;

/// Prints the plan and what failed while reading (one line each).
pub fn print(writes: &[PlannedWrite], failed: &[String], as_json: bool) {
    if as_json {
        let document = json!({ "dry_run": true, "writes": writes, "failed": failed });
        println!(
            "{}",
            serde_json::to_string_pretty(&document).expect("the plan serializes")
        );
        return;
    }
    if writes.is_empty() {
        println!("dry run: nothing would be written");
    } else {
        println!("{}", table(writes));
        println!(
            "dry run: {} write(s) not made ({} to Waldur, {} to backends)",
            writes.len(),
            writes
                .iter()
                .filter(|w| w.system == crate::dry_run::System::Waldur)
                .count(),
            writes
                .iter()
                .filter(|w| w.system == crate::dry_run::System::Backend)
                .count()
        );
    }
    for line in failed {
        println!("dry run: failed: {line}");
    }
}

fn table(writes: &[PlannedWrite]) -> Table {
    let mut table = Table::new();
    table.load_preset(UTF8_BORDERS_ONLY);
    table.set_content_arrangement(ContentArrangement::Dynamic);
    table.set_header(["#", "OFFERING", "SYSTEM", "VIA", "WRITE", "ARGUMENTS"]);
    for (index, write) in writes.iter().enumerate() {
        table.add_row([
            (index + 1).to_string(),
            write.offering.clone(),
            write.system.name().to_string(),
            write.via.clone(),
            write.action.clone(),
            shortened(&write.arguments),
        ]);
    }
    table
}

/// Compact JSON, cut at [`ARGUMENTS_WIDTH`] characters.
fn shortened(arguments: &Value) -> String {
    if arguments.is_null() {
        return String::new();
    }
    let text = arguments.to_string();
    match text.char_indices().nth(ARGUMENTS_WIDTH) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_arguments_are_cut_and_null_ones_blank() {
        assert_eq!(shortened(&Value::Null), "");
        assert_eq!(shortened(&json!({"a": 1})), r#"{"a":1}"#);
        let long = json!({ "x": "é".repeat(400) });
        let cut = shortened(&long);
        assert_eq!(cut.chars().count(), ARGUMENTS_WIDTH + 1);
        assert!(cut.ends_with('…'));
    }
}
