//! Parsers of `sacctmgr --parsable2 --noheader` and `sacct --parsable2 --noheader` output.
//!
//! Every record is one line of `|`-separated fields with no trailing separator. Parsers are
//! tolerant: a line without enough fields reads missing fields as empty (the reference would
//! raise an IndexError on some of them).

use std::collections::{BTreeMap, BTreeSet};

use waldur_plugin_abi::wire::{Association, BackendLimits, ClientResource};

/// Bytes per MB: `mem` values are bytes in SLURM and MB in Waldur.
pub const MIB: i64 = 1 << 20;

/// The `n`th `|`-field of a line, empty when the line is shorter.
fn field(parts: &[&str], n: usize) -> String {
    parts.get(n).map(|s| s.to_string()).unwrap_or_default()
}

/// `5K` -> 5 × 2^10: leading digits and an optional unit `K`, `M`, `G`, `T` or `P` (2^10 ..
/// 2^50); 0 when the value does not start with a digit. Saturates instead of overflowing.
/// (The reference raises KeyError on `P`.)
pub fn parse_int(value: &str) -> i64 {
    let digits_end = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    if digits_end == 0 {
        return 0;
    }
    let number: i64 = value[..digits_end].parse().unwrap_or(i64::MAX);
    let shift = match value[digits_end..].chars().next() {
        Some('K') => 10,
        Some('M') => 20,
        Some('G') => 30,
        Some('T') => 40,
        Some('P') => 50,
        _ => 0,
    };
    number.saturating_mul(1_i64 << shift)
}

