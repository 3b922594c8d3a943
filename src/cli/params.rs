//! `collection create --param`: `NAME=VALUE` and `NAME=@FILE` (a list, one value per line) made
//! the collection's `QueryParams` (checked against the workflow's SQL by `new_collection`
//! before anything is written). The rules of names and values are `query_params`'.

use std::io::Read;
use std::path::Path;

use super::CliError;
use crate::query_params::{ParamValue, QueryParams};

/// Largest `--param NAME=@FILE` read (ten thousand ASINs take about 110 KiB).
const MAX_LIST_FILE_BYTES: u64 = 1024 * 1024;

/// Every `--param` given, in one set; the first bad one is refused with one line.
pub fn parse(args: &[String]) -> Result<QueryParams, CliError> {
    let mut params = QueryParams::default();
    for arg in args {
        let (name, value) = parse_one(arg)?;
        params
            .insert(name, value)
            .map_err(|error| CliError::Usage(format!("--param {name}: {error}")))?;
    }
    Ok(params)
}

/// `NAME=VALUE`; `NAME=@FILE` reads a list; `NAME=@@TEXT` is the value `@TEXT`.
fn parse_one(arg: &str) -> Result<(&str, ParamValue), CliError> {
    let Some((name, value)) = arg.split_once('=') else {
        return Err(CliError::Usage(format!(
            "--param `{arg}` is not NAME=VALUE or NAME=@FILE"
        )));
    };
    let value = match value.strip_prefix('@') {
        Some(escaped) if escaped.starts_with('@') => ParamValue::One(escaped.to_string()),
        Some(path) => ParamValue::List(read_list(name, Path::new(path))?),
        None => ParamValue::One(value.to_string()),
    };
    Ok((name, value))
}

/// The values of a list file: one per line, each trimmed, blank lines skipped.
fn read_list(name: &str, path: &Path) -> Result<Vec<String>, CliError> {
    let cannot_read = |error: std::io::Error| {
        CliError::Usage(format!(
            "cannot read --param {name} file {}: {error}",
            path.display()
        ))
    };
    if path.as_os_str().is_empty() {
        return Err(CliError::Usage(format!(
            "--param {name}=@ names no file (NAME=@FILE)"
        )));
    }
    // One byte past the cap, never more: `/dev/zero` or a huge file cannot eat the memory.
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(cannot_read)?
        .take(MAX_LIST_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot_read)?;
    if bytes.len() as u64 > MAX_LIST_FILE_BYTES {
        return Err(CliError::Usage(format!(
            "--param {name} file {} is larger than 1 MiB",
            path.display()
        )));
    }
    let text = String::from_utf8(bytes).map_err(|_| {
        CliError::Usage(format!(
            "--param {name} file {} is not UTF-8 text",
            path.display()
        ))
    })?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_string)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(result: Result<QueryParams, CliError>) -> String {
        match result {
            Err(CliError::Usage(message)) => message,
            other => panic!("expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn a_list_file_gives_one_value_per_non_blank_line_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("asins.txt");
        std::fs::write(&file, "B01\r\n\n  B02  \n\t\nB03").unwrap();
        let params = parse(&[format!("asins=@{}", file.display()), "r=@@x".into()]).unwrap();
        assert_eq!(
            params.get("asins"),
            Some(&ParamValue::List(vec![
                "B01".into(),
                "B02".into(),
                "B03".into()
            ]))
        );
        assert_eq!(params.get("r"), Some(&ParamValue::One("@x".into())));
    }

    #[test]
    fn malformed_unreadable_or_empty_params_are_one_line_usage_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.txt");
        let blank = dir.path().join("blank.txt");
        std::fs::write(&blank, "\n \n").unwrap();
        for (args, fragment) in [
            (vec!["novalue".to_string()], "is not NAME=VALUE"),
            (
                vec![format!("a=@{}", missing.display())],
                "cannot read --param a file",
            ),
            (vec![format!("a=@{}", blank.display())], "has no values"),
            (vec!["a=@".into()], "names no file"),
            (vec!["a=1".into(), "a=2".into()], "given twice"),
            (vec!["start_date=x".into()], "each week's dates"),
            (vec!["a=x\u{7}".into()], "control character"),
        ] {
            let message = usage(parse(&args));
            assert!(message.contains(fragment), "{args:?}: {message}");
            assert_eq!(message.lines().count(), 1, "{message}");
        }
    }
}
