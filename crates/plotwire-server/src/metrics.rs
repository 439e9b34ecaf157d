//! The registry of plotwire's Prometheus metrics and its text encoding (`GET /metrics`,
//! `docs/metrics.md`).
//!
//! Every [`crate::app`] has its own [`Metrics`], so two servers in one process count
//! apart. The hot path only touches atomics: a connection resolves its labelled counters
//! once when it opens ([`Metrics::connection`]), and latencies go to [`Latency`], a
//! histogram of atomic buckets (the crate's own histogram takes a lock per observation).
//! Sessions, views and the store's size are read when scraped.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{
    EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::{Registry, Unit};

/// The text formats `/metrics` answers in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 (what Prometheus asks for first): counters are families without
    /// the `_total` of their samples, with `# UNIT` lines and a final `# EOF`.
    OpenMetrics,
    /// The Prometheus text format 0.0.4, for every other scraper: counter families are
    /// named as their `_total` samples, no `# UNIT`, no `# EOF`.
    Prometheus,
}

impl Format {
    /// The format an `Accept` header asks for: OpenMetrics if it names it, otherwise the
    /// Prometheus text format.
    pub fn for_accept(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Prometheus,
        }
    }

    /// The format's content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// The upper bounds, in seconds, of every latency histogram's buckets: 10 µs to 10 s in
/// 1-2.5-5 steps (a fan-out to a few viewers takes microseconds; a commit on a slow
/// disk, tens of milliseconds), then `+Inf`.
pub const LATENCY_BUCKETS: [f64; 19] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// What kind of peer a connection serves (the `kind` label).
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum ConnKind {
    /// BokehJS in a browser, on a websocket.
    Browser,
    /// A producer such as `bokeh.client`, on a websocket.
    BokehClient,
    /// A REST request (`/api/v1`), while it is answered.
    Rest,
    /// A server-sent event stream of a document's events.
    Sse,
}

impl EncodeLabelValue for ConnKind {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(match self {
            ConnKind::Browser => "browser",
            ConnKind::BokehClient => "bokeh_client",
            ConnKind::Rest => "rest",
            ConnKind::Sse => "sse",
        })
    }
}

impl From<crate::session::PeerKind> for ConnKind {
    fn from(kind: crate::session::PeerKind) -> ConnKind {
        match kind {
            crate::session::PeerKind::Browser => ConnKind::Browser,
            crate::session::PeerKind::Producer => ConnKind::BokehClient,
        }
    }
}

/// The `kind` label of connection metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: ConnKind,
}

/// What kind of session a live session is (the `kind` label of `plotwire_sessions`).
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
enum SessionKind {
    /// A Bokeh session (an app path).
    Bokeh,
    /// A published document.
    Published,
}

