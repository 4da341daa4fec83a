//! `exesdb-host store …`: append, read and list events and manage the
//! checkpoints of persistent subscriptions, directly on a store's data
//! directory (`<data_dir>/<store_id>.redb`).
//!
//! These commands open the database file themselves, so they are for when
//! the host is not running: a running host holds its stores' lock, and the
//! command then fails with a "locked" error naming the store.
//!
//! Output is made for scripts: an append prints its result as one JSON
//! object, a read prints one JSON object per event (see `EventJson`),
//! listings print aligned tables with a header line.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use clap::{ArgGroup, Subcommand};
use serde::{Deserialize, Serialize};

use crate::store::{
    Direction, Durability, ExpectedVersion, NewEvent, Payload, RecordedEvent, Selector, Store,
    StoreError,
};

/// How many events a read asks the store for at a time.
const PAGE: usize = 512;

/// `exesdb-host store …`
#[derive(Debug, Subcommand)]
pub enum StoreAction {
    /// Append one event (`--type`, `--data`, `--metadata`) or a JSON Lines
    /// file of events (`--file`) to a stream, atomically; prints the result
    /// as JSON. Creates the store if it does not exist.
    #[command(group(ArgGroup::new("source").required(true).args(["event_type", "file"])))]
    Append {
        /// The stream.
        stream: String,
        /// The event's type.
        #[arg(long = "type", value_name = "TYPE")]
        event_type: Option<String>,
        /// The event's data, as JSON (default: null).
        #[arg(long, value_name = "JSON", conflicts_with = "file")]
        data: Option<String>,
        /// The event's metadata, as JSON (default: null).
        #[arg(long, value_name = "JSON", conflicts_with = "file")]
        metadata: Option<String>,
        /// A JSON Lines file (`-`: standard input), one event a line:
        /// `{"type": …, "data": …, "metadata": …}` (`data` and `metadata`
        /// optional, default null; blank lines skipped). All its events are
        /// appended as one batch: all or none.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// The condition on the stream's version (the number of its last
        /// event, 0-based): any, no_stream, stream_exists or a number.
        #[arg(long, value_name = "VERSION", default_value = "any")]
        expected: ExpectedVersion,
    },
    /// Print a stream's events, one JSON object per line.
    ///
    /// STREAM may also be a selector: `$all` (same as `read-all`), or
    /// `$et-<type>` / `$pattern-<glob>`, read forward only, with `--from`
    /// a global position.
    Read {
        /// The stream (or selector).
        stream: String,
        /// The first event number to print (default: the first event, or
        /// the last one with --backward).
        #[arg(long, value_name = "N")]
        from: Option<u64>,
        /// Print at most N events (default: all).
        #[arg(long, value_name = "N")]
        count: Option<usize>,
        /// Newest first.
        #[arg(long)]
        backward: bool,
    },
    /// Print the events of all streams in global order (`$all`), one JSON
    /// object per line.
    ReadAll {
        /// The first global position to print (default: the first event, or
        /// the last one with --backward).
        #[arg(long, value_name = "N")]
        from: Option<u64>,
        /// Print at most N events (default: all).
        #[arg(long, value_name = "N")]
        count: Option<usize>,
        /// Newest first.
        #[arg(long)]
        backward: bool,
    },
    /// List the streams: name, version (last event number) and event count.
    Streams,
    /// Manage the checkpoints of persistent subscriptions.
    ///
    /// A checkpoint is the global position of the last event the
    /// subscription acknowledged; delivery resumes at the next position. A
    /// persistent subscription without a checkpoint starts at the beginning
    /// of the store.
    Subscriptions {
        /// What to do.
        #[command(subcommand)]
        action: SubscriptionAction,
    },
}

/// `exesdb-host store subscriptions …`
#[derive(Debug, Subcommand)]
pub enum SubscriptionAction {
    /// List the subscriptions with a checkpoint: name and checkpoint.
    List,
    /// Create a subscription's checkpoint (it must not have one yet).
    #[command(group(ArgGroup::new("start").required(true).args(["after", "at_head"])))]
    Create {
        /// The subscription.
        name: String,
        /// Save checkpoint POSITION: delivery starts at POSITION + 1.
        #[arg(long, value_name = "POSITION")]
        after: Option<u64>,
        /// Save the store's current head position as the checkpoint:
        /// delivery starts with the next event appended.
        #[arg(long)]
        at_head: bool,
    },
    /// Delete a subscription's checkpoint (it then starts again at the
    /// beginning). An error if it has none.
    Delete {
        /// The subscription.
        name: String,
    },
}

