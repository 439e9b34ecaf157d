//! The data every workload sends, and the checks that it arrived whole and in order.
//!
//! Every document holds one root `ColumnDataSource` with two float64 columns, a time
//! series as a producer would stream it:
//! - `x`: the send time of the point's batch, in nanoseconds since the bench's clock
//!   started ([`now_ns`]). Every point of a batch carries the same time.
//! - `y`: the point's global index: 0, 1, 2, … over everything the producer sent.
//!
//! A receiver can therefore check, without any side channel, that nothing was lost
//! (`y` has no gap), reordered or duplicated (`y` never goes back), or corrupted (`y` is
//! consecutive inside a batch, `x` is constant inside a batch and never decreases), and it
//! computes the end-to-end latency as its own receive time minus `x` (the bench is one
//! process, so both times come from the same clock). Integers below 2^53 are exact in
//! float64.
//!
//! A batch travels either as numpy-style `ndarray` binary buffers or as JSON lists
//! (spec §6.3, §6.4); the stream is a PATCH-DOC `ColumnsStreamed` event (spec §7.3).

use std::fmt::Write as _;
use std::sync::OnceLock;

use bytes::Bytes;
use plotwire_protocol::codec::buffer_map;
use plotwire_protocol::event::{decode_doc_message, decode_patch, DocumentEvent};
use plotwire_protocol::frame::RawMessage;
use plotwire_protocol::message::MsgType;
use plotwire_protocol::{ArrayData, DType, Value};

use crate::error::{err, Context, Result};

/// The instant the bench's clock started.
static EPOCH: OnceLock<std::time::Instant> = OnceLock::new();

/// Starts the bench's clock (the first call wins; later calls do nothing).
pub fn start_clock() {
    EPOCH.get_or_init(std::time::Instant::now);
}

/// Nanoseconds since the bench's clock started.
pub fn now_ns() -> u64 {
    let epoch = EPOCH.get_or_init(std::time::Instant::now);
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// How a batch's columns are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// numpy-style `ndarray` float64 values in binary buffers.
    Binary,
    /// JSON lists of numbers.
    Json,
}

impl Encoding {
    /// A short name for tables: `binary` or `JSON`.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Binary => "binary",
            Encoding::Json => "JSON",
        }
    }
}

/// One batch of points: `points` consecutive indices from `first_index`, all sent at
/// `sent_ns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    /// The global index of the first point (`y[0]`).
    pub first_index: u64,
    /// How many points.
    pub points: usize,
    /// The send time (`x` of every point), from [`now_ns`].
    pub sent_ns: u64,
}

/// The content JSON and buffers of one message.
pub type Payload = (Bytes, Vec<(String, Bytes)>);

/// The data source of one session, and how its batches are written.
#[derive(Debug, Clone)]
pub struct Source {
    session_id: String,
    encoding: Encoding,
    rollover: Option<usize>,
}

impl Source {
    /// The source of session `session_id`.
    pub fn new(session_id: &str, encoding: Encoding, rollover: Option<usize>) -> Source {
        Source {
            session_id: session_id.to_owned(),
            encoding,
            rollover,
        }
    }

    /// The model id of the ColumnDataSource.
    fn cds_id(&self) -> String {
        format!("{}-cds", self.session_id)
    }

    /// PUSH-DOC content (and buffers): a document whose only root is the
    /// ColumnDataSource holding `initial` (a batch of 0 points makes empty columns).
    pub fn push_doc(&self, initial: &Batch) -> Payload {
        let (data, buffers) = self.data_map(initial);
        let content = format!(
            r#"{{"doc":{{"version":"3.9.2","title":"plotwire-bench","config":{{"type":"object","name":"DocumentConfig","id":"{sid}-config"}},"roots":[{{"type":"object","name":"ColumnDataSource","id":"{cds}","attributes":{{"data":{data}}}}}]}}}}"#,
            sid = self.session_id,
            cds = self.cds_id(),
        );
        (Bytes::from(content), buffers)
    }