impl EncodeLabelValue for SessionKind {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(match self {
            SessionKind::Bokeh => "bokeh",
            SessionKind::Published => "published",
        })
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SessionLabel {
    kind: SessionKind,
}

/// A latency histogram over [`LATENCY_BUCKETS`] whose observations are three relaxed
/// atomic adds: no lock, no allocation. Clones share the counts.
#[derive(Debug, Clone, Default)]
pub struct Latency(Arc<LatencyCounts>);

#[derive(Debug, Default)]
struct LatencyCounts {
    /// Observations per bucket (not cumulative); the last is past every bound.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

impl Latency {
    /// Counts one observation of `took`.
    pub fn observe(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(LATENCY_BUCKETS.len());
        let c = &self.0;
        c.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        c.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        c.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.0.count.load(Ordering::Relaxed)
    }
}

impl TypedMetric for Latency {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Latency {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let c = &self.0;
        let mut buckets = [(0.0, 0); LATENCY_BUCKETS.len() + 1];
        for (i, slot) in buckets.iter_mut().enumerate() {
            // The encoder writes f64::MAX as `+Inf`.
            let bound = LATENCY_BUCKETS.get(i).copied().unwrap_or(f64::MAX);
            *slot = (bound, c.buckets[i].load(Ordering::Relaxed));
        }
        // The count is the buckets' total, so that `+Inf` and `_count` always agree.
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = Duration::from_nanos(c.sum_nanos.load(Ordering::Relaxed)).as_secs_f64();
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// The metrics of one connection's kind, resolved when it opens so that counting a
/// message touches atomics only. Dropping it counts the connection closed.
#[derive(Debug)]
pub struct ConnMeters {
    open: Gauge,
    /// Messages received (websocket: whole Bokeh messages).
    pub messages_in: Counter,
    /// Messages sent (websocket: whole Bokeh messages; SSE: events).
    pub messages_out: Counter,
    /// Bytes received (websocket frame payloads; REST request bodies).
    pub bytes_in: Counter,
    /// Bytes sent (websocket frame payloads; REST response bodies of known length).
    pub bytes_out: Counter,
}

impl Drop for ConnMeters {
    fn drop(&mut self) {
        self.open.dec();
    }
}

/// What `/metrics` reads from the server when scraped.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scraped {
    /// Live Bokeh sessions.
    pub bokeh_sessions: usize,
    /// Published documents.
    pub published: usize,
    /// Views of published documents.
    pub views: usize,
    /// Bytes of the store's files (database and WAL), if there is a store.
    pub store_bytes: Option<u64>,
}

/// The metrics of one plotwire server.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    connections: Family<KindLabel, Gauge>,
    connections_opened: Family<KindLabel, Counter>,
    messages_in: Family<KindLabel, Counter>,
    messages_out: Family<KindLabel, Counter>,
    bytes_in: Family<KindLabel, Counter>,
    bytes_out: Family<KindLabel, Counter>,
    /// Rows appended to data sources: REST and in-process streams, and
    /// `ColumnsStreamed` events of Bokeh sessions' PATCH-DOCs.
    pub points_ingested: Counter,
    /// Viewers closed (1013) because their outbox overflowed.
    pub slow_viewer_closes: Counter,
    /// Time an owner spends on one change request (PUSH-DOC, PATCH-DOC, a REST write),
    /// its fan-out included.
    pub apply: Latency,
    /// From the first to the last outbox offer of one applied change's fan-out,
    /// encoding included.
    pub fan_out: Latency,
    /// From an entry handed to the store to the store having it (group commit).
    pub store_commit: Latency,
    sessions: Family<SessionLabel, Gauge>,
    views: Gauge,
    store_bytes: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A registry of every plotwire metric, all at zero.
    pub fn new() -> Metrics {
        let mut m = Metrics {
            registry: Registry::with_prefix("plotwire"),
            connections: Family::default(),
            connections_opened: Family::default(),
            messages_in: Family::default(),
            messages_out: Family::default(),
            bytes_in: Family::default(),
            bytes_out: Family::default(),
            points_ingested: Counter::default(),
            slow_viewer_closes: Counter::default(),
            apply: Latency::default(),
            fan_out: Latency::default(),
            store_commit: Latency::default(),
            sessions: Family::default(),
            views: Gauge::default(),
            store_bytes: Gauge::default(),
        };
        // Every label value exists from the start, so that a scrape lists each at 0.
        for kind in [
            ConnKind::Browser,
            ConnKind::BokehClient,
            ConnKind::Rest,
            ConnKind::Sse,
        ] {
            let l = KindLabel { kind };
            drop(m.connections.get_or_create(&l));
            for family in [
                &m.connections_opened,
                &m.messages_in,
                &m.messages_out,
                &m.bytes_in,
                &m.bytes_out,
            ] {
                drop(family.get_or_create(&l));
            }
        }
        for kind in [SessionKind::Bokeh, SessionKind::Published] {
            drop(m.sessions.get_or_create(&SessionLabel { kind }));
        }
        let r = &mut m.registry;
        r.register(
            "connections",
            "Open connections: websockets by peer, REST requests being answered, SSE streams",
            m.connections.clone(),
        );
        r.register(
            "connections_opened",
            "Connections opened since start, by kind",
            m.connections_opened.clone(),
        );
        r.register(
            "messages_received",
            "Messages received: whole Bokeh messages on websockets",
            m.messages_in.clone(),
        );
        r.register(
            "messages_sent",
            "Messages sent: whole Bokeh messages on websockets, events on SSE streams",
            m.messages_out.clone(),
        );
        r.register_with_unit(
            "received",
            "Bytes received: websocket frame payloads, REST request bodies (Content-Length)",
            Unit::Bytes,
            m.bytes_in.clone(),
        );
        r.register_with_unit(
            "sent",
            "Bytes sent: websocket frame payloads, REST response bodies of known length",
            Unit::Bytes,
            m.bytes_out.clone(),
        );
        r.register(
            "points_ingested",
            "Rows appended to data sources (REST and in-process streams, Bokeh ColumnsStreamed)",
            m.points_ingested.clone(),
        );
        r.register(
            "slow_viewer_closes",
            "Viewers closed with 1013 because their outbox overflowed",
            m.slow_viewer_closes.clone(),
        );
        r.register_with_unit(
            "apply",
            "Time a session owner spends on one change request, its fan-out included",
            Unit::Seconds,
            m.apply.clone(),
        );
        r.register_with_unit(
            "fan_out",
            "Time from an applied change's first outbox offer to its last, encoding included",
            Unit::Seconds,
            m.fan_out.clone(),
        );
        r.register_with_unit(
            "store_commit",
            "Time from an entry handed to the store to the store having it",
            Unit::Seconds,
            m.store_commit.clone(),
        );
        r.register(
            "sessions",
            "Live sessions: Bokeh sessions and published documents",
            m.sessions.clone(),
        );
        r.register(
            "views",
            "Views of published documents (one per browser session, kept for a reconnect)",
            m.views.clone(),
        );
        r.register_with_unit(
            "store_size",
            "Bytes of the store's files (database and write-ahead log)",
            Unit::Bytes,
            m.store_bytes.clone(),
        );
        m
    }

