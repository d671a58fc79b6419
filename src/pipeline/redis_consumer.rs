//! The hand-off for the Redis journal: a consumer group on `{prefix}:outcomes`.
//!
//! The journal XADDs every outcome to the stream in the same script as its batch, so the
//! stream holds exactly the durable outcomes. This consumer reads them through a consumer
//! group and acknowledges an entry only once its hand-off is durable in the journal:
//!
//! 1. `XGROUP CREATE … 0 MKSTREAM` at start (an existing group is kept). A new group starts
//!    at the beginning of the stream, so outcomes from before the alliance existed are
//!    handed off too (once each).
//! 2. `XREADGROUP … STREAMS key 0`: what this consumer read before and never acknowledged
//!    (it restarted, or the engine was unavailable), first.
//! 3. `XAUTOCLAIM … min-idle`: entries another consumer read and left idle longer than
//!    `claim_idle` (it died between reading and acknowledging).
//! 4. `XREADGROUP … BLOCK … STREAMS key >`: new entries.
//!
//! Each entry is handled, then `XACK`ed: non-sold outcomes at once; sold ones after the
//! engine answered the hand-off durably. Delivery is therefore at least once — a consumer
//! killed after the hand-off but before its `XACK` leaves the entry to be handed off again
//! — and the effect is once, because the book creates one item per auction.
//!
//! A consumer has one of three [`Role`]s. `HandOff` is the above. In a cluster the alliance
//! is one market's (the alliance market's): every other market's consumer `Forward`s each
//! sold car — the record built from its own durable listing, so the car and its report
//! travel whole — to the alliance market's inbox stream (`XADD`, then `XACK` of the
//! outcome), and the alliance market's consumer in the `Collect` role reads the inbox
//! through the same kind of group and hands each car to its alliance as coming from the
//! market that sold it (`HandOffFrom`, idempotent by market and auction). Each hop is at
//! least once; the effect is once.
//!
//! On a Redis Cluster (`cluster_urls` set) every call goes to the master of the stream's
//! slot, the journal's, and the cluster client follows that slot across a failover; a
//! call it cannot settle fails like any other, and the consumer reconnects.
//!
//! Must not: acknowledge anything that is not durable, or retry on its own in a tight
//! loop (failures back off).

use super::{hand_off_record, submit_hand_off, submit_hand_off_from, Handed};
use crate::alliance::{HandOffRecord, MAX_MARKET_NAME};
use crate::auction::Outcome;
use crate::engine::EngineHandle;
use crate::store::redis::{redact_url, RedisConn, RedisTarget};
use crate::store::OutcomeRecord;
use crate::views::Lots;
use crate::vocab::Vehicle;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamInfoGroupsReply, StreamReadReply};
use redis::{FromRedisValue, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Settings of the consumer (`[alliance]` in config/default.toml says why each default).
#[derive(Clone, PartialEq, Eq)]
pub struct RedisHandoffConfig {
    /// The Redis URL (unused when `cluster_urls` is set).
    pub url: String,
    /// The seeds of the Redis Cluster the stream is on; empty: one Redis at `url`.
    pub cluster_urls: Vec<String>,
    /// The outcomes stream's key.
    pub stream: String,
    /// The consumer group.
    pub group: String,
    /// This consumer's name in the group.
    pub consumer: String,
    /// Entries idle this long in another consumer's pending list are claimed.
    pub claim_idle: Duration,
    /// How long one read waits for new entries.
    pub block: Duration,
    /// Most entries per read.
    pub count: usize,
    /// Bound on every Redis call (on top of `block` for blocking reads).
    pub op_timeout: Duration,
    /// What the consumer does with what it reads.
    pub role: Role,
}

/// What a consumer does with the entries it reads (the module's header says why).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Role {
    /// `stream` is this market's outcomes: each sold car goes to this market's alliance.
    #[default]
    HandOff,
    /// `stream` is this market's outcomes: each sold car goes to the alliance market's
    /// inbox, as sold in `market`.
    Forward {
        /// This market's name in the cluster.
        market: String,
        /// The inbox stream's key (on the alliance market's slot).
        inbox: String,
    },
    /// `stream` is the alliance market's inbox: each car goes to this market's alliance as
    /// sold in the market the entry names.
    Collect,
}

impl std::fmt::Debug for RedisHandoffConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisHandoffConfig")
            .field("url", &redact_url(&self.url))
            .field(
                "cluster_urls",
                &self
                    .cluster_urls
                    .iter()
                    .map(|u| redact_url(u))
                    .collect::<Vec<_>>(),
            )
            .field("stream", &self.stream)
            .field("group", &self.group)
            .field("consumer", &self.consumer)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// A failed Redis call (the consumer reconnects and carries on).
