//! `exesdb-host store …`: append, read and list events and manage the
//! checkpoints of persistent subscriptions of a store, the file
//! `<data_dir>/<store_id>.redb`.
//!
//! Where a command runs is decided by the file's lock: when no process
//! holds it, the command opens the file itself; when another process holds
//! it — a running host — `append`, `read`, `read-all` and `streams` go
//! through that host's gateway (`--admin`, the routes under
//! `/v1/stores/{store}/…`) and print exactly what they print on the file.
//! `subscriptions …` has no gateway route, so it needs the file: with the
//! host running it fails with a "locked" error that says so. The file
//! decides rather than "is a host answering?": with no process holding the
//! file, a command works on that file even while some other host runs; with
//! the file locked, `--admin` must be the API of the host that holds it.
//!
//! Output is made for scripts: an append prints its result as one JSON
//! object, a read prints one JSON object per event (see `EventJson`),
//! listings print aligned tables with a header line.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use base64::Engine as _;
use clap::{ArgGroup, Subcommand};
use serde::Deserialize;
use serde_json::{json, Value};
use unicode_width::UnicodeWidthStr;

use super::remote::{Remote, Unreachable};
use crate::store::json::EventJson;
use crate::store::{
    AppendResult, Direction, Durability, ExpectedVersion, NewEvent, Payload, RecordedEvent,
    Selector, Store, StoreError, StreamInfo,
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

/// Runs `exesdb-host store --data-dir DIR --store ID <action>`: on the file,
/// or through `host` when a running host holds the file.
pub fn run(
    data_dir: &Path,
    store_id: &str,
    host: &Remote,
    action: StoreAction,
) -> anyhow::Result<()> {
    // Input is checked before the store is opened, so bad input creates
    // nothing. Only an append may create the store; anything else on a
    // store that does not exist is most likely a wrong --data-dir or --store.
    let existing = || target(data_dir, store_id, false, host);
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
            let result = match target(data_dir, store_id, true, host)? {
                Target::File(store) => store.append(&stream, expected, events)?,
                Target::Host(held) => held.append(&stream, expected, &events)?,
            };
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
            let key = match selector {
                Selector::Stream(_) => by_number,
                _ => by_position,
            };
            match existing()? {
                Target::File(store) => match selector {
                    Selector::Stream(stream) => {
                        print_events(from, count, direction, key, |from, n| {
                            Ok(store.read_stream(&stream, from, n, direction)?)
                        })
                    }
                    Selector::All => print_events(from, count, direction, key, |from, n| {
                        Ok(store.read_all(from, n, direction)?)
                    }),
                    // Forward only, by global position: each page starts
                    // after the last event of the one before.
                    selector => print_events(from, count, direction, key, |from, n| {
                        Ok(store.read_from(&selector, from, n)?)
                    }),
                },
                Target::Host(held) => {
                    let name = selector.to_string();
                    print_events(from, count, direction, key, |from, n| {
                        held.read(&name, from, n, direction)
                    })
                }
            }
        }
        StoreAction::ReadAll {
            from,
            count,
            backward,
        } => {
            let direction = direction(backward);
            match existing()? {
                Target::File(store) => {
                    print_events(from, count, direction, by_position, |from, n| {
                        Ok(store.read_all(from, n, direction)?)
                    })
                }
                Target::Host(held) => {
                    print_events(from, count, direction, by_position, |from, n| {
                        held.read("$all", from, n, direction)
                    })
                }
            }
        }
        StoreAction::Streams => {
            let streams = match existing()? {
                Target::File(store) => store.list_streams()?,
                Target::Host(held) => held.streams()?,
            };
            let width = streams
                .iter()
                .map(|s| cell_width(&s.name))
                .max()
                .unwrap_or(0);
            let width = width.max("NAME".len());
            output(|out| {
                writeln!(
                    out,
                    "{}  {:>10}  {:>10}",
                    Cell("NAME", width),
                    "VERSION",
                    "EVENTS"
                )?;
                for s in &streams {
                    writeln!(
                        out,
                        "{}  {:>10}  {:>10}",
                        Cell(&s.name, width),
                        s.version,
                        s.event_count
                    )?;
                }
                Ok(())
            })
        }
        StoreAction::Subscriptions { action } => match existing()? {
            Target::File(store) => subscriptions(&store, action),
            Target::Host(held) => Err(held.locked(
                "subscriptions are managed on the store's file only (the host's API has no \
                 route for them): stop the host and retry",
            )),
        },
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
                writeln!(out, "{}  {:>10}", Cell("NAME", width), "CHECKPOINT")?;
                for (name, position) in &checkpoints {
                    writeln!(out, "{}  {position:>10}", Cell(name, width))?;
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
/// Where a command runs.
enum Target<'a> {
    /// On the store's file, opened by this command.
    File(Store),
    /// Through the running host that holds the file.
    Host(Held<'a>),
}

/// A store whose file another process holds — a running host — reached
/// through the gateway at `remote`.
struct Held<'a> {
    remote: &'a Remote,
    store: String,
    path: PathBuf,
    reason: String,
}

/// The store's file, or the host that holds it (see [`Target`]). Unless
/// `create`, a store whose file does not exist is an error.
fn target<'a>(
    data_dir: &Path,
    store_id: &str,
    create: bool,
    remote: &'a Remote,
) -> anyhow::Result<Target<'a>> {
    let path = data_dir.join(format!("{store_id}.redb"));
    // An invalid id is left to `Store::open`, which says why.
    let plausible_id = !store_id.is_empty()
        && store_id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !create && plausible_id && !path.exists() {
        bail!(
            "store {store_id} does not exist in {} (no file {}); check --data-dir and --store \
             (`store append` creates a store; a running host's stores are in its [stores] \
             data_dir)",
            data_dir.display(),
            path.display()
        );
    }
    match Store::open(data_dir, store_id, Durability::Immediate) {
        Ok(store) => Ok(Target::File(store)),
        Err(StoreError::Locked { path, reason, .. }) => Ok(Target::Host(Held {
            remote,
            store: store_id.to_owned(),
            path,
            reason,
        })),
        Err(other) => Err(other.into()),
    }
}

