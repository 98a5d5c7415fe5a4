//! What every Orrery binary writes to stderr: its log lines and, when it fails, its last
//! error. One copy for the master, the satellite, the generator and `orrery-admin`, so they
//! all behave the same way in a terminal, a pipe, a file and the journal.
//!
//! - Log lines go to stderr (stdout is each command's own output, e.g. `check-config`),
//!   coloured only when stderr is a terminal and `NO_COLOR` is unset or empty
//!   (<https://no-color.org/>): escape codes in a log file or a pipe are noise.
//! - A failure is printed once as `program: message`, followed by only those causes the
//!   message does not already contain. Orrery's errors usually carry their cause in their own
//!   message (`config FILE: TOML parse error …`) and also expose it as their `source()`:
//!   printing the whole chain, as `anyhow`'s `{:?}` does, shows every cause twice.

use std::error::Error;
use std::ffi::OsStr;
use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// Installs the global log subscriber: `RUST_LOG` if set and valid, else `default_filter`
/// (`"info"` for the servers). Call once, first thing in `main`.
pub fn init(default_filter: &str) {
    init_with(default_filter, None);
}

/// As [`init`], with one more layer beside the text log, with its own filter (the satellite's
/// buffer of warnings that travel up with its check-ins).
pub fn init_with(default_filter: &str, extra: Option<Box<dyn Layer<Registry> + Send + Sync>>) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let ansi = colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    tracing_subscriber::registry()
        .with(extra)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(ansi)
                .with_filter(filter),
        )
        .init();
}

/// True when log lines may carry colour: on a terminal, unless `NO_COLOR` is set to a
/// non-empty value.
fn colour(terminal: bool, no_color: Option<&OsStr>) -> bool {
    terminal && no_color.is_none_or(OsStr::is_empty)
}

/// Prints `error` to stderr as [`error_report`] words it.
pub fn print_error(program: &str, error: &(dyn Error + 'static)) {
    eprintln!("{}", error_report(program, error));
}

/// `program: message`, then one `  caused by: …` line for each error of `error`'s source
/// chain whose text is not already part of what is shown.
pub fn error_report(program: &str, error: &(dyn Error + 'static)) -> String {
    let mut shown = format!("{program}: {error}");
    let mut cause = error.source();
    while let Some(e) = cause {
        let text = e.to_string();
        let text = text.trim();
        if !text.is_empty() && !shown.contains(text) {
            shown.push_str("\n  caused by: ");
            shown.push_str(text);
        }
        cause = e.source();
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum Inner {
        #[error("no such file")]
        Missing,
    }

    /// A cause in the message and in `source()`, as `#[error("…: {0}")]` with `#[from]` makes.
    #[derive(Debug, thiserror::Error)]
    #[error("config orrery.toml: {0}")]
    struct Worded(#[from] Inner);

    /// A cause in `source()` only, as `anyhow::Context` makes.
    #[derive(Debug, thiserror::Error)]
    #[error("opening the store")]
    struct Context(#[source] Worded);

    #[test]
    fn each_cause_is_shown_once() {
        let e = Worded(Inner::Missing);
        assert_eq!(
            error_report("orrery-master", &e),
            "orrery-master: config orrery.toml: no such file"
        );
        let e = Context(Worded(Inner::Missing));
        assert_eq!(
            error_report("orrery-master", &e),
            "orrery-master: opening the store\n  caused by: config orrery.toml: no such file"
        );
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some(OsStr::new(""))));
        assert!(!colour(true, Some(OsStr::new("1"))));
        assert!(!colour(false, None));
        assert!(!colour(false, Some(OsStr::new(""))));
    }
}