#[derive(Debug, thiserror::Error)]
#[error("alliance hand-off: {0}")]
pub struct HandoffError(String);

/// One entry of the outcomes stream or of the inbox, as read.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// The stream entry id.
    pub id: String,
    /// The outcome (field `o`), if the entry holds one that decodes.
    pub outcome: Option<OutcomeRecord>,
    /// The sold car another market forwarded (fields `m`, `r` and `v`), if the entry holds
    /// one that decodes.
    pub sold: Option<Sold>,
}

/// A sold car on its way from the market that sold it to the alliance market's inbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sold {
    /// The market that sold it.
    pub market: String,
    /// Its sale and its report, as that market's book holds them.
    pub record: HandOffRecord,
    /// The car as its seller described it (the catalogue shows it).
    pub vehicle: Vehicle,
}

/// What handling one delivery came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Handling {
    /// Done with it (handed off durably, nothing to hand off, or never handleable):
    /// acknowledge.
    Ack,
    /// Not now (engine unavailable, listing not yet visible): leave it pending.
    Retry(&'static str),
}

/// A consumer in the alliance's group.
pub struct RedisHandoff {
    config: RedisHandoffConfig,
    conn: RedisConn,
    engine: EngineHandle,
    lots: Arc<Lots>,
    /// Where the inbox is, and the connection to it while it works (`Role::Forward` only):
    /// made when first needed, dropped after a failed call and made again at the next.
    inbox: Option<(RedisTarget, Option<RedisConn>)>,
    /// Where the next read of this consumer's own pending entries starts, and where the
    /// next claim starts. Both walk forward page by page and wrap around, so an entry that
    /// keeps failing at the head never hides the ones behind it.
    own_cursor: String,
    claim_cursor: String,
}

impl RedisHandoff {
    /// Connects and makes sure the group exists.
    pub async fn connect(
        config: RedisHandoffConfig,
        engine: EngineHandle,
        lots: Arc<Lots>,
    ) -> Result<Self, HandoffError> {
        // The cluster client's own reply timeout must let a blocking read run its course.
        let target = RedisTarget::new(
            &config.url,
            &config.cluster_urls,
            &config.stream,
            config.op_timeout + config.block,
        )
        .map_err(HandoffError)?;
        let conn = tokio::time::timeout(config.op_timeout, target.connect())
            .await
            .map_err(|_| HandoffError("connecting to redis timed out".into()))?
            .map_err(|e| HandoffError(format!("connecting to redis: {e}")))?;
        let inbox = match &config.role {
            Role::Forward { inbox, .. } => {
                let target =
                    RedisTarget::new(&config.url, &config.cluster_urls, inbox, config.op_timeout)
                        .map_err(HandoffError)?;
                Some((target, None))
            }
            Role::HandOff | Role::Collect => None,
        };
        let mut me = Self {
            config,
            conn,
            engine,
            lots,
            inbox,
            own_cursor: "0".into(),
            claim_cursor: "0-0".into(),
        };
        let mut create = redis::cmd("XGROUP");
        create
            .arg("CREATE")
            .arg(&me.config.stream)
            .arg(&me.config.group)
            .arg("0")
            .arg("MKSTREAM");
        match me.query::<Value>(&create, Duration::ZERO).await {
            Ok(_) => {}
            Err(e) if e.0.contains("BUSYGROUP") => {}
            Err(e) => return Err(e),
        }
        Ok(me)
    }

    /// This consumer's settings.
    pub fn config(&self) -> &RedisHandoffConfig {
        &self.config
    }

    async fn query<T: FromRedisValue>(
        &mut self,
        cmd: &redis::Cmd,
        extra: Duration,
    ) -> Result<T, HandoffError> {
        match tokio::time::timeout(self.config.op_timeout + extra, self.conn.cmd(cmd)).await {
            Ok(Ok(v)) => T::from_owned_redis_value(v)
                .map_err(|e| HandoffError(format!("unexpected reply: {e}"))),
            Ok(Err(e)) => Err(HandoffError(e.to_string())),
            Err(_) => Err(HandoffError("redis did not answer in time".into())),
        }
    }

    /// Entries this consumer read before and has not acknowledged: the next page of
    /// them (from the start again once a page comes back short).
    pub async fn read_own_pending(&mut self) -> Result<Vec<Delivery>, HandoffError> {
        let from = std::mem::replace(&mut self.own_cursor, "0".into());
        let page = self.read_group(&from, None).await?;
        if page.len() >= self.config.count {
            if let Some(last) = page.last() {
                self.own_cursor = last.id.clone();
            }
        }
        Ok(page)
    }

