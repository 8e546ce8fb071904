//! The access log: one line per request, formatted straight into a per-thread buffer and
//! written in batches by a background thread.
//!
//! A request never waits on stdout, and a line costs no allocation and no formatting
//! machinery: on the proxy's hot path the log must cost far less than the request. Buffers are
//! handed to the writer when they fill up and by each worker every 100 ms; when the writer falls
//! behind, lines are dropped and counted rather than slowing requests down.

use std::cell::RefCell;
use std::io::Write;
use std::net::IpAddr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::{Duration, SystemTime};

use gateway_core::IpText;

/// The format of access log lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// `key=value` pairs after a timestamp, like the other log lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// One finished request: what its access log line and its span say.
#[derive(Debug)]
pub(crate) struct Entry<'a> {
    /// The resolved client IP.
    pub(crate) client_ip: IpAddr,
    /// The request method.
    pub(crate) method: &'a str,
    /// The request path as received.
    pub(crate) path: &'a str,
    /// The route's name (`_unmatched` when none matched), already escaped with [`escape`].
    pub(crate) route: &'static str,
    /// The route's upstream (empty when none), already escaped with [`escape`].
    pub(crate) upstream: &'static str,
    /// The response status.
    pub(crate) status: u16,
    /// Response body bytes sent.
    pub(crate) bytes: u64,
    /// Time from the request to the end of the response.
    pub(crate) duration: Duration,
    /// The request id, when one was assigned.
    pub(crate) request_id: Option<&'a str>,
    /// Whether the response body was sent completely.
    pub(crate) complete: bool,
}

const BUFFER_CAPACITY: usize = 64 << 10;
const FLUSH_AT: usize = BUFFER_CAPACITY - 1024;

enum Message {
    Lines(Vec<u8>),
    Sync(mpsc::Sender<()>),
}

struct Writer {
    format: Format,
    sender: SyncSender<Message>,
    dropped: AtomicU64,
}

static WRITER: OnceLock<Writer> = OnceLock::new();

thread_local! {
    static BUFFER: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(BUFFER_CAPACITY));
    /// The formatted `YYYY-MM-DDTHH:MM:SS` of the last second seen by this thread.
    static SECOND: RefCell<(u64, [u8; 19])> = const { RefCell::new((u64::MAX, [0; 19])) };
}

/// Starts the writer thread; lines logged before, or without it, are discarded. Returns false
/// when it was started already.
pub(crate) fn init(format: Format) -> bool {
    let (sender, receiver) = mpsc::sync_channel(64);
    let writer = Writer {
        format,
        sender,
        dropped: AtomicU64::new(0),
    };
    if WRITER.set(writer).is_err() {
        return false;
    }
    std::thread::Builder::new()
        .name("gateway-access-log".into())
        .spawn(move || write_loop(receiver))
        .is_ok()
}

fn write_loop(receiver: Receiver<Message>) {
    let stdout = std::io::stdout();
    for message in receiver {
        match message {
            Message::Lines(lines) => {
                let mut out = stdout.lock();
                let _ = out.write_all(&lines);
                let _ = out.flush();
            }
            Message::Sync(done) => {
                let _ = done.send(());
            }
        }
    }
}

/// Lines dropped because the writer fell behind.
pub(crate) fn dropped() -> u64 {
    WRITER
        .get()
        .map_or(0, |w| w.dropped.load(Ordering::Relaxed))
}

/// Logs one request.
pub(crate) fn log(entry: &Entry<'_>) {
    let Some(writer) = WRITER.get() else { return };
    BUFFER.with(|buffer| {
        let mut buffer = buffer.borrow_mut();
        match writer.format {
            Format::Text => format_text(&mut buffer, entry),
            Format::Json => format_json(&mut buffer, entry),
        }
        if buffer.len() >= FLUSH_AT {
            hand_over(writer, &mut buffer);
        }
    });
}

/// Hands this thread's buffered lines to the writer (each worker calls it periodically).
pub(crate) fn flush_thread() {
    let Some(writer) = WRITER.get() else { return };
    BUFFER.with(|buffer| hand_over(writer, &mut buffer.borrow_mut()));
}

