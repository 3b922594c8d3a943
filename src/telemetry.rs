//! Logging setup: `tracing` to stderr, text or JSON, filtered by `RUST_LOG`. Text lines escape
//! control characters in every field (`EscapedFields`), so text from AMC cannot forge a line.

use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::{DefaultFields, Writer};
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::EnvFilter;

/// Format of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber once; `RUST_LOG` wins over `default_level`.
pub fn init(format: LogFormat, default_level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "{default_level},sqlx={}",
            sqlx_level(default_level)
        ))
    });
    // Colour codes only for a terminal: log files and the journal get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    // A second init (tests) is harmless: keep the first subscriber.
    let _ = match format {
        LogFormat::Text => builder.fmt_fields(EscapedFields::default()).try_init(),
        LogFormat::Json => builder.json().with_current_span(true).try_init(),
    };
}

/// The text format's fields (an event's message and fields, a span's fields), formatted as
/// tracing-subscriber does and then passed through `escape_controls`: values logged with `%`
/// (Display) reach the line unescaped otherwise, and an AMC status or error text may carry a
/// newline. JSON lines need none of this.
#[derive(Debug, Default)]
pub struct EscapedFields(DefaultFields);

impl<'writer> FormatFields<'writer> for EscapedFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> std::fmt::Result {
        // Formatted without colours: escaping would otherwise mangle the italic field names.
        let mut raw = String::new();
        self.0.format_fields(Writer::new(&mut raw), fields)?;
        writer.write_str(&crate::escape::escape_controls(&raw))
    }
}

/// sqlx's slow-statement warnings help a daemon's operator but would break a command's one-line
/// output, so only the daemon shows them.
fn sqlx_level(default_level: &str) -> &'static str {
    if default_level == "info" {
        "warn"
    } else {
        "error"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Collects what the subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut buffer) = self.0.lock() {
                buffer.extend_from_slice(bytes);
            }
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn outside_text_in_a_text_log_line_stays_on_that_line_escaped() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .fmt_fields(EscapedFields::default())
            .finish();

        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("week", amc_execution_id = %"id\nINFO forged span");
            let _entered = span.enter();
            let error = std::io::Error::other("reason\r\nWARN forged error \u{1b}[2J \u{202e}");
            tracing::warn!(amc_status = %"QUEUED\nERROR forged status", %error, "Status\nchanged.");
        });

        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(!text.contains(['\r', '\u{1b}', '\u{202e}']), "{text}");
        for escaped in [
            "id\\nINFO forged span",
            "QUEUED\\nERROR forged status",
            "reason\\r\\nWARN forged error \\x1b[2J \\u{202e}",
            "Status\\nchanged.",
        ] {
            assert!(text.contains(escaped), "`{escaped}` not in {text}");
        }
    }
}