    /// Counts a connection of `kind` opened, and returns its meters; dropping them counts
    /// it closed.
    pub fn connection(&self, kind: ConnKind) -> ConnMeters {
        let l = KindLabel { kind };
        self.connections_opened.get_or_create(&l).inc();
        let open = self.connections.get_or_create(&l).clone();
        open.inc();
        ConnMeters {
            open,
            messages_in: self.messages_in.get_or_create(&l).clone(),
            messages_out: self.messages_out.get_or_create(&l).clone(),
            bytes_in: self.bytes_in.get_or_create(&l).clone(),
            bytes_out: self.bytes_out.get_or_create(&l).clone(),
        }
    }

    /// The text of every metric in `format`, with the values read at scrape time set
    /// from `scraped`.
    pub fn encode(&self, scraped: Scraped, format: Format) -> Result<String, std::fmt::Error> {
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        let session = |kind| self.sessions.get_or_create(&SessionLabel { kind }).clone();
        session(SessionKind::Bokeh).set(gauge(scraped.bokeh_sessions));
        session(SessionKind::Published).set(gauge(scraped.published));
        self.views.set(gauge(scraped.views));
        self.store_bytes.set(
            scraped
                .store_bytes
                .map_or(0, |b| i64::try_from(b).unwrap_or(i64::MAX)),
        );
        let mut text = String::with_capacity(8 * 1024);
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(match format {
            Format::OpenMetrics => text,
            Format::Prometheus => prometheus_text(&text),
        })
    }
}

/// The Prometheus 0.0.4 text of OpenMetrics `text` as prometheus-client writes it (each
/// family's HELP, then TYPE, then UNIT, then samples): counter families take their
/// samples' `_total` name, and the `# UNIT` and `# EOF` lines go.
fn prometheus_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut help: Option<(&str, &str)> = None;
    for line in text.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = Some(rest.split_once(' ').unwrap_or((rest, "")));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            let total = if kind == "counter" { "_total" } else { "" };
            if let Some((_, doc)) = help.take() {
                let _ = writeln!(out, "# HELP {name}{total} {doc}");
            }
            let _ = writeln!(out, "# TYPE {name}{total} {kind}");
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_buckets_are_cumulative_in_the_text() {
        let m = Metrics::new();
        m.apply.observe(Duration::from_micros(5));
        m.apply.observe(Duration::from_millis(3));
        m.apply.observe(Duration::from_secs(60));
        let text = m.encode(Scraped::default(), Format::OpenMetrics).unwrap();
        assert!(text.contains("plotwire_apply_seconds_count 3\n"), "{text}");
        assert!(
            text.contains("plotwire_apply_seconds_bucket{le=\"0.005\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("plotwire_apply_seconds_bucket{le=\"+Inf\"} 3\n"),
            "{text}"
        );
    }

    #[test]
    fn a_connection_counts_open_until_its_meters_drop() {
        let m = Metrics::new();
        let meters = m.connection(ConnKind::Browser);
        meters.messages_out.inc_by(2);
        let open = m.encode(Scraped::default(), Format::OpenMetrics).unwrap();
        assert!(
            open.contains("plotwire_connections{kind=\"browser\"} 1\n"),
            "{open}"
        );
        assert!(
            open.contains("plotwire_messages_sent_total{kind=\"browser\"} 2\n"),
            "{open}"
        );
        let text = m.encode(Scraped::default(), Format::Prometheus).unwrap();
        assert!(
            text.contains("# TYPE plotwire_messages_sent_total counter\n"),
            "{text}"
        );
        assert!(
            !text.contains("# EOF") && !text.contains("# UNIT"),
            "{text}"
        );
        drop(meters);
        let closed = m.encode(Scraped::default(), Format::OpenMetrics).unwrap();
        assert!(
            closed.contains("plotwire_connections{kind=\"browser\"} 0\n"),
            "{closed}"
        );
        assert!(
            closed.contains("plotwire_connections_opened_total{kind=\"browser\"} 1\n"),
            "{closed}"
        );
    }
}