    /// New entries, waiting up to the configured block time for some.
    pub async fn read_new(&mut self) -> Result<Vec<Delivery>, HandoffError> {
        let block = self.config.block;
        self.read_group(">", Some(block)).await
    }

    async fn read_group(
        &mut self,
        from: &str,
        block: Option<Duration>,
    ) -> Result<Vec<Delivery>, HandoffError> {
        let mut read = redis::cmd("XREADGROUP");
        read.arg("GROUP")
            .arg(&self.config.group)
            .arg(&self.config.consumer)
            .arg("COUNT")
            .arg(self.config.count);
        if let Some(block) = block {
            read.arg("BLOCK").arg(block.as_millis() as u64);
        }
        read.arg("STREAMS").arg(&self.config.stream).arg(from);
        let value: Value = self.query(&read, block.unwrap_or_default()).await?;
        if value == Value::Nil {
            return Ok(Vec::new()); // BLOCK timed out
        }
        let reply = StreamReadReply::from_owned_redis_value(value)
            .map_err(|e| HandoffError(format!("unexpected XREADGROUP reply: {e}")))?;
        Ok(reply
            .keys
            .iter()
            .flat_map(|k| k.ids.iter().map(decode))
            .collect())
    }

    /// Entries other consumers (or this one) left unacknowledged for longer than the
    /// claim timeout, now claimed by this consumer.
    pub async fn claim_stale(&mut self) -> Result<Vec<Delivery>, HandoffError> {
        let mut claim = redis::cmd("XAUTOCLAIM");
        claim
            .arg(&self.config.stream)
            .arg(&self.config.group)
            .arg(&self.config.consumer)
            .arg(self.config.claim_idle.as_millis() as u64)
            .arg(&self.claim_cursor)
            .arg("COUNT")
            .arg(self.config.count);
        let reply: StreamAutoClaimReply = self.query(&claim, Duration::ZERO).await?;
        // "0-0" when the scan of the pending list is complete: the next claim starts over.
        self.claim_cursor = reply.next_stream_id;
        Ok(reply.claimed.iter().map(decode).collect())
    }

    /// Acknowledges one entry.
    pub async fn ack(&mut self, delivery: &Delivery) -> Result<(), HandoffError> {
        let mut ack = redis::cmd("XACK");
        ack.arg(&self.config.stream)
            .arg(&self.config.group)
            .arg(&delivery.id);
        let _: i64 = self.query(&ack, Duration::ZERO).await?;
        Ok(())
    }

    /// Hands one entry off, or forwards it (without acknowledging it).
    pub async fn handle(&mut self, delivery: &Delivery) -> Handling {
        if self.config.role == Role::Collect {
            return self.collect(delivery).await;
        }
        let Some(o) = &delivery.outcome else {
            tracing::error!(id = %delivery.id, "outcome entry does not decode; skipped");
            return Handling::Ack;
        };
        let (Outcome::Sold, Some(dealer), Some(price)) = (o.outcome, o.dealer, o.price) else {
            return Handling::Ack; // no_sale, pending_seller: nothing to hand off
        };
        // The listing reached the views when its ListCar entry was published; only a lot
        // listed and sold within one group commit can be read here a moment before that.
        let Some(listing) = self.lots.listing(o.lot) else {
            return Handling::Retry("listing not yet published");
        };
        let record = hand_off_record(o.lot, o.seller, dealer, price, &listing);
        if let Role::Forward { market, inbox } = &self.config.role {
            let sold = Sold {
                market: market.clone(),
                record,
                vehicle: listing.vehicle.clone(),
            };
            let inbox = inbox.clone();
            return self.forward(&inbox, sold, &delivery.id).await;
        }
        let handed = submit_hand_off(&self.engine, record).await;
        answer(o.lot, None, &delivery.id, handed)
    }