/// Runs `exesdb-host store --data-dir DIR --store ID <action>`.
pub fn run(data_dir: &Path, store_id: &str, action: StoreAction) -> anyhow::Result<()> {
    // Input is checked before the store is opened, so bad input creates
    // nothing. Only an append may create the store; anything else on a
    // store that does not exist is most likely a wrong --data-dir or --store.
    let existing = || open(data_dir, store_id, false);
    match action {
        StoreAction::Append {
            stream,
            event_type,
            data,
            metadata,
            file,
            expected,
        } => {
            let events = match (file, event_type) {
                (Some(file), _) => read_jsonl(&file)?,
                (None, Some(event_type)) => {
                    let data = parse_json("--data", data.as_deref())?;
                    let metadata = parse_json("--metadata", metadata.as_deref())?;
                    vec![NewEvent::json(event_type, data).with_metadata(Payload::Json(metadata))]
                }
                (None, None) => bail!("append needs --type TYPE or --file FILE"),
            };
            let store = open(data_dir, store_id, true)?;
            let result = store.append(&stream, expected, events)?;
            println!("{}", serde_json::to_string(&result)?);
            Ok(())
        }
        StoreAction::Read {
            stream,
            from,
            count,
            backward,
        } => {
            let direction = direction(backward);
            // A name not starting with `$` is a stream (the store checks it).
            let selector = if stream.starts_with('$') {
                stream
                    .parse::<Selector>()
                    .with_context(|| format!("store {store_id}"))?
            } else {
                Selector::Stream(stream)
            };
            if backward && !matches!(selector, Selector::Stream(_) | Selector::All) {
                bail!("store {store_id}: {selector} can only be read forward");
            }
            let store = existing()?;
            match selector {
                Selector::Stream(stream) => {
                    print_events(from, count, direction, by_number, |from, n| {
                        store.read_stream(&stream, from, n, direction)
                    })
                }
                Selector::All => print_events(from, count, direction, by_position, |from, n| {
                    store.read_all(from, n, direction)
                }),
                selector => print_selected(&store, &selector, from.unwrap_or(0), count),
            }
        }
        StoreAction::ReadAll {
            from,
            count,
            backward,
        } => {
            let direction = direction(backward);
            let store = existing()?;
            print_events(from, count, direction, by_position, |from, n| {
                store.read_all(from, n, direction)
            })
        }
        StoreAction::Streams => {
            let streams = existing()?.list_streams()?;
            let width = streams
                .iter()
                .map(|s| cell_width(&s.name))
                .max()
                .unwrap_or(0);
            let width = width.max("NAME".len());
            output(|out| {
                writeln!(
                    out,
                    "{:<width$}  {:>10}  {:>10}",
                    "NAME", "VERSION", "EVENTS"
                )?;
                for s in &streams {
                    writeln!(
                        out,
                        "{:<width$}  {:>10}  {:>10}",
                        s.name, s.version, s.event_count
                    )?;
                }
                Ok(())
            })
        }
        StoreAction::Subscriptions { action } => subscriptions(&existing()?, action),
    }
}

