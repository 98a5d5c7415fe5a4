//! The satellite's warnings and errors, kept for the master: a `tracing` layer copies every
//! WARN and ERROR event into a ring of [`CAPACITY`] entries, and each check-in carries what the
//! ring holds (`CheckInRequest.logs`), so an operator sees them in `orrery-master status`
//! without reading this machine's log.
//!
//! Bounded by design: while the master is away the ring keeps the newest entries and counts the
//! ones it drops, which the check-in reports too. A check-in takes the entries out and puts them
//! back if it fails, so a master that is briefly away loses nothing the ring can hold. The lock
//! is taken once per warning, never per query (queries do not log warnings).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use orrery_proto::link::pb;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;

/// Entries kept between check-ins.
pub const CAPACITY: usize = 64;
/// Longest message kept, in bytes (a longer one is cut at a character boundary).
const MAX_MESSAGE: usize = 1024;

/// A bounded buffer of log entries.
#[derive(Debug, Default)]
pub struct LogBuffer {
    inner: Mutex<Ring>,
}

#[derive(Debug, Default)]
struct Ring {
    entries: VecDeque<pb::LogEntry>,
    dropped: u64,
}

/// What one check-in carries.
#[derive(Debug, Default)]
pub struct Taken {
    pub entries: Vec<pb::LogEntry>,
    /// Entries dropped since the start.
    pub dropped: u64,
}

/// The buffer the satellite process logs into (installed by `main`).
static GLOBAL: LogBuffer = LogBuffer::new();

/// The process's buffer.
pub fn global() -> &'static LogBuffer {
    &GLOBAL
}

impl LogBuffer {
    pub const fn new() -> Self {
        Self {
            inner: Mutex::new(Ring {
                entries: VecDeque::new(),
                dropped: 0,
            }),
        }
    }

    /// A layer copying WARN and ERROR events into this buffer.
    pub fn layer(&'static self) -> BufferLayer {
        BufferLayer { buffer: self }
    }

    fn ring(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds an entry, dropping the oldest when full.
    pub fn push(&self, entry: pb::LogEntry) {
        let mut ring = self.ring();
        if ring.entries.len() == CAPACITY {
            ring.entries.pop_front();
            ring.dropped += 1;
        }
        ring.entries.push_back(entry);
    }

    /// Takes every entry out, for a check-in.
    pub fn take(&self) -> Taken {
        let mut ring = self.ring();
        Taken {
            entries: ring.entries.drain(..).collect(),
            dropped: ring.dropped,
        }
    }

    /// Puts back the entries of a check-in that failed, before anything logged since; what no
    /// longer fits is dropped (the oldest first) and counted.
    pub fn restore(&self, taken: Vec<pb::LogEntry>) {
        let mut ring = self.ring();
        let room = CAPACITY - ring.entries.len();
        let skip = taken.len().saturating_sub(room);
        ring.dropped += skip as u64;
        for entry in taken.into_iter().skip(skip).rev() {
            ring.entries.push_front(entry);
        }
    }
}

/// The `tracing` layer of a [`LogBuffer`].
#[derive(Debug)]
pub struct BufferLayer {
    buffer: &'static LogBuffer,
}

impl<S: Subscriber> tracing_subscriber::Layer<S> for BufferLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let level = *event.metadata().level();
        if level > Level::WARN {
            return;
        }
        let mut text = Message::default();
        event.record(&mut text);
        let mut message = text.message;
        message.push_str(&text.fields);
        if message.len() > MAX_MESSAGE {
            let mut end = MAX_MESSAGE;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
        }
        let time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        self.buffer.push(pb::LogEntry {
            time,
            level: level.as_str().to_owned(),
            target: event.metadata().target().to_owned(),
            message,
        });
    }
}

/// An event's message and its other fields as ` name=value`, as the text log shows them.
#[derive(Default)]
struct Message {
    message: String,
    fields: String,
}

impl Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    fn entry(n: usize) -> pb::LogEntry {
        pb::LogEntry {
            message: n.to_string(),
            ..Default::default()
        }
    }

    fn messages(t: &Taken) -> Vec<String> {
        t.entries.iter().map(|e| e.message.clone()).collect()
    }

    #[test]
    fn captures_warnings_and_errors_with_fields() {
        static BUFFER: LogBuffer = LogBuffer::new();
        let subscriber = tracing_subscriber::registry().with(BUFFER.layer());
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("not kept");
            tracing::warn!(port = 53, reason = "in use", "listener failed");
            tracing::error!("snapshot unreadable");
            tracing::debug!("not kept either");
        });
        let t = BUFFER.take();
        assert_eq!(t.dropped, 0);
        assert_eq!(t.entries.len(), 2, "{:?}", t.entries);
        assert_eq!(t.entries[0].level, "WARN");
        assert_eq!(
            t.entries[0].message,
            "listener failed port=53 reason=in use"
        );
        assert!(
            t.entries[0].target.contains("log_buffer"),
            "{:?}",
            t.entries[0]
        );
        assert!(t.entries[0].time > 1_600_000_000);
        assert_eq!(
            (t.entries[1].level.as_str(), t.entries[1].message.as_str()),
            ("ERROR", "snapshot unreadable")
        );
        assert!(BUFFER.take().entries.is_empty());
    }

    #[test]
    fn bounded_and_counts_what_it_drops() {
        let b = LogBuffer::new();
        for n in 0..CAPACITY + 5 {
            b.push(entry(n));
        }
        let t = b.take();
        assert_eq!((t.entries.len(), t.dropped), (CAPACITY, 5));
        assert_eq!(t.entries[0].message, "5");
        // A failed check-in puts its entries back ahead of newer ones …
        b.push(entry(1000));
        b.restore(t.entries);
        let t = b.take();
        // … keeping what fits: the newest CAPACITY, the oldest of the restored ones dropped.
        assert_eq!((t.entries.len(), t.dropped), (CAPACITY, 6));
        assert_eq!(t.entries[0].message, "6");
        assert_eq!(t.entries[CAPACITY - 1].message, "1000");
        let long = pb::LogEntry {
            message: "é".repeat(MAX_MESSAGE),
            ..Default::default()
        };
        b.restore(vec![long]);
        assert_eq!(messages(&b.take()).len(), 1);
    }

    #[test]
    fn long_messages_are_cut_at_a_character() {
        static BUFFER: LogBuffer = LogBuffer::new();
        let subscriber = tracing_subscriber::registry().with(BUFFER.layer());
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!("{}", "é".repeat(MAX_MESSAGE));
        });
        let t = BUFFER.take();
        assert!(t.entries[0].message.len() <= MAX_MESSAGE);
        assert!(t.entries[0].message.starts_with('é'));
    }
}