    /// Puts one sold car on the alliance market's inbox.
    async fn forward(&mut self, inbox: &str, sold: Sold, id: &str) -> Handling {
        let (auction, market) = (sold.record.auction, sold.market);
        let (Ok(record), Ok(vehicle)) = (
            rmp_serde::to_vec_named(&sold.record),
            rmp_serde::to_vec_named(&sold.vehicle),
        ) else {
            tracing::error!(%auction, "hand-off record does not encode; skipped");
            return Handling::Ack;
        };
        let Some((target, slot)) = self.inbox.as_mut() else {
            return Handling::Retry("not a forwarder");
        };
        if slot.is_none() {
            match tokio::time::timeout(self.config.op_timeout, target.connect()).await {
                Ok(Ok(conn)) => *slot = Some(conn),
                Ok(Err(_)) | Err(_) => return Handling::Retry("alliance inbox unreachable"),
            }
        }
        let Some(conn) = slot.as_mut() else {
            return Handling::Retry("alliance inbox unreachable");
        };
        let mut add = redis::cmd("XADD");
        add.arg(inbox)
            .arg("*")
            .arg("m")
            .arg(&market)
            .arg("r")
            .arg(record)
            .arg("v")
            .arg(vehicle);
        match tokio::time::timeout(self.config.op_timeout, conn.cmd(&add)).await {
            Ok(Ok(_)) => {
                tracing::info!(%auction, %market, id, "sold car sent to the alliance market");
                Handling::Ack
            }
            // The entry may have reached the inbox anyway: sending it again is harmless,
            // since the alliance takes one item per market and auction. The connection is
            // made again for the next try.
            Ok(Err(_)) | Err(_) => {
                *slot = None;
                Handling::Retry("alliance inbox unavailable")
            }
        }
    }

    /// Hands a car another market sold to this market's alliance.
    async fn collect(&self, delivery: &Delivery) -> Handling {
        let Some(sold) = &delivery.sold else {
            tracing::error!(id = %delivery.id, "inbox entry does not decode; skipped");
            return Handling::Ack;
        };
        let Sold {
            market,
            record,
            vehicle,
        } = sold.clone();
        let auction = record.auction;
        let handed = submit_hand_off_from(&self.engine, market.clone(), record, vehicle).await;
        answer(auction, Some(&market), &delivery.id, handed)
    }

    /// Handles and acknowledges each delivery; false if any must be retried.
    pub async fn process(&mut self, deliveries: &[Delivery]) -> Result<bool, HandoffError> {
        let mut all = true;
        for d in deliveries {
            match self.handle(d).await {
                Handling::Ack => self.ack(d).await?,
                Handling::Retry(why) => {
                    tracing::debug!(id = %d.id, why, "hand-off left pending");
                    all = false;
                }
            }
        }
        Ok(all)
    }

    /// One round: own pending entries (when `own` is set), stale ones (when `claim` is
    /// set), then new ones. Returns whether everything read was acknowledged. New entries
    /// are read even when older ones failed, so one entry that cannot be handed off yet
    /// never holds up the others.
    pub async fn round(&mut self, own: bool, claim: bool) -> Result<bool, HandoffError> {
        let mut all = true;
        if own {
            let d = self.read_own_pending().await?;
            all &= self.process(&d).await?;
        }
        if claim {
            let d = self.claim_stale().await?;
            all &= self.process(&d).await?;
        }
        let d = self.read_new().await?;
        all &= self.process(&d).await?;
        if claim && self.config.role == Role::Collect {
            self.trim_collected().await?;
        }
        Ok(all)
    }

    /// Drops the inbox's entries the group has read and acknowledged: each is an item in
    /// this market's journal by then, so the inbox holds only cars on their way and stays
    /// as small as the backlog. Trims below the oldest pending entry, or past the last one
    /// delivered when none is pending; an entry added meanwhile is above both.
    pub async fn trim_collected(&mut self) -> Result<u64, HandoffError> {
        let mut info = redis::cmd("XINFO");
        info.arg("GROUPS").arg(&self.config.stream);
        let groups: StreamInfoGroupsReply = self.query(&info, Duration::ZERO).await?;
        let Some(group) = groups
            .groups
            .into_iter()
            .find(|g| g.name == self.config.group)
        else {
            return Ok(0);
        };
        let below = if group.pending > 0 {
            let mut summary = redis::cmd("XPENDING");
            summary.arg(&self.config.stream).arg(&self.config.group);
            // [count, smallest id, greatest id, [[consumer, count], …]]
            let reply: Value = self.query(&summary, Duration::ZERO).await?;
            match reply {
                Value::Array(parts) => match parts.get(1) {
                    Some(Value::BulkString(id)) => String::from_utf8_lossy(id).into_owned(),
                    _ => return Ok(0),
                },
                _ => return Ok(0),
            }
        } else {
            match next_id(&group.last_delivered_id) {
                Some(id) => id,
                None => return Ok(0),
            }
        };
        let mut trim = redis::cmd("XTRIM");
        trim.arg(&self.config.stream).arg("MINID").arg(&below);
        self.query(&trim, Duration::ZERO).await
    }