/// `exesdb-host store subscriptions …`
fn subscriptions(store: &Store, action: SubscriptionAction) -> anyhow::Result<()> {
    let id = store.id();
    match action {
        SubscriptionAction::List => {
            let checkpoints = store.list_checkpoints()?;
            let width = checkpoints
                .iter()
                .map(|(n, _)| cell_width(n))
                .max()
                .unwrap_or(0);
            let width = width.max("NAME".len());
            output(|out| {
                writeln!(out, "{:<width$}  {:>10}", "NAME", "CHECKPOINT")?;
                for (name, position) in &checkpoints {
                    writeln!(out, "{name:<width$}  {position:>10}")?;
                }
                Ok(())
            })
        }
        SubscriptionAction::Create {
            name,
            after,
            at_head,
        } => {
            if let Some(existing) = store.checkpoint(&name)? {
                bail!(
                    "store {id}: subscription {name:?} already exists (checkpoint {existing}); \
                     delete it first to move it"
                );
            }
            let head = store.head_position()?;
            let position = match (after, at_head) {
                (Some(position), _) => match head {
                    Some(head) if position <= head => position,
                    Some(head) => bail!(
                        "store {id}: subscription {name:?}: position {position} is past the \
                         store's head (the last event is at position {head})"
                    ),
                    None => bail!(
                        "store {id}: subscription {name:?}: position {position} is past the \
                         store's head (the store is empty)"
                    ),
                },
                (None, true) => head.ok_or_else(|| {
                    anyhow!(
                        "store {id}: subscription {name:?}: the store is empty, so it has no \
                         head position; a subscription without a checkpoint already starts at \
                         the beginning"
                    )
                })?,
                (None, false) => bail!("subscriptions create needs --after POSITION or --at-head"),
            };
            store.save_checkpoint(&name, position)?;
            println!(
                "subscription {name:?} created in store {id}: checkpoint {position} \
                 (delivery starts at position {})",
                position.saturating_add(1)
            );
            Ok(())
        }
        SubscriptionAction::Delete { name } => {
            let Some(position) = store.checkpoint(&name)? else {
                bail!("store {id}: subscription {name:?} does not exist (it has no checkpoint)");
            };
            store.delete_checkpoint(&name)?;
            println!(
                "subscription {name:?} deleted from store {id} (its checkpoint was {position})"
            );
            Ok(())
        }
    }
}

/// Opens the store, turning a lock held by another process into an error
/// that says to stop the host. Unless `create`, a store whose file does not
/// exist is an error.
fn open(data_dir: &Path, store_id: &str, create: bool) -> anyhow::Result<Store> {
    let path = data_dir.join(format!("{store_id}.redb"));
    // An invalid id is left to `Store::open`, which says why.
    let plausible_id = !store_id.is_empty()
        && store_id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !create && plausible_id && !path.exists() {
        bail!(
            "store {store_id} does not exist in {} (no file {}); check --data-dir and --store \
             (`store append` creates a store)",
            data_dir.display(),
            path.display()
        );
    }
    Store::open(data_dir, store_id, Durability::Immediate).map_err(|e| match e {
        StoreError::Locked { path, reason, .. } => anyhow!(
            "store {store_id} is locked: database file {} is already open ({reason}); a \
             running host holds its stores' lock: stop the host and retry",
            path.display()
        ),
        other => other.into(),
    })
}

/// The width of a table cell, in characters.
fn cell_width(text: &str) -> usize {
    text.chars().count()
}

fn by_number(e: &RecordedEvent) -> u64 {
    e.event_number
}

fn by_position(e: &RecordedEvent) -> u64 {
    e.global_position
}

fn direction(backward: bool) -> Direction {
    if backward {
        Direction::Backward
    } else {
        Direction::Forward
    }
}

/// Parses the JSON of a command-line argument; absent: null.
fn parse_json(arg: &str, text: Option<&str>) -> anyhow::Result<serde_json::Value> {
    match text {
        None => Ok(serde_json::Value::Null),
        Some(text) => serde_json::from_str(text).with_context(|| format!("{arg}: invalid JSON")),
    }
}

/// One line of an `append --file` file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventLine {
    #[serde(rename = "type")]
    event_type: String,
    #[serde(default)]
    data: serde_json::Value,
    #[serde(default)]
    metadata: serde_json::Value,
}

/// Reads the events of a JSON Lines file (`-`: standard input).
fn read_jsonl(path: &Path) -> anyhow::Result<Vec<NewEvent>> {
    let name = if path == Path::new("-") {
        "standard input".to_owned()
    } else {
        path.display().to_string()
    };
    let reader: Box<dyn BufRead> = if path == Path::new("-") {
        Box::new(io::stdin().lock())
    } else {
        let file = File::open(path).with_context(|| format!("cannot open {name}"))?;
        Box::new(BufReader::new(file))
    };
    let mut events = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let n = i + 1;
        let line = line.with_context(|| format!("{name} line {n}: cannot read"))?;
        if line.trim().is_empty() {
            continue;
        }
        let e: EventLine = serde_json::from_str(&line)
            .with_context(|| format!("{name} line {n}: invalid event JSON"))?;
        events.push(NewEvent::json(e.event_type, e.data).with_metadata(Payload::Json(e.metadata)));
    }
    if events.is_empty() {
        bail!("{name} holds no event");
    }
    Ok(events)
}

