//! Identifiers made from outside text. A relation's name and its result columns are normalised
//! (lower case, every character outside `[a-z0-9_]` becomes `_`, a leading digit or an empty name
//! gets a prefix, at most 63 bytes, Postgres' limit), so they can be quoted into SQL without ever
//! carrying a quote, a NUL or a control character. A name that is taken (by a fixed column or an
//! earlier name) is renamed: a fixed column's twin gets `result_` in front, then `_2`, `_3`, ...
//! until it is free. The same rule, without the normalisation, keeps export's headers unique.

use std::collections::HashSet;

/// Columns every relation starts with, in this order.
pub const FIXED_COLUMNS: [&str; 6] = [
    "collection_id",
    "instance_id",
    "week_start",
    "week_end",
    "execution_id",
    "amc_execution_id",
];

/// Longest identifier Postgres keeps (longer ones are cut silently, which could merge two).
const MAX_IDENTIFIER: usize = 63;

/// `name` as an identifier: lower case, `[a-z0-9_]` only, `prefix` before a leading digit or an
/// empty result, cut to 63 bytes.
pub fn normalise(name: &str, prefix: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            let lower = c.to_ascii_lowercase();
            if lower.is_ascii_lowercase() || lower.is_ascii_digit() || lower == '_' {
                lower
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, prefix);
    }
    out.truncate(MAX_IDENTIFIER);
    out
}

/// `base` with `suffix` appended, cut so the whole stays within 63 bytes (ASCII only here).
fn with_suffix(base: &str, suffix: &str) -> String {
    let keep = MAX_IDENTIFIER.saturating_sub(suffix.len()).min(base.len());
    format!("{}{suffix}", &base[..keep])
}

/// Names for `names` (in order) that collide neither with `fixed` nor with each other. A name
/// equal to a fixed one becomes `result_<name>`; any name still taken gets `_2`, `_3`, ...
/// With `normalise_as`, each name is first normalised with that prefix.
pub fn unique_names(fixed: &[&str], names: &[String], normalise_as: Option<&str>) -> Vec<String> {
    let fixed_set: HashSet<&str> = fixed.iter().copied().collect();
    let mut taken: HashSet<String> = fixed.iter().map(|s| s.to_string()).collect();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let mut base = match normalise_as {
            Some(prefix) => normalise(name, prefix),
            None => name.clone(),
        };
        if fixed_set.contains(base.as_str()) {
            base = match normalise_as {
                Some(_) => with_suffix("result_", &base),
                None => format!("result_{base}"),
            };
        }
        let mut candidate = base.clone();
        let mut n = 2u64;
        while taken.contains(&candidate) {
            let suffix = format!("_{n}");
            candidate = match normalise_as {
                Some(_) => with_suffix(&base, &suffix),
                None => format!("{base}{suffix}"),
            };
            n += 1;
        }
        taken.insert(candidate.clone());
        out.push(candidate);
    }
    out
}

/// A relation's result columns for AMC's column names, in the same order.
pub fn relation_columns(names: &[String]) -> Vec<String> {
    unique_names(&FIXED_COLUMNS, names, Some("c_"))
}

/// Export's header names for the result columns, after export's own `fixed` columns.
pub fn export_headers(fixed: &[&str], names: &[String]) -> Vec<String> {
    unique_names(fixed, names, None)
}

/// A workflow's relation name: normalised with `w_`, then `_2`, `_3`, ... while `taken` has it.
pub fn relation_name(workflow: &str, taken: &HashSet<String>) -> String {
    let base = normalise(workflow, "w_");
    let mut candidate = base.clone();
    let mut n = 2u64;
    while taken.contains(&candidate) {
        candidate = with_suffix(&base, &format!("_{n}"));
        n += 1;
    }
    candidate
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn names_are_lower_case_with_every_other_character_an_underscore() {
        assert_eq!(normalise("Weekly-Traffic v2", "w_"), "weekly_traffic_v2");
        assert_eq!(normalise("Café\"; DROP", "w_"), "caf____drop");
        assert_eq!(normalise("2024 report", "w_"), "w_2024_report");
        assert_eq!(normalise("", "c_"), "c_");
        assert_eq!(normalise("a\0b\nc", "c_"), "a_b_c");
        assert_eq!(normalise(&"x".repeat(100), "c_").len(), 63);
    }

    #[test]
    fn a_result_column_named_like_a_fixed_one_gets_the_result_prefix_then_a_number() {
        let names = strings(&["week_start", "result_week_start", "Week Start", "clicks"]);
        assert_eq!(
            relation_columns(&names),
            vec![
                "result_week_start",
                "result_week_start_2",
                "result_week_start_3",
                "clicks"
            ]
        );
    }

    #[test]
    fn names_equal_after_normalisation_get_numbers_in_order() {
        let names = strings(&["Clicks", "clicks", "CLICKS", "clicks_2"]);
        assert_eq!(
            relation_columns(&names),
            vec!["clicks", "clicks_2", "clicks_3", "clicks_2_2"]
        );
    }

    #[test]
    fn long_names_stay_unique_within_sixty_three_bytes() {
        let long = "y".repeat(80);
        let names = strings(&[&long, &long, &long]);
        let columns = relation_columns(&names);
        assert!(columns.iter().all(|c| c.len() <= 63));
        assert_eq!(columns.iter().collect::<HashSet<_>>().len(), 3);
    }

    #[test]
    fn export_headers_keep_names_but_never_repeat_export_s_own() {
        let fixed = ["week_start", "week_end"];
        let names = strings(&["week_start", "Campaign", "result_week_start"]);
        assert_eq!(
            export_headers(&fixed, &names),
            vec!["result_week_start", "Campaign", "result_week_start_2"]
        );
    }

    #[test]
    fn relation_names_taken_twice_get_a_number() {
        let mut taken = HashSet::new();
        let first = relation_name("Weekly Traffic", &taken);
        taken.insert(first.clone());
        let second = relation_name("weekly-traffic", &taken);
        assert_eq!(
            (first.as_str(), second.as_str()),
            ("weekly_traffic", "weekly_traffic_2")
        );
    }
}
