//! What a node counts about its markets, for its front door's `/metrics`.

use crate::metrics::{render_value, Counter, Gauge};

/// A node's counters.
#[derive(Debug, Default)]
pub struct NodeMetrics {
    /// Markets this node serves now.
    pub served: Gauge,
    /// Markets this node started serving (recovered and took the lease).
    pub taken: Counter,
    /// Markets handed over cleanly (the assignment moved them, or the node left).
    pub handed_over: Counter,
    /// Markets dropped because their engine stopped by itself (fenced by a new owner).
    pub fenced: Counter,
    /// Times the node found itself out of touch with the registry for longer than a
    /// lease and stopped every market it served.
    pub out_of_touch: Counter,
    /// Registry heartbeats that failed.
    pub heartbeat_failures: Counter,
}

impl NodeMetrics {
    /// Prometheus text.
    pub fn render(&self, out: &mut String) {
        let rows: [(&str, &str, &str, u64); 6] = [
            (
                "gavel_cluster_markets_served",
                "gauge",
                "markets this node serves now",
                self.served.get(),
            ),
            (
                "gavel_cluster_markets_taken_total",
                "counter",
                "markets this node started serving",
                self.taken.get(),
            ),
            (
                "gavel_cluster_markets_handed_over_total",
                "counter",
                "markets handed over cleanly",
                self.handed_over.get(),
            ),
            (
                "gavel_cluster_markets_fenced_total",
                "counter",
                "markets dropped because a new owner fenced them",
                self.fenced.get(),
            ),
            (
                "gavel_cluster_out_of_touch_total",
                "counter",
                "times out of touch with the registry for longer than a lease",
                self.out_of_touch.get(),
            ),
            (
                "gavel_cluster_heartbeat_failures_total",
                "counter",
                "registry heartbeats that failed",
                self.heartbeat_failures.get(),
            ),
        ];
        for (name, kind, help, value) in rows {
            render_value(out, name, kind, help, value);
        }
    }
}
