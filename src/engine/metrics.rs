//! The engine's measurements and their Prometheus rendering.

use crate::metrics::{Counter, Gauge, Histogram, BATCH_SIZE, LATENCY_US};

/// The engine's measurements.
#[derive(Debug)]
pub struct EngineMetrics {
    /// Commands made durable.
    pub commands: Counter,
    /// Journal writes made durable.
    pub batches: Counter,
    /// Commands per journal write.
    pub batch_size: Histogram,
    /// Journal write latency (µs).
    pub write_latency_us: Histogram,
    /// Commands answered `unavailable`.
    pub unavailable: Counter,
    /// Journal failures that forced a rebuild from the journal.
    pub recoveries: Counter,
    /// 1 while the journal is usable, 0 while recovering.
    pub ready: Gauge,
    /// Snapshots started (the book copied for serialization).
    pub snapshots_started: Counter,
    /// Snapshots saved whole to the journal. Started minus saved (and minus those
    /// dropped, logged) is the one in flight: it tells whether a snapshot ran in a span.
    pub snapshots_saved: Counter,
    /// Size of the newest snapshot saved, bytes.
    pub snapshot_bytes: Gauge,
}

impl Default for EngineMetrics {
    fn default() -> Self {
        Self {
            commands: Counter::default(),
            batches: Counter::default(),
            batch_size: Histogram::new(BATCH_SIZE),
            write_latency_us: Histogram::new(LATENCY_US),
            unavailable: Counter::default(),
            recoveries: Counter::default(),
            ready: Gauge::default(),
            snapshots_started: Counter::default(),
            snapshots_saved: Counter::default(),
            snapshot_bytes: Gauge::default(),
        }
    }
}

/// Renders the engine's measurements in Prometheus text.
pub fn render_metrics(m: &EngineMetrics, out: &mut String) {
    use crate::metrics::render_value;
    render_value(
        out,
        "gavel_engine_commands_total",
        "counter",
        "Commands made durable.",
        m.commands.get(),
    );
    render_value(
        out,
        "gavel_journal_batches_total",
        "counter",
        "Journal writes made durable.",
        m.batches.get(),
    );
    m.batch_size.render(
        out,
        "gavel_journal_batch_commands",
        "Commands per journal write.",
        "",
        1.0,
    );
    m.write_latency_us.render(
        out,
        "gavel_journal_write_seconds",
        "Journal write latency.",
        "",
        1e6,
    );
    render_value(
        out,
        "gavel_engine_unavailable_total",
        "counter",
        "Commands answered unavailable.",
        m.unavailable.get(),
    );
    render_value(
        out,
        "gavel_engine_recoveries_total",
        "counter",
        "Rebuilds from the journal after a failed write.",
        m.recoveries.get(),
    );
    render_value(
        out,
        "gavel_engine_ready",
        "gauge",
        "1 while the journal is usable.",
        m.ready.get(),
    );
    render_value(
        out,
        "gavel_snapshots_started_total",
        "counter",
        "Snapshots started (book copied for serialization).",
        m.snapshots_started.get(),
    );
    render_value(
        out,
        "gavel_snapshots_saved_total",
        "counter",
        "Snapshots saved whole to the journal.",
        m.snapshots_saved.get(),
    );
    render_value(
        out,
        "gavel_snapshot_bytes",
        "gauge",
        "Size of the newest snapshot saved.",
        m.snapshot_bytes.get(),
    );
}