    /// PATCH-DOC content (and buffers) streaming `batch`, with the source's rollover.
    pub fn stream(&self, batch: &Batch) -> Payload {
        let (data, buffers) = self.data_map(batch);
        let rollover = self
            .rollover
            .map_or_else(|| "null".to_owned(), |r| r.to_string());
        let content = format!(
            r#"{{"events":[{{"kind":"ColumnsStreamed","model":{{"id":"{}"}},"attr":"data","data":{data},"rollover":{rollover}}}]}}"#,
            self.cds_id()
        );
        (Bytes::from(content), buffers)
    }

    /// The `data` map of `batch` and its buffers.
    fn data_map(&self, batch: &Batch) -> (String, Vec<(String, Bytes)>) {
        let x = batch.sent_ns;
        let y0 = batch.first_index;
        match self.encoding {
            Encoding::Binary => {
                let data = format!(
                    r#"{{"type":"map","entries":[["x",{}],["y",{}]]}}"#,
                    ndarray_json("0", batch.points),
                    ndarray_json("1", batch.points)
                );
                let xs = f64_buffer(batch.points, |_| x as f64);
                let ys = f64_buffer(batch.points, |k| (y0 + k as u64) as f64);
                (data, vec![("0".to_owned(), xs), ("1".to_owned(), ys)])
            }
            Encoding::Json => {
                // About 14 bytes per x and up to 10 per y.
                let mut data = String::with_capacity(64 + batch.points * 26);
                data.push_str(r#"{"type":"map","entries":[["x",["#);
                for k in 0..batch.points {
                    if k > 0 {
                        data.push(',');
                    }
                    let _ = write!(data, "{x}.0");
                }
                data.push_str(r#"]],["y",["#);
                for k in 0..batch.points {
                    if k > 0 {
                        data.push(',');
                    }
                    let _ = write!(data, "{}.0", y0 + k as u64);
                }
                data.push_str("]]]}");
                (data, Vec::new())
            }
        }
    }
}

/// The content JSON of an ndarray float64 value of `len` items in buffer `buffer_id`.
fn ndarray_json(buffer_id: &str, len: usize) -> String {
    format!(
        r#"{{"type":"ndarray","array":{{"type":"bytes","data":{{"id":"{buffer_id}"}}}},"shape":[{len}],"dtype":"float64","order":"little"}}"#
    )
}

/// Little-endian float64 bytes of `f(0..len)`.
fn f64_buffer(len: usize, f: impl Fn(usize) -> f64) -> Bytes {
    let mut out = Vec::with_capacity(len * 8);
    for i in 0..len {
        out.extend_from_slice(&f(i).to_le_bytes());
    }
    Bytes::from(out)
}

/// A received column, read as float64 without copying it.
#[derive(Debug, Clone, Copy)]
pub enum Column<'a> {
    /// Binary elements of a numeric dtype.
    Binary(DType, &'a [u8]),
    /// A JSON list.
    List(&'a [Value]),
}

impl<'a> Column<'a> {
    /// Views a decoded column value (ndarray, typed array or list).
    ///
    /// # Errors
    /// Any other value.
    pub fn of(value: &'a Value) -> Result<Column<'a>> {
        match value {
            Value::Array(array) => match &array.data {
                ArrayData::Binary(bytes) if array.dtype != DType::Object => {
                    Ok(Column::Binary(array.dtype, bytes))
                }
                ArrayData::Binary(_) => Err(err("a binary column of dtype object")),
                ArrayData::List(items) => Ok(Column::List(items)),
            },
            Value::List(items) => Ok(Column::List(items)),
            other => Err(err(format!("a column that is not an array: {other:?}"))),
        }
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        match self {
            Column::Binary(dtype, bytes) => bytes.len() / dtype.size().max(1),
            Column::List(items) => items.len(),
        }
    }

    /// Element `i` as float64, if it is a number.
    pub fn get(&self, i: usize) -> Option<f64> {
        match self {
            Column::Binary(dtype, bytes) => dtype.read_f64(bytes, i),
            Column::List(items) => match items.get(i)? {
                Value::Float(f) => Some(*f),
                Value::Int(n) => Some(*n as f64),
                _ => None,
            },
        }
    }
}

/// The `x` and `y` columns among `data`'s entries.
fn xy<'a>(entries: impl Iterator<Item = (&'a str, &'a Value)>) -> Result<(Column<'a>, Column<'a>)> {
    let (mut x, mut y) = (None, None);
    for (name, value) in entries {
        match name {
            "x" => x = Some(Column::of(value).context(|| "column x")?),
            "y" => y = Some(Column::of(value).context(|| "column y")?),
            other => return Err(err(format!("an unexpected column {other:?}"))),
        }
    }
    Ok((x.context(|| "no column x")?, y.context(|| "no column y")?))
}

/// Checks one received batch on its own: equal lengths, `x` constant, `y` consecutive
/// integers. Returns the batch.
///
/// # Errors
/// The first inconsistency (the batch is corrupted).
pub fn check_batch(x: &Column<'_>, y: &Column<'_>) -> Result<Batch> {
    let points = y.len();
    if x.len() != points {
        return Err(err(format!(
            "columns of unequal length: x {}, y {points}",
            x.len()
        )));
    }
    if points == 0 {
        return Err(err("an empty batch"));
    }
    let x0 = x.get(0).context(|| "x[0] is not a number")?;
    let y0 = y.get(0).context(|| "y[0] is not a number")?;
    let sent_ns = exact_u64(x0).context(|| format!("x[0] = {x0} is not a send time"))?;
    let first_index = exact_u64(y0).context(|| format!("y[0] = {y0} is not an index"))?;
    for k in 1..points {
        if x.get(k) != Some(x0) {
            return Err(err(format!(
                "x[{k}] = {:?} differs from x[0] = {x0} inside one batch",
                x.get(k)
            )));
        }
        if y.get(k) != Some(y0 + k as f64) {
            return Err(err(format!(
                "y[{k}] = {:?}, expected {}",
                y.get(k),
                y0 + k as f64
            )));
        }
    }
    Ok(Batch {
        first_index,
        points,
        sent_ns,
    })
}

/// A float64 that holds a non-negative integer below 2^53, as u64.
fn exact_u64(v: f64) -> Option<u64> {
    // Below 2^53 and integral: the conversion is exact.
    (v >= 0.0 && v.fract() == 0.0 && v < 9.0e15).then_some(v as u64)
}

/// Follows the batches one receiver gets, in arrival order, and counts what is wrong.
#[derive(Debug, Default, Clone)]
pub struct Tracker {
    /// The index the next batch must start at.
    pub next_index: u64,
    /// The send time of the last batch.
    pub last_sent_ns: u64,
    /// Batches received in order.
    pub batches: u64,
    /// Points received in order.
    pub points: u64,
    /// Points skipped over (a later batch arrived first: data lost).
    pub lost_points: u64,
    /// Batches that went back (reordered or duplicated).
    pub reordered: u64,
    /// Batches whose content was inconsistent.
    pub corrupted: u64,
    /// The first problem, described.
    pub first_problem: Option<String>,
}

impl Tracker {
    /// A tracker expecting the first batch to start at `next_index`.
    pub fn starting_at(next_index: u64) -> Tracker {
        Tracker {
            next_index,
            ..Tracker::default()
        }
    }

    /// Whether nothing was lost, reordered or corrupted.
    pub fn is_clean(&self) -> bool {
        self.lost_points == 0 && self.reordered == 0 && self.corrupted == 0
    }

    /// Notes a problem (keeps the first).
    fn problem(&mut self, what: String) {
        if self.first_problem.is_none() {
            self.first_problem = Some(what);
        }
    }

    /// Takes one received batch; returns its send time when it was whole and in order.
    pub fn batch(&mut self, x: &Column<'_>, y: &Column<'_>) -> Option<u64> {
        let batch = match check_batch(x, y) {
            Ok(b) => b,
            Err(e) => {
                self.corrupted += 1;
                self.problem(format!("batch {} corrupted: {e}", self.batches));
                return None;
            }
        };
        if batch.first_index < self.next_index {
            self.reordered += 1;
            self.problem(format!(
                "a batch starting at index {} after index {} (reordered or duplicated)",
                batch.first_index, self.next_index
            ));
            return None;
        }
        if batch.first_index > self.next_index {
            self.lost_points += batch.first_index - self.next_index;
            self.problem(format!(
                "points {}..{} lost (the next batch started at {})",
                self.next_index, batch.first_index, batch.first_index
            ));
        }
        if batch.sent_ns < self.last_sent_ns {
            self.reordered += 1;
            self.problem(format!(
                "a batch sent at {} ns after one sent at {} ns",
                batch.sent_ns, self.last_sent_ns
            ));
        }
        self.next_index = batch.first_index + batch.points as u64;
        self.last_sent_ns = batch.sent_ns;
        self.batches += 1;
        self.points += batch.points as u64;
        Some(batch.sent_ns)
    }
}

/// What one relayed message held, for a viewer.
#[derive(Debug)]
pub enum Relay {
    /// A stream: its `x` and `y` (to check with a [`Tracker`]).
    Stream,
    /// The producer's end marker: TitleChanged to `end <n>` after `n` batches.
    End(u64),
    /// Anything else (ignored).
    Other,
}

/// The title the producer sets after its last batch, `end <n>`.
pub fn end_title(batches: u64) -> String {
    format!("end {batches}")
}

/// PATCH-DOC content of the end marker after `batches` batches.
pub fn end_marker(batches: u64) -> Bytes {
    Bytes::from(format!(
        r#"{{"events":[{{"kind":"TitleChanged","title":"{}"}}]}}"#,
        end_title(batches)
    ))
}

/// The layout of the last relayed stream a viewer decoded: when the next relay's content
/// is byte for byte the same (only the buffer payloads differ, as when a server numbers
/// buffers per message), its columns are read straight from the buffers. This keeps the
/// viewers' CPU low with 1000 of them; every point is still checked.
#[derive(Debug, Default)]
pub struct RelayCache {
    content: Bytes,
    /// Buffer id, dtype and byte length of `x`, then of `y`.
    columns: Option<[(String, DType, usize); 2]>,
}

impl RelayCache {
    /// The columns of `message` if its content is the cached one and its buffers fit.
    fn columns<'a>(&self, message: &'a RawMessage) -> Option<(Column<'a>, Column<'a>)> {
        let columns = self.columns.as_ref()?;
        if message.content != self.content {
            return None;
        }
        let find = |(id, dtype, len): &(String, DType, usize)| {
            message
                .buffers
                .iter()
                .find(|(bid, bytes)| bid == id && bytes.len() == *len)
                .map(|(_, bytes)| Column::Binary(*dtype, bytes))
        };
        Some((find(&columns[0])?, find(&columns[1])?))
    }

    /// Learns the layout of a decoded stream whose columns are `message`'s buffers
    /// (found by address: decoding shares the buffers, it does not copy them).
    fn learn(&mut self, message: &RawMessage, x: &Column<'_>, y: &Column<'_>) {
        let locate = |column: &Column<'_>| match column {
            Column::Binary(dtype, bytes) => message
                .buffers
                .iter()
                .find(|(_, b)| b.as_ptr() == bytes.as_ptr() && b.len() == bytes.len())
                .map(|(id, b)| (id.clone(), *dtype, b.len())),
            Column::List(_) => None,
        };
        self.columns = locate(x).zip(locate(y)).map(|(x, y)| [x, y]);
        self.content = message.content.clone();
    }
}

/// Reads a relayed message: feeds every stream in it to `tracker` (recording latency
/// through `on_sent`) and reports an end marker.
///
/// # Errors
/// A PATCH-DOC that does not decode.
pub fn read_relay(
    message: &RawMessage,
    tracker: &mut Tracker,
    cache: &mut RelayCache,
    mut on_sent: impl FnMut(u64),
) -> Result<Relay> {
    if message.kind() != Some(MsgType::PatchDoc) {
        return Ok(Relay::Other);
    }
    if let Some((x, y)) = cache.columns(message) {
        if let Some(sent) = tracker.batch(&x, &y) {
            on_sent(sent);
        }
        return Ok(Relay::Stream);
    }
    let buffers = buffer_map(message.buffers.clone());
    let events = decode_patch(&message.content, &buffers).context(|| "decoding a relay")?;
    let single = events.len() == 1;
    let mut relay = Relay::Other;
    for event in &events {
        match event {
            DocumentEvent::ColumnsStreamed { data, .. } => {
                match xy(data.iter().map(|(k, v)| (k.as_str(), v))) {
                    Ok((x, y)) => {
                        if let Some(sent) = tracker.batch(&x, &y) {
                            on_sent(sent);
                            if single {
                                cache.learn(message, &x, &y);
                            }
                        }
                    }
                    Err(e) => {
                        tracker.corrupted += 1;
                        tracker.problem(format!("a relayed stream: {e}"));
                    }
                }
                relay = Relay::Stream;
            }
            DocumentEvent::TitleChanged { title } => {
                if let Some(n) = title.strip_prefix("end ").and_then(|n| n.parse().ok()) {
                    relay = Relay::End(n);
                }
            }
            _ => {}
        }
    }
    Ok(relay)
}

/// Checks the ColumnDataSource of a pulled document: exactly `len` points with indices
/// `first..first+len`, in batches of `batch_points` (constant `x` inside a batch,
/// never decreasing).
///
/// # Errors
/// The reply is not a PULL-DOC-REPLY, does not decode, or its data is not as expected.
pub fn check_pulled(reply: &RawMessage, first: u64, len: usize, batch_points: usize) -> Result<()> {
    with_pulled(reply, |x, y| check_snapshot(x, y, first, len, batch_points))
}

/// Checks the ColumnDataSource of a pulled document whose extent is not known in
/// advance (a viewer that attaches mid-stream, after rollover): its `y` must be
/// consecutive indices from whatever the first is, in batches of `batch_points`.
/// Returns the index the next relayed batch must start at (0 for empty columns).
///
/// # Errors
/// As [`check_pulled`].
pub fn check_pulled_any(reply: &RawMessage, batch_points: usize) -> Result<u64> {
    with_pulled(reply, |x, y| {
        let len = y.len();
        let first = match y.get(0) {
            None if len == 0 => 0,
            None => return Err(err("y[0] is not a number")),
            Some(y0) => exact_u64(y0).context(|| format!("y[0] = {y0} is not an index"))?,
        };
        check_snapshot(x, y, first, len, batch_points)?;
        Ok(first + len as u64)
    })
}

/// Decodes a PULL-DOC-REPLY and hands its ColumnDataSource's `x` and `y` to `check`.
fn with_pulled<T>(
    reply: &RawMessage,
    check: impl FnOnce(&Column<'_>, &Column<'_>) -> Result<T>,
) -> Result<T> {
    if reply.kind() != Some(MsgType::PullDocReply) {
        return Err(err(format!(
            "PULL-DOC-REQ answered by {}",
            reply.header.msgtype
        )));
    }
    let buffers = buffer_map(reply.buffers.clone());
    let doc = decode_doc_message(&reply.content, &buffers).context(|| "decoding the document")?;
    let cds = doc
        .roots
        .iter()
        .find_map(|root| match root {
            Value::Model(m) if m.name == "ColumnDataSource" => Some(m),
            _ => None,
        })
        .context(|| "the document has no ColumnDataSource root")?;
    let data = cds
        .attributes
        .iter()
        .find(|(k, _)| k == "data")
        .map(|(_, v)| v)
        .context(|| "the ColumnDataSource has no data")?;
    let Value::Map(entries) = data else {
        return Err(err("data is not a map"));
    };
    let named = entries.iter().map(|(k, v)| match k {
        Value::Str(name) => (name.as_str(), v),
        _ => ("", v),
    });
    let (x, y) = xy(named)?;
    check(&x, &y)
}

/// Checks whole columns: `len` points, `y` = `first..first+len`, `x` constant inside each
/// batch of `batch_points` indices and never decreasing.
///
/// # Errors
/// The first inconsistency.
pub fn check_snapshot(
    x: &Column<'_>,
    y: &Column<'_>,
    first: u64,
    len: usize,
    batch_points: usize,
) -> Result<()> {
    if x.len() != len || y.len() != len {
        return Err(err(format!(
            "the columns hold {} and {} points, expected {len}",
            x.len(),
            y.len()
        )));
    }
    let batch_points = batch_points.max(1) as u64;
    let mut last_x = 0.0;
    for k in 0..len {
        let index = first + k as u64;
        let (Some(xv), Some(yv)) = (x.get(k), y.get(k)) else {
            return Err(err(format!("point {k} is not a number")));
        };
        if yv != index as f64 {
            return Err(err(format!("y[{k}] = {yv}, expected {index}")));
        }
        if k > 0 {
            let same_batch = index / batch_points == (index - 1) / batch_points;
            if (same_batch && xv != last_x) || xv < last_x {
                return Err(err(format!("x[{k}] = {xv} after x[{}] = {last_x}", k - 1)));
            }
        }
        last_x = xv;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(values: &[f64]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn tracker_accepts_consecutive_batches_and_flags_gaps_and_reorders() {
        let mut t = Tracker::starting_at(0);
        let (x, y) = (column(&[5.0, 5.0]), column(&[0.0, 1.0]));
        assert_eq!(
            t.batch(
                &Column::Binary(DType::F64, &x),
                &Column::Binary(DType::F64, &y)
            ),
            Some(5)
        );
        let (x, y) = (column(&[6.0, 6.0]), column(&[4.0, 5.0]));
        assert_eq!(
            t.batch(
                &Column::Binary(DType::F64, &x),
                &Column::Binary(DType::F64, &y)
            ),
            Some(6)
        );
        assert_eq!(t.lost_points, 2);
        let (x, y) = (column(&[7.0, 7.0]), column(&[4.0, 5.0]));
        assert_eq!(
            t.batch(
                &Column::Binary(DType::F64, &x),
                &Column::Binary(DType::F64, &y)
            ),
            None
        );
        assert_eq!(t.reordered, 1);
        let (x, y) = (column(&[8.0, 9.0]), column(&[6.0, 7.0]));
        assert_eq!(
            t.batch(
                &Column::Binary(DType::F64, &x),
                &Column::Binary(DType::F64, &y)
            ),
            None
        );
        assert_eq!(t.corrupted, 1);
        assert!(!t.is_clean());
    }

    #[test]
    fn json_and_binary_streams_decode_to_the_same_batch() {
        let batch = Batch {
            first_index: 10,
            points: 3,
            sent_ns: 123_456_789,
        };
        for encoding in [Encoding::Binary, Encoding::Json] {
            let source = Source::new("s", encoding, Some(100));
            let (content, buffers) = source.stream(&batch);
            let map = buffer_map(buffers);
            let events = decode_patch(&content, &map).expect("a valid patch");
            let DocumentEvent::ColumnsStreamed { data, rollover, .. } = &events[0] else {
                panic!("not a stream");
            };
            assert_eq!(*rollover, Some(100));
            let (x, y) = xy(data.iter().map(|(k, v)| (k.as_str(), v))).expect("x and y");
            assert_eq!(check_batch(&x, &y).expect("a whole batch"), batch);
        }
    }

    #[test]
    fn a_relay_with_the_same_content_is_read_from_its_buffers() {
        use plotwire_protocol::message::Header;
        let source = Source::new("s", Encoding::Binary, None);
        let message = |first_index| {
            let (content, buffers) = source.stream(&Batch {
                first_index,
                points: 4,
                sent_ns: 7,
            });
            RawMessage {
                header: Header {
                    msgid: "m".to_owned(),
                    msgtype: "PATCH-DOC".to_owned(),
                    reqid: None,
                    num_buffers: buffers.len(),
                },
                content,
                buffers,
            }
        };
        let (mut tracker, mut cache) = (Tracker::starting_at(0), RelayCache::default());
        let first = message(0);
        assert!(cache.columns(&first).is_none());
        read_relay(&first, &mut tracker, &mut cache, |_| {}).expect("decodes");
        let second = message(4);
        assert!(cache.columns(&second).is_some());
        read_relay(&second, &mut tracker, &mut cache, |_| {}).expect("decodes");
        // A gap is still seen on the cached path.
        read_relay(&message(12), &mut tracker, &mut cache, |_| {}).expect("decodes");
        assert_eq!((tracker.batches, tracker.lost_points), (3, 4));
    }

    #[test]
    fn snapshots_check_batches_and_indices() {
        let x = column(&[1.0, 1.0, 2.0, 2.0]);
        let y = column(&[4.0, 5.0, 6.0, 7.0]);
        let (x, y) = (
            Column::Binary(DType::F64, &x),
            Column::Binary(DType::F64, &y),
        );
        assert!(check_snapshot(&x, &y, 4, 4, 2).is_ok());
        assert!(check_snapshot(&x, &y, 4, 4, 4).is_err());
        assert!(check_snapshot(&x, &y, 3, 4, 2).is_err());
        assert!(check_snapshot(&x, &y, 4, 5, 2).is_err());
    }
}