/// Waits (up to `timeout`) until every line handed over so far is written.
pub(crate) fn sync(timeout: Duration) {
    let Some(writer) = WRITER.get() else { return };
    flush_thread();
    let (done, wait) = mpsc::channel();
    if writer.sender.send(Message::Sync(done)).is_ok() {
        let _ = wait.recv_timeout(timeout);
    }
}

fn hand_over(writer: &Writer, buffer: &mut Vec<u8>) {
    if buffer.is_empty() {
        return;
    }
    let lines = std::mem::replace(buffer, Vec::with_capacity(BUFFER_CAPACITY));
    if let Err(
        TrySendError::Full(Message::Lines(lines))
        | TrySendError::Disconnected(Message::Lines(lines)),
    ) = writer.sender.try_send(Message::Lines(lines))
    {
        let count = lines.iter().filter(|&&b| b == b'\n').count() as u64;
        writer.dropped.fetch_add(count, Ordering::Relaxed);
    }
}

fn push_timestamp(out: &mut Vec<u8>) {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = now.as_secs();
    SECOND.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != seconds {
            *cached = (seconds, format_second(seconds));
        }
        out.extend_from_slice(&cached.1);
    });
    out.push(b'.');
    let micros = now.subsec_micros();
    push_padded(out, micros, 6);
    out.push(b'Z');
}

/// `YYYY-MM-DDTHH:MM:SS` of a Unix time, UTC.
fn format_second(seconds: u64) -> [u8; 19] {
    let days = (seconds / 86_400) as i64;
    let of_day = seconds % 86_400;
    // Days since 1970-01-01 to a civil date (proleptic Gregorian), in 400-year eras.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    let mut out = Vec::with_capacity(19);
    push_padded(&mut out, year.clamp(0, 9999) as u32, 4);
    out.push(b'-');
    push_padded(&mut out, month as u32, 2);
    out.push(b'-');
    push_padded(&mut out, day as u32, 2);
    out.push(b'T');
    push_padded(&mut out, (of_day / 3600) as u32, 2);
    out.push(b':');
    push_padded(&mut out, (of_day / 60 % 60) as u32, 2);
    out.push(b':');
    push_padded(&mut out, (of_day % 60) as u32, 2);
    let mut fixed = [0u8; 19];
    fixed.copy_from_slice(&out);
    fixed
}

fn push_padded(out: &mut Vec<u8>, value: u32, width: usize) {
    let mut digits = itoa::Buffer::new();
    let text = digits.format(value);
    out.extend(std::iter::repeat_n(b'0', width.saturating_sub(text.len())));
    out.extend_from_slice(text.as_bytes());
}

fn push_number(out: &mut Vec<u8>, value: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// Escapes a name from the config once, so that lines can copy it as it is.
pub(crate) fn escape(text: &str) -> Box<str> {
    let mut out = Vec::with_capacity(text.len());
    push_escaped(&mut out, text);
    // Escaping keeps UTF-8 intact: it only replaces ASCII bytes with ASCII sequences.
    String::from_utf8(out).unwrap_or_default().into_boxed_str()
}

fn push_millis(out: &mut Vec<u8>, duration: Duration) {
    let micros = duration.as_micros().min(u128::from(u64::MAX)) as u64;
    push_number(out, micros / 1000);
    out.push(b'.');
    push_padded(out, (micros % 1000) as u32, 3);
}

/// Writes `text` so that it cannot end the line or the quoted value early: quotes,
/// backslashes and control characters are escaped (JSON rules, which text lines share).
fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\' || b == 0x7f
}

fn push_escaped(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    // Paths and ids almost never need escaping: one branch-free scan, then one copy.
    if !bytes.iter().fold(false, |any, &b| any | needs_escape(b)) {
        out.extend_from_slice(bytes);
        return;
    }
    let mut clean_from = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f | 0x7f => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&bytes[clean_from..i]);
                out.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 15)],
                ]);
                clean_from = i + 1;
                continue;
            }
            _ => continue,
        };
        // Runs of plain bytes are copied at once.
        out.extend_from_slice(&bytes[clean_from..i]);
        out.extend_from_slice(escape);
        clean_from = i + 1;
    }
    out.extend_from_slice(&bytes[clean_from..]);
}