/// An event as `read` prints it: one JSON object. A JSON payload is the
/// value itself (`data`, `metadata`); a non-JSON payload is given as
/// `data_content_type` + `data_base64` (`metadata_…` likewise) instead.
#[derive(Debug, Serialize)]
struct EventJson<'a> {
    global_position: u64,
    stream_id: &'a str,
    event_number: u64,
    event_type: &'a str,
    event_id: uuid::Uuid,
    created: chrono::DateTime<chrono::Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_content_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_base64: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<&'a serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata_content_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata_base64: Option<String>,
}

impl<'a> EventJson<'a> {
    fn new(e: &'a RecordedEvent) -> Self {
        let parts = |p: &'a Payload| match p {
            Payload::Json(v) => (Some(v), None, None),
            Payload::Bytes {
                content_type,
                bytes,
            } => (None, Some(content_type.as_str()), Some(base64(bytes))),
        };
        let (data, data_content_type, data_base64) = parts(&e.data);
        let (metadata, metadata_content_type, metadata_base64) = parts(&e.metadata);
        EventJson {
            global_position: e.global_position,
            stream_id: &e.stream_id,
            event_number: e.event_number,
            event_type: &e.event_type,
            event_id: e.event_id,
            created: e.created,
            data,
            data_content_type,
            data_base64,
            metadata,
            metadata_content_type,
            metadata_base64,
        }
    }
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Prints the events of a stream or `$all`, paging through `read(from, n)`;
/// `key` gives the position a read starts from (the event number for a
/// stream, the global position for `$all`).
fn print_events(
    from: Option<u64>,
    count: Option<usize>,
    direction: Direction,
    key: fn(&RecordedEvent) -> u64,
    read: impl Fn(u64, usize) -> Result<Vec<RecordedEvent>, StoreError>,
) -> anyhow::Result<()> {
    let backward = direction == Direction::Backward;
    let mut from = from.unwrap_or(if backward { u64::MAX } else { 0 });
    let mut left = count.unwrap_or(usize::MAX);
    output(|out| {
        while left > 0 {
            let n = left.min(PAGE);
            let events = read(from, n).map_err(io::Error::other)?;
            for e in &events {
                serde_json::to_writer(&mut *out, &EventJson::new(e))?;
                out.write_all(b"\n")?;
            }
            left -= events.len();
            let Some(last) = events.last() else { break };
            if events.len() < n {
                break;
            }
            from = match (backward, key(last)) {
                (false, u64::MAX) | (true, 0) => break,
                (false, at) => at + 1,
                (true, at) => at - 1,
            };
        }
        Ok(())
    })
}

/// Prints, forward from global position `from`, the events `selector`
/// selects (an event type or stream pattern).
fn print_selected(
    store: &Store,
    selector: &Selector,
    from: u64,
    count: Option<usize>,
) -> anyhow::Result<()> {
    let mut from = from;
    let mut left = count.unwrap_or(usize::MAX);
    output(|out| {
        while left > 0 {
            let n = left.min(PAGE);
            let batch = store
                .read_batch(selector, from, n)
                .map_err(io::Error::other)?;
            for e in &batch.events {
                serde_json::to_writer(&mut *out, &EventJson::new(e))?;
                out.write_all(b"\n")?;
            }
            left -= batch.events.len();
            if batch.events.len() < n {
                break;
            }
            from = batch.next_position;
        }
        Ok(())
    })
}

/// Runs `write` on a buffered standard output; a reader that went away
/// (`| head`) is not an error.
fn output(write: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> anyhow::Result<()> {
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    match write(&mut out).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => match e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<StoreError>())
        {
            Some(store_error) => Err(store_error.clone().into()),
            None => Err(anyhow::Error::new(e).context("writing to standard output")),
        },
        Ok(()) => Ok(()),
    }
}
