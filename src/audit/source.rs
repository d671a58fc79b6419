//! Which journal an audit reads, opened read-only (`FileLog`, `RedisLog`: no lock, no
//! lease, nothing created or repaired), and reading it off the async runtime.

use super::scan::{scan, AuditSink, Scanned};
use crate::store::file::FileLog;
use crate::store::redis::RedisJournalConfig;
use crate::store::{RedisLog, StoreError};
use std::path::PathBuf;
use std::sync::Arc;

/// A journal to audit. No `Debug`: a Redis URL may hold a password.
#[derive(Clone)]
pub enum AuditSource {
    /// The file journal in this directory.
    File(PathBuf),
    /// The Redis journal under this configuration (only its URL, prefix and timeout are
    /// used: a read-only view takes no lease).
    Redis(RedisJournalConfig),
}

impl AuditSource {
    /// Opens the journal read-only and scans it into `sink`. Each call opens it afresh,
    /// so a scan sees every batch durable when it starts.
    pub async fn scan<S: AuditSink>(&self, sink: S) -> Result<(S, Scanned), StoreError> {
        match self {
            Self::File(dir) => {
                let mut log = FileLog::open(dir)?;
                scan(&mut log, sink).await
            }
            Self::Redis(config) => {
                let mut log = RedisLog::open(config).await?;
                scan(&mut log, sink).await
            }
        }
    }

    /// [`AuditSource::scan`] on a blocking thread: a replay is seconds of CPU on a long
    /// journal (and the file view reads on its caller's thread), so a server runs it
    /// where it takes no runtime worker from the engine or the sessions.
    pub async fn scan_blocking<S: AuditSink + Send + 'static>(
        self: Arc<Self>,
        sink: S,
    ) -> Result<(S, Scanned), StoreError> {
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || runtime.block_on(self.scan(sink)))
            .await
            .map_err(|e| StoreError::Unavailable(format!("the audit's thread failed: {e}")))?
    }
}
