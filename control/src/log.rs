//! The appliance's log: `tracing` events, as text for a terminal or as
//! JSON lines for journald, Loki and friends.
//!
//! Text: `patronus: [warning: |error: ]MESSAGE key=value...`, information
//! on stdout and warnings and errors on stderr. JSON (`--log-format json`
//! or `PATRONUS_LOG_FORMAT=json`): one object per line with `timestamp`,
//! `level`, `target`, `message` and the event's fields, on the same two
//! streams. The periodic summary, the final report and DPDK's own log lines
//! (target `dpdk`, through `rte_openlog_stream`) are events too in JSON, so
//! every line of the output parses.
//!
//! Nothing secret is ever an event field or in a message: the site's
//! private key and preshared keys stay in their files and in memory (the
//! tunnel logs public keys only).

use std::fmt;
use std::sync::OnceLock;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::writer::MakeWriterExt;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `patronus: message key=value`: for people.
    Text,
    /// One JSON object per line: for machines.
    Json,
}

impl Format {
    /// From `PATRONUS_LOG_FORMAT` (text, json), text when unset or unknown.
    pub fn from_env() -> Format {
        match std::env::var("PATRONUS_LOG_FORMAT").as_deref() {
            Ok("json") => Format::Json,
            _ => Format::Text,
        }
    }
}

static FORMAT: OnceLock<Format> = OnceLock::new();

struct Text;

impl<S, N> FormatEvent<S, N> for Text
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut w: Writer<'_>, ev: &Event<'_>) -> fmt::Result {
        let level = match *ev.metadata().level() {
            Level::ERROR => "error: ",
            Level::WARN => "warning: ",
            _ => "",
        };
        write!(w, "patronus: {level}")?;
        ctx.field_format().format_fields(w.by_ref(), ev)?;
        writeln!(w)
    }
}

/// Installs the global subscriber (once; later calls keep the first).
pub fn init(format: Format) {
    if FORMAT.set(format).is_err() {
        return;
    }
    let max = match std::env::var("PATRONUS_LOG").as_deref() {
        Ok("debug") => Level::DEBUG,
        Ok("warn") | Ok("warning") => Level::WARN,
        _ => Level::INFO,
    };
    let out = std::io::stderr.with_max_level(Level::WARN).or_else(std::io::stdout);
    let b = tracing_subscriber::fmt().with_max_level(max).with_writer(out);
    let _ = match format {
        Format::Text => b.event_format(Text).try_init(),
        Format::Json => b.json().flatten_event(true).with_current_span(false).with_span_list(false).try_init(),
    };
    if format == Format::Json {
        // DPDK's own lines become events too (target `dpdk`), so every
        // line parses. (getopt's complaints about EAL arguments still go
        // straight to stderr.)
        if let Err(e) = dataplane::dpdk::redirect_log(dpdk_line) {
            tracing::warn!("DPDK's log stays on stderr: {e}");
        }
    }
}

extern "C" fn dpdk_line(level: u32, buf: *const std::ffi::c_char, len: usize) {
    if buf.is_null() {
        return;
    }
    // SAFETY: DPDK hands the bytes it writes, `len` of them at `buf`.
    let bytes = unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), len) };
    for line in String::from_utf8_lossy(bytes).lines().map(str::trim_end).filter(|l| !l.is_empty()) {
        match level {
            0..=4 => tracing::error!(target: "dpdk", "{line}"),
            5 => tracing::warn!(target: "dpdk", "{line}"),
            _ => tracing::info!(target: "dpdk", "{line}"),
        }
    }
}

/// A line of the periodic summary or the final report: printed as is in
/// text, an event (target `patronus::report`) in JSON.
pub fn report(line: &str) {
    if FORMAT.get() == Some(&Format::Json) {
        tracing::info!(target: "patronus::report", "{line}");
    } else {
        println!("{line}");
    }
}

/// An error line of a command: through the log once `init` ran (so `run`
/// in JSON mode reports a bad config as JSON), else `patronus: error: ...`
/// on stderr, which is also what the text log prints.
pub fn error(line: &str) {
    if FORMAT.get().is_some() {
        tracing::error!("{line}");
    } else {
        eprintln!("patronus: error: {line}");
    }
}