    /// Runs the consumer until `shutdown` turns true, reconnecting after Redis failures
    /// (with backoff). Own pending entries are read at start and after any retry.
    pub async fn run(
        config: RedisHandoffConfig,
        engine: EngineHandle,
        lots: Arc<Lots>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut backoff = Duration::from_millis(100);
        'connect: loop {
            let connected = tokio::select! {
                c = Self::connect(config.clone(), engine.clone(), lots.clone()) => c,
                _ = shutdown.changed() => return,
            };
            let mut me = match connected {
                Ok(me) => me,
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "alliance consumer cannot start");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            tracing::info!(config = ?me.config, "alliance consumer running");
            let (mut own, mut last_claim) = (true, None::<Instant>);
            loop {
                if *shutdown.borrow() {
                    return;
                }
                // Claiming every half timeout keeps a dead consumer's entries waiting at
                // most 1.5 × claim_idle.
                let claim = last_claim.is_none_or(|t| t.elapsed() >= config.claim_idle / 2);
                if claim {
                    last_claim = Some(Instant::now());
                }
                let round = tokio::select! {
                    r = me.round(own, claim) => r,
                    _ = shutdown.changed() => return,
                };
                match round {
                    Ok(true) => {
                        own = false;
                        backoff = Duration::from_millis(100);
                    }
                    Ok(false) => {
                        own = true;
                        tokio::select! {
                            () = tokio::time::sleep(backoff) => {}
                            _ = shutdown.changed() => return,
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in = ?backoff, "alliance consumer: redis failed; reconnecting");
                        tokio::select! {
                            () = tokio::time::sleep(backoff) => {}
                            _ = shutdown.changed() => return,
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        continue 'connect;
                    }
                }
            }
        }
    }
}

/// What the engine's answer to a hand-off means for its entry.
fn answer(
    auction: crate::vocab::LotId,
    market: Option<&str>,
    id: &str,
    handed: Result<Handed, crate::engine::Unavailable>,
) -> Handling {
    match handed {
        Ok(Handed::Done { item, duplicate }) => {
            tracing::info!(%auction, ?market, %item, duplicate, id, "handed off");
            Handling::Ack
        }
        Ok(Handed::Refused(r)) => {
            tracing::error!(%auction, ?market, refusal = ?r, "hand-off refused by the book");
            Handling::Ack
        }
        Err(_) => Handling::Retry("engine unavailable"),
    }
}

/// The stream id right after `id` (`ms-seq` → `ms-(seq+1)`); `None` for "0-0" (nothing
/// delivered yet) or an id that does not parse.
fn next_id(id: &str) -> Option<String> {
    let (ms, seq) = id.split_once('-')?;
    let (ms, seq) = (ms.parse::<u64>().ok()?, seq.parse::<u64>().ok()?);
    if (ms, seq) == (0, 0) {
        return None;
    }
    Some(match seq.checked_add(1) {
        Some(seq) => format!("{ms}-{seq}"),
        None => format!("{}-0", ms.checked_add(1)?),
    })
}

fn decode(entry: &StreamId) -> Delivery {
    let bytes = |field: &str| match entry.map.get(field) {
        Some(Value::BulkString(bytes)) => Some(bytes.as_slice()),
        _ => None,
    };
    let outcome = bytes("o").and_then(|b| rmp_serde::from_slice(b).ok());
    let sold = match (bytes("m").map(std::str::from_utf8), bytes("r"), bytes("v")) {
        (Some(Ok(market)), Some(r), Some(v))
            if !market.is_empty() && market.len() <= MAX_MARKET_NAME =>
        {
            match (rmp_serde::from_slice(r), rmp_serde::from_slice(v)) {
                (Ok(record), Ok(vehicle)) => Some(Sold {
                    market: market.to_owned(),
                    record,
                    vehicle,
                }),
                _ => None,
            }
        }
        _ => None,
    };
    Delivery {
        id: entry.id.clone(),
        outcome,
        sold,
    }
}

#[cfg(test)]
mod tests {
    use super::next_id;

    #[test]
    fn the_id_after_an_entry_is_its_next_sequence_and_nothing_follows_none() {
        assert_eq!(
            next_id("1700000000000-4").as_deref(),
            Some("1700000000000-5")
        );
        assert_eq!(next_id(&format!("7-{}", u64::MAX)).as_deref(), Some("8-0"));
        assert_eq!(next_id("0-0"), None, "nothing delivered yet");
        assert_eq!(next_id("junk"), None);
    }
}