fn format_text(out: &mut Vec<u8>, e: &Entry<'_>) {
    push_timestamp(out);
    out.extend_from_slice(b"  INFO access: client_ip=");
    out.extend_from_slice(IpText::new(e.client_ip).as_bytes());
    out.extend_from_slice(b" method=");
    // Methods are tokens: no quote, backslash or control character.
    out.extend_from_slice(e.method.as_bytes());
    out.extend_from_slice(b" path=\"");
    push_escaped(out, e.path);
    out.extend_from_slice(b"\" route=\"");
    out.extend_from_slice(e.route.as_bytes());
    out.extend_from_slice(b"\" upstream=\"");
    out.extend_from_slice(if e.upstream.is_empty() {
        b"-"
    } else {
        e.upstream.as_bytes()
    });
    out.extend_from_slice(b"\" status=");
    push_number(out, e.status);
    out.extend_from_slice(b" bytes=");
    push_number(out, e.bytes);
    out.extend_from_slice(b" duration_ms=");
    push_millis(out, e.duration);
    out.extend_from_slice(b" request_id=\"");
    push_escaped(out, e.request_id.unwrap_or("-"));
    out.extend_from_slice(if e.complete {
        b"\" complete=true\n"
    } else {
        b"\" complete=false\n"
    });
}

fn format_json(out: &mut Vec<u8>, e: &Entry<'_>) {
    out.extend_from_slice(b"{\"timestamp\":\"");
    push_timestamp(out);
    out.extend_from_slice(b"\",\"level\":\"INFO\",\"target\":\"access\",\"client_ip\":\"");
    out.extend_from_slice(IpText::new(e.client_ip).as_bytes());
    out.extend_from_slice(b"\",\"method\":\"");
    out.extend_from_slice(e.method.as_bytes());
    out.extend_from_slice(b"\",\"path\":\"");
    push_escaped(out, e.path);
    out.extend_from_slice(b"\",\"route\":\"");
    out.extend_from_slice(e.route.as_bytes());
    out.extend_from_slice(b"\",\"upstream\":");
    if e.upstream.is_empty() {
        out.extend_from_slice(b"null");
    } else {
        out.push(b'"');
        out.extend_from_slice(e.upstream.as_bytes());
        out.push(b'"');
    }
    out.extend_from_slice(b",\"status\":");
    push_number(out, e.status);
    out.extend_from_slice(b",\"bytes\":");
    push_number(out, e.bytes);
    out.extend_from_slice(b",\"duration_ms\":");
    push_millis(out, e.duration);
    out.extend_from_slice(b",\"request_id\":");
    match e.request_id {
        Some(id) => {
            out.push(b'"');
            push_escaped(out, id);
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(if e.complete {
        b",\"complete\":true}\n"
    } else {
        b",\"complete\":false}\n"
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry<'static> {
        Entry {
            client_ip: "203.0.113.9".parse().unwrap(),
            method: "GET",
            path: "/a\"b\n",
            route: "users",
            upstream: "",
            status: 502,
            bytes: 77,
            duration: Duration::from_micros(12_345),
            request_id: Some("abc"),
            complete: true,
        }
    }

    #[test]
    fn text_line_escapes_what_could_forge_a_line() {
        let mut out = Vec::new();
        format_text(&mut out, &entry());
        let line = String::from_utf8(out).unwrap();
        assert!(line.ends_with(
            " INFO access: client_ip=203.0.113.9 method=GET path=\"/a\\\"b\\n\" route=\"users\" upstream=\"-\" status=502 bytes=77 duration_ms=12.345 request_id=\"abc\" complete=true\n"
        ), "{line}");
        assert_eq!(line.matches('\n').count(), 1);
    }

    #[test]
    fn json_line_parses() {
        let mut out = Vec::new();
        format_json(&mut out, &entry());
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["path"], "/a\"b\n");
        assert_eq!(value["status"], 502);
        assert_eq!(value["duration_ms"], 12.345);
        assert_eq!(value["upstream"], serde_json::Value::Null);
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(&format_second(0), b"1970-01-01T00:00:00");
        assert_eq!(&format_second(951_782_400), b"2000-02-29T00:00:00");
        assert_eq!(&format_second(1_795_821_207), b"2026-11-27T23:13:27");
    }
}