impl Held<'_> {
    /// The "locked" error, ending with `then`.
    fn locked(&self, then: &str) -> anyhow::Error {
        anyhow!(
            "store {} is locked: database file {} is already open ({}); a running host holds \
             its stores' lock, and {then}",
            self.store,
            self.path.display(),
            self.reason
        )
    }

    /// `method path` on the gateway; a host that does not answer is the
    /// "locked" error, saying where it was looked for.
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<String> {
        self.remote
            .call(method, path, body)
            .map_err(|e| match e.downcast_ref::<Unreachable>() {
                Some(u) => self.locked(&format!(
                    "no host's API answers at {} ({}): give the address of the host that holds \
                     it with --admin or EXESDB_ADMIN_URL, or stop the host and retry",
                    u.base, u.cause
                )),
                None => e.context(format!("through the host at {}", self.remote.base())),
            })
    }

    /// `POST /v1/stores/{store}/streams/{stream}`.
    fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> anyhow::Result<AppendResult> {
        let payload = |p: &Payload| match p {
            Payload::Json(v) => v.clone(),
            // The command line makes JSON payloads only.
            Payload::Bytes { .. } => Value::Null,
        };
        let events: Vec<Value> = events
            .iter()
            .map(|e| {
                json!({
                    "type": e.event_type,
                    "data": payload(&e.data),
                    "metadata": payload(&e.metadata),
                    "id": e.event_id,
                })
            })
            .collect();
        let expected = match expected {
            ExpectedVersion::Exact(n) => json!(n),
            other => json!(other.to_string()),
        };
        let body = json!({ "expected": expected, "events": events });
        let text = self.call("POST", &self.stream_path(stream), Some(&body))?;
        serde_json::from_str(&text)
            .with_context(|| format!("store {}: unexpected append answer {text}", self.store))
    }

    /// `GET /v1/stores/{store}/streams/{stream}?from=&count=&direction=`:
    /// one page of a stream or selector.
    fn read(
        &self,
        stream: &str,
        from: u64,
        count: usize,
        direction: Direction,
    ) -> anyhow::Result<Vec<RecordedEvent>> {
        #[derive(Deserialize)]
        struct Page {
            events: Vec<WireEvent>,
        }
        let path = format!(
            "{}?from={from}&count={count}&direction={direction}",
            self.stream_path(stream)
        );
        let text = self.call("GET", &path, None)?;
        let page: Page = serde_json::from_str(&text)
            .with_context(|| format!("store {}: unexpected read answer", self.store))?;
        page.events.into_iter().map(WireEvent::into_event).collect()
    }

    /// `GET /v1/stores/{store}/streams`.
    fn streams(&self) -> anyhow::Result<Vec<StreamInfo>> {
        #[derive(Deserialize)]
        struct List {
            streams: Vec<StreamInfo>,
        }
        let text = self.call("GET", &format!("/v1/stores/{}/streams", self.store), None)?;
        let list: List = serde_json::from_str(&text)
            .with_context(|| format!("store {}: unexpected streams answer {text}", self.store))?;
        Ok(list.streams)
    }

    fn stream_path(&self, stream: &str) -> String {
        format!("/v1/stores/{}/streams/{}", self.store, path_segment(stream))
    }
}