fn number(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// A SLURM duration in minutes: `[D-]HH:MM:SS[.frac]` (any number of days, `0-` included,
/// hours beyond 24 too) or `MM:SS[.frac]`. Like the reference, fractions of a second are
/// dropped before dividing (`int(total_seconds) / 60`). Anything else (`UNLIMITED`, `""`,
/// `INVALID`) is 0. (The reference raises on `0-...` and on more than 31 days, and answers
/// 0 for `MM:SS`.)
pub fn parse_duration(value: &str) -> f64 {
    let value = value.trim();
    let (days, clock) = match value.split_once('-') {
        Some((days, clock)) => match number(days) {
            Some(days) => (days, clock),
            None => return 0.0,
        },
        None => (0, value),
    };
    let clock = clock.split_once('.').map_or(clock, |(whole, _)| whole);
    let parts: Option<Vec<u64>> = clock.split(':').map(number).collect();
    let seconds = match parts.as_deref() {
        Some([h, m, s]) => h * 3600 + m * 60 + s,
        Some([m, s]) if days == 0 && !value.contains('-') => m * 60 + s,
        _ => return 0.0,
    };
    (days * 86_400 + seconds) as f64 / 60.0
}

/// `cpu=1,mem=10M,gres/gpu=2` as a map (a repeated key keeps its last value; pairs without
/// `=` are skipped).
pub fn parse_tres(text: &str) -> BTreeMap<String, String> {
    text.split(',')
        .filter_map(|pair| pair.split_once('='))
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

/// One allocation line of the usage query (`--format=Account,ReqTRES,Elapsed,User`).
#[derive(Debug, Clone, PartialEq)]
pub struct ReportLine {
    /// Stripped, as the reference does.
    pub account: String,
    pub req_tres: String,
    pub elapsed: String,
    /// Not stripped (as the reference).
    pub user: String,
}

impl ReportLine {
    pub fn parse(line: &str) -> Self {
        let parts: Vec<&str> = line.split('|').collect();
        Self {
            account: field(&parts, 0).trim().to_string(),
            req_tres: field(&parts, 1),
            elapsed: field(&parts, 2),
            user: field(&parts, 3),
        }
    }

    pub fn minutes(&self) -> f64 {
        parse_duration(&self.elapsed)
    }

    /// Requested TRES × elapsed minutes, for the TRES in `allowed`; `mem` in MB·minutes
    /// (floored after the multiplication, as the reference).
    pub fn tres_usage(&self, allowed: &BTreeSet<String>) -> BTreeMap<String, f64> {
        let minutes = self.minutes();
        let mut usage: BTreeMap<String, f64> = parse_tres(&self.req_tres)
            .into_iter()
            .filter(|(tres, _)| allowed.contains(tres))
            .map(|(tres, value)| (tres, parse_int(&value) as f64 * minutes))
            .collect();
        if let Some(mem) = usage.get_mut("mem") {
            *mem = (*mem / MIB as f64).floor();
        }
        usage
    }
}

/// The usage query's lines (those with a `|`).
pub fn report_lines(output: &str) -> Vec<ReportLine> {
    output
        .lines()
        .filter(|line| line.contains('|'))
        .map(ReportLine::parse)
        .collect()
}

/// One `name|description|organization` account line.
pub fn account(line: &str) -> ClientResource {
    let parts: Vec<&str> = line.split('|').collect();
    ClientResource {
        name: field(&parts, 0),
        description: field(&parts, 1),
        organization: field(&parts, 2),
        backend_id: String::new(),
    }
}

/// Every account line (those with a `|`) of `list account` / `show account`.
pub fn accounts(output: &str) -> Vec<ClientResource> {
    output
        .lines()
        .filter(|line| line.contains('|'))
        .map(account)
        .collect()
}

/// `list tres` (`type|name|id`) as `type/name`, or `type` when the name is empty.
pub fn tres_list(output: &str) -> Vec<String> {
    output
        .lines()
        .filter(|line| line.contains('|'))
        .map(|line| {
            let parts: Vec<&str> = line.split('|').collect();
            match field(&parts, 1) {
                name if name.is_empty() => field(&parts, 0),
                name => format!("{}/{name}", field(&parts, 0)),
            }
        })
        .collect()
}

/// `list cluster format=cluster`: one bare name per line.
pub fn clusters(output: &str) -> Vec<String> {
    output
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| line.split('|').next().unwrap_or("").trim().to_string())
        .collect()
}

/// A full `show association` line: `cluster|account|user|partition|...`. `value` is what the
/// reference reads: the `cpu=` number of field 9 (which is GrpWall in real output, so it is
/// meaningless; nothing uses it).
pub fn association(line: &str) -> Association {
    let parts: Vec<&str> = line.split('|').collect();
    let tenth = field(&parts, 9);
    let value = tenth
        .strip_prefix("cpu=")
        .map(|rest| {
            let end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            rest[..end].parse().unwrap_or(0)
        })
        .unwrap_or(0);
    Association {
        account: field(&parts, 1),
        user: field(&parts, 2),
        value,
    }
}

/// Every association line (those with a `|`).
pub fn associations(output: &str) -> Vec<Association> {
    output
        .lines()
        .filter(|line| line.contains('|'))
        .map(association)
        .collect()
}

/// A limit line `account|<tres list>[|user]`: the TRES limits of the configured components
/// (`mem` in MB), and the user (empty on the account's own line).
pub fn limit_line(line: &str, configured: &BTreeSet<String>) -> (BackendLimits, String) {
    let parts: Vec<&str> = line.split('|').collect();
    let limits = parse_tres(&field(&parts, 1))
        .into_iter()
        .filter(|(tres, _)| configured.contains(tres))
        .map(|(tres, value)| {
            let parsed = tres_number(&tres, &value);
            (tres, parsed)
        })
        .collect();
    (limits, field(&parts, 2))
}

/// A TRES limit value as a number in the plugin's units: `mem` in MB (SLURM prints `600G`),
/// everything else as [`parse_int`] reads it.
pub fn tres_number(tres: &str, value: &str) -> i64 {
    let parsed = parse_int(value);
    if tres == "mem" {
        parsed.div_euclid(MIB)
    } else {
        parsed
    }
}

/// A TRES list with every numeric value in the plugin's units ([`tres_number`]) as text, and
/// anything else (`UNLIMITED`) verbatim: what the plugin sets compares equal to what it reads.
pub fn tres_values(text: &str) -> BTreeMap<String, String> {
    parse_tres(text)
        .into_iter()
        .map(|(tres, value)| {
            let value = value.trim();
            let shown = if value.starts_with(|c: char| c.is_ascii_digit()) {
                tres_number(&tres, value).to_string()
            } else {
                value.to_string()
            };
            (tres, shown)
        })
        .collect()
}

/// A TRES list as strings: numbers normalised (`"007"` -> `"7"`), anything else verbatim.
pub fn tres_strings(text: &str) -> BTreeMap<String, String> {
    parse_tres(text)
        .into_iter()
        .map(|(tres, value)| {
            let value = match value.trim().parse::<i64>() {
                Ok(n) => n.to_string(),
                Err(_) => value,
            };
            (tres, value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parse_int_units() {
        assert_eq!(parse_int("5"), 5);
        assert_eq!(parse_int("5K"), 5 * 1024);
        assert_eq!(parse_int("10M"), 10 << 20);
        assert_eq!(parse_int("600G"), 600 << 30);
        assert_eq!(parse_int("2T"), 2 << 40);
        assert_eq!(parse_int("1.5G"), 1);
        assert_eq!(parse_int("x5"), 0);
        assert_eq!(parse_int(""), 0);
        assert_eq!(parse_int("99999999999999999999P"), i64::MAX);
    }

    #[test]
    fn bug4_parse_int_accepts_the_p_suffix() {
        assert_eq!(parse_int("1P"), 1 << 50);
        assert_eq!(parse_int("3P"), 3 << 50);
    }

    #[test]
    fn parse_duration_forms() {
        assert_eq!(parse_duration("00:01:00"), 1.0);
        assert_eq!(parse_duration("00:00:03"), 0.05);
        assert_eq!(parse_duration("00:01:03"), 1.05);
        assert_eq!(parse_duration("850:00:00"), 51_000.0);
        assert_eq!(parse_duration("10:00:00"), 600.0);
        assert_eq!(parse_duration("1-00:00:00"), 1440.0);
        assert_eq!(
            parse_duration("2-03:04:05"),
            (2 * 86400 + 3 * 3600 + 4 * 60 + 5) as f64 / 60.0
        );
        // Fractions of a second are dropped before dividing.
        assert_eq!(parse_duration("00:00:59.999"), 59.0 / 60.0);
        assert_eq!(parse_duration("1-00:00:01.5"), 1440.0 + 1.0 / 60.0);
        for zero in [
            "UNLIMITED",
            "",
            "INVALID",
            "Partition_Limit",
            "1:2:3:4",
            "-1",
            "a-00:00:01",
        ] {
            assert_eq!(parse_duration(zero), 0.0, "{zero:?}");
        }
    }

    #[test]
    fn bug4_parse_duration_accepts_zero_and_many_days_and_minutes_seconds() {
        assert_eq!(parse_duration("0-00:10:00"), 10.0);
        assert_eq!(parse_duration("0-01:00:00.250"), 60.0);
        assert_eq!(parse_duration("32-00:00:00"), 32.0 * 1440.0);
        assert_eq!(parse_duration("400-12:00:00"), 400.0 * 1440.0 + 720.0);
        assert_eq!(parse_duration("05:30"), 5.5);
        assert_eq!(parse_duration("00:02.7"), 2.0 / 60.0);
    }

    #[test]
    fn report_line_usage_is_tres_times_minutes_with_mem_in_mb() {
        // The reference's worked example (§2.8).
        let line = ReportLine::parse(
            "hpc_alloc-1|billing=64,cpu=64,gres/gpu=4,mem=524288M,node=1|10:00:00|alice",
        );
        assert_eq!(line.account, "hpc_alloc-1");
        assert_eq!(line.user, "alice");
        let usage = line.tres_usage(&set(&["cpu", "mem", "gres/gpu"]));
        assert_eq!(usage.len(), 3);
        assert_eq!(usage["cpu"], 38_400.0);
        assert_eq!(usage["gres/gpu"], 2_400.0);
        assert_eq!(usage["mem"], 314_572_800.0);
    }

    #[test]
    fn report_line_mem_is_floored_after_multiplying() {
        // 10M for 2 s: 10 × 2^20 × (2/60) bytes·min = 349525.33 MB·min... floored.
        let line = ReportLine::parse("a|cpu=1,mem=10M|00:00:02|u");
        let usage = line.tres_usage(&set(&["mem"]));
        assert_eq!(
            usage["mem"],
            ((10.0 * MIB as f64 * (2.0 / 60.0)) / MIB as f64).floor()
        );
        assert_eq!(usage["mem"], 0.0);
        let line = ReportLine::parse("a|mem=1G|01:00:00|u");
        assert_eq!(line.tres_usage(&set(&["mem"]))["mem"], 61_440.0);
    }

    #[test]
    fn short_report_lines_do_not_panic() {
        let line = ReportLine::parse(" acct |cpu=2");
        assert_eq!(line.account, "acct");
        assert_eq!(line.user, "");
        assert_eq!(line.minutes(), 0.0);
        assert_eq!(line.tres_usage(&set(&["cpu"]))["cpu"], 0.0);
        assert_eq!(report_lines("no separator\nx|y|00:01:00|u\n").len(), 1);
    }

    #[test]
    fn accounts_pad_missing_fields() {
        assert_eq!(
            accounts("root|default root account|root\nbroken-line|only\n"),
            vec![
                ClientResource {
                    name: "root".into(),
                    description: "default root account".into(),
                    organization: "root".into(),
                    backend_id: String::new()
                },
                ClientResource {
                    name: "broken-line".into(),
                    description: "only".into(),
                    organization: String::new(),
                    backend_id: String::new()
                },
            ]
        );
    }

    #[test]
    fn tres_and_clusters() {
        assert_eq!(
            tres_list("cpu||1\nfs|disk|6\ngres|gpu|1001\n"),
            vec!["cpu", "fs/disk", "gres/gpu"]
        );
        assert_eq!(
            clusters("waldurtest\n\n other \n"),
            vec!["waldurtest", "other"]
        );
    }

    #[test]
    fn association_value_reads_field_nine() {
        let a = association("c|acct|alice||parent|||||cpu=12|||");
        assert_eq!(
            (a.account.as_str(), a.user.as_str(), a.value),
            ("acct", "alice", 12)
        );
        let a = association("c|acct");
        assert_eq!(
            (a.account.as_str(), a.user.as_str(), a.value),
            ("acct", "", 0)
        );
    }

    #[test]
    fn limit_lines_keep_configured_tres_with_mem_in_mb() {
        let configured = set(&["cpu", "mem", "gres/gpu"]);
        let (limits, user) = limit_line("a|cpu=600000,gres/gpu=300,mem=600G,node=5", &configured);
        assert_eq!(user, "");
        assert_eq!(
            limits,
            BackendLimits::from([
                ("cpu".into(), 600_000),
                ("gres/gpu".into(), 300),
                ("mem".into(), 614_400)
            ])
        );
        let (limits, user) = limit_line("a|gres/gpu=60|alice", &configured);
        assert_eq!(user, "alice");
        assert_eq!(limits, BackendLimits::from([("gres/gpu".into(), 60)]));
        let (limits, _) = limit_line("a|", &configured);
        assert!(limits.is_empty());
    }

    #[test]
    fn tres_strings_normalise_numbers() {
        assert_eq!(
            tres_strings("cpu=007,mem=600G,x"),
            BTreeMap::from([("cpu".into(), "7".into()), ("mem".into(), "600G".into())])
        );
        assert!(tres_strings("").is_empty());
    }
}
