//! The spec's 72-column emitter banners, printed by each emitter worker as
//! it starts (activation) and stops (termination).
//!
//! These functions return plain text; the console paints the title in the
//! record's colour class (a record with a `banner` field is printed as a
//! banner: its message is the title line, `banner` the body). The formats
//! are pinned by the tests below.

use std::fmt::Write as _;

/// Width of the activation and termination banners.
pub const BANNER_WIDTH: usize = 72;

/// The fields of an emitter worker's activation banner.
///
/// The spec's banner shows the BEAM scheduler and process ids; here the
/// fields are what identifies the worker and its subscriber to an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activation<'a> {
    /// `"<store>:<selector>"`
    /// ([`topics::store_stream`](crate::integration::topics::store_stream)).
    pub topic: &'a str,
    /// The store id.
    pub store: &'a str,
    /// The worker: its id as `Emitters::list` and `ProcessLifecycle` name
    /// it, and whether its subscription is persistent
    /// (`emitter-3 (persistent subscription projection)`).
    pub worker: &'a str,
    /// The OS thread it started on: name, thread id and process id
    /// (`tokio-runtime-worker, tid 4242, pid 4200`).
    pub thread: &'a str,
    /// The subscriber: name and kind (`projector (plugin)`).
    pub subscriber: &'a str,
}

/// The fields of an emitter worker's termination banner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Termination<'a> {
    /// Why it stopped (`:shutdown`, …).
    pub reason: &'a str,
    /// The store id.
    pub store: &'a str,
    /// The selector (stream, `$all`, …).
    pub selector: &'a str,
    /// The subscriber: name and kind (`projector (plugin)`).
    pub subscriber: &'a str,
    /// The worker: id and what it delivered (`emitter-3 (120 events delivered)`).
    pub worker: &'a str,
}

/// Centres `title` in [`BANNER_WIDTH`] columns (emoji count as two).
pub fn banner_title(title: &str) -> String {
    let width: usize = title
        .chars()
        .map(|c| if (c as u32) >= 0x1F000 { 2 } else { 1 })
        .sum();
    let pad = BANNER_WIDTH.saturating_sub(width);
    let left = pad / 2;
    format!("{}{title}{}", " ".repeat(left), " ".repeat(pad - left))
}

fn field_lines(fields: &[(&str, String)]) -> String {
    let mut out = String::new();
    for (label, value) in fields {
        let _ = writeln!(out, "{:<12}{value}", format!("{label}:"));
    }
    out
}

/// The activation banner: a blank line, the centred title, a blank line, the fields.
/// Returns `(title_line, body)`, so the console can paint the title.
pub fn activation_banner(a: &Activation<'_>) -> (String, String) {
    let body = field_lines(&[
        ("Topic", format!("\"{}\"", a.topic)),
        ("Store", a.store.to_owned()),
        ("Worker", a.worker.to_owned()),
        ("Thread", a.thread.to_owned()),
        ("Subscriber", a.subscriber.to_owned()),
    ]);
    (banner_title("EMITTER WORKER ACTIVATION"), body)
}

/// The termination banner, as `(title_line, body)`.
pub fn termination_banner(t: &Termination<'_>) -> (String, String) {
    let body = field_lines(&[
        ("Reason", t.reason.to_owned()),
        ("Store", t.store.to_owned()),
        ("Selector", t.selector.to_owned()),
        ("Subscriber", t.subscriber.to_owned()),
        ("Worker", t.worker.to_owned()),
    ]);
    (banner_title("💀 EMITTER WORKER TERMINATION 💀"), body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activation_banner_snapshot() {
        let (title, body) = activation_banner(&Activation {
            topic: "my_store:stream_name",
            store: "my_store",
            worker: "emitter-3 (persistent subscription projection)",
            thread: "tokio-runtime-worker, tid 4242, pid 4200",
            subscriber: "projector (plugin)",
        });
        assert_eq!(title.chars().count(), BANNER_WIDTH);
        assert_eq!(title.trim(), "EMITTER WORKER ACTIVATION");
        assert_eq!(
            body,
            "Topic:      \"my_store:stream_name\"\n\
             Store:      my_store\n\
             Worker:     emitter-3 (persistent subscription projection)\n\
             Thread:     tokio-runtime-worker, tid 4242, pid 4200\n\
             Subscriber: projector (plugin)\n"
        );
    }

    #[test]
    fn termination_banner_snapshot() {
        let (title, body) = termination_banner(&Termination {
            reason: ":shutdown",
            store: "my_store",
            selector: "stream_name",
            subscriber: "projector (plugin)",
            worker: "emitter-3 (120 events delivered)",
        });
        assert_eq!(title.trim(), "💀 EMITTER WORKER TERMINATION 💀");
        // Two emoji are two columns each: 28 chars + 2 = 30 columns, padded to 72.
        assert_eq!(title.chars().count(), BANNER_WIDTH - 2);
        assert_eq!(
            body,
            "Reason:     :shutdown\n\
             Store:      my_store\n\
             Selector:   stream_name\n\
             Subscriber: projector (plugin)\n\
             Worker:     emitter-3 (120 events delivered)\n"
        );
    }
}