/// `text` as one URL path segment: every byte but the unreserved ones (and
/// `$`, `*`) percent-encoded.
fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~$*".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An event as the gateway answers it (the `EventJson` form), read back.
#[derive(Deserialize)]
struct WireEvent {
    global_position: u64,
    stream_id: String,
    event_number: u64,
    event_type: String,
    event_id: uuid::Uuid,
    created: chrono::DateTime<chrono::Utc>,
    #[serde(default)]
    data: Option<Value>,
    #[serde(default)]
    data_content_type: Option<String>,
    #[serde(default)]
    data_base64: Option<String>,
    #[serde(default)]
    metadata: Option<Value>,
    #[serde(default)]
    metadata_content_type: Option<String>,
    #[serde(default)]
    metadata_base64: Option<String>,
}

impl WireEvent {
    fn into_event(self) -> anyhow::Result<RecordedEvent> {
        let payload = |json: Option<Value>, ct: Option<String>, b64: Option<String>| match (ct, b64)
        {
            (Some(content_type), Some(b64)) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .context("the host answered a payload that is not base64")?;
                anyhow::Ok(Payload::Bytes {
                    content_type,
                    bytes,
                })
            }
            // `"data": null` reads as `None`: JSON null either way.
            _ => Ok(Payload::Json(json.unwrap_or(Value::Null))),
        };
        Ok(RecordedEvent {
            data: payload(self.data, self.data_content_type, self.data_base64)?,
            metadata: payload(
                self.metadata,
                self.metadata_content_type,
                self.metadata_base64,
            )?,
            event_id: self.event_id,
            event_type: self.event_type,
            stream_id: self.stream_id,
            event_number: self.event_number,
            global_position: self.global_position,
            created: self.created,
        })
    }
}

/// The width of a table cell on a terminal, in columns: a wide character
/// (CJK, most emoji) takes two, a combining mark none (`unicode-width`; `{:<N}`
/// pads by characters, which misaligns such names).
fn cell_width(text: &str) -> usize {
    UnicodeWidthStr::width(text)
}

/// A left-aligned table cell: the text, padded with spaces to `.1` columns.
struct Cell<'a>(&'a str, usize);

impl std::fmt::Display for Cell<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pad = self.1.saturating_sub(cell_width(self.0));
        write!(f, "{}{:pad$}", self.0, "")
    }
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

/// Prints events one JSON object per line, paging through `read(from, n)`;
/// `key` gives the position a read starts from (the event number for a
/// stream, the global position for `$all` and the other selectors).
fn print_events(
    from: Option<u64>,
    count: Option<usize>,
    direction: Direction,
    key: fn(&RecordedEvent) -> u64,
    read: impl Fn(u64, usize) -> anyhow::Result<Vec<RecordedEvent>>,
) -> anyhow::Result<()> {
    let backward = direction == Direction::Backward;
    let mut from = from.unwrap_or(if backward { u64::MAX } else { 0 });
    let mut left = count.unwrap_or(usize::MAX);
    output(|out| {
        while left > 0 {
            let n = left.min(PAGE);
            let events = read(from, n)?;
            for e in &events {
                serde_json::to_writer(&mut *out, &EventJson::new(e)).map_err(io::Error::from)?;
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

/// Runs `write` on a buffered standard output; a reader that went away
/// (`| head`) is not an error.
fn output(write: impl FnOnce(&mut dyn Write) -> anyhow::Result<()>) -> anyhow::Result<()> {
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let written = write(&mut out).and_then(|()| Ok(out.flush()?));
    match written {
        Err(e) => match e.downcast_ref::<io::Error>() {
            Some(io) if io.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            Some(_) => Err(e.context("writing to standard output")),
            None => Err(e),
        },
        Ok(()) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_pad_to_terminal_columns() {
        assert_eq!(cell_width("orders-1"), 8);
        // Wide characters take two columns, a combining mark none.
        assert_eq!(cell_width("注文-1"), 6);
        assert_eq!(cell_width("e\u{301}"), 1);
        assert_eq!(Cell("NAME", 8).to_string(), "NAME    ");
        assert_eq!(Cell("注文", 6).to_string(), "注文  ");
        assert_eq!(Cell("e\u{301}", 3).to_string(), "e\u{301}  ");
        assert_eq!(
            Cell("longer-than-width", 4).to_string(),
            "longer-than-width"
        );
    }
}
