//! `unavailable` means nothing happened: a bid whose journal write Redis applied but never
//! answered (Redis died, or the network failed, right after the write) is answered from
//! what the journal holds once the engine has rebuilt itself — accepted, with its seq —
//! not `unavailable`. Against a real `redis-server`, behind a proxy that loses the reply.

mod support;

use gavel::gateway::Format;
use gavel::store::redis::{RedisJournal, RedisJournalConfig};
use std::net::SocketAddr;
use std::time::Duration;
use support::proxy::ReplyDropper;
use support::redis_server::{RedisOpts, RedisServer};
use support::server::{create_dealer, create_seller, list_car, listing, TestServer};
use support::ws::Ws;

/// SHA-1 of the journal's append script (pinned in `store::redis::scripts`): a request
/// holding it is an append.
const APPEND_SHA: &str = "f2bbff2418cd6bd0e37b809af375ce41decff536";

#[tokio::test]
async fn a_bid_redis_applied_but_did_not_answer_is_accepted_not_unavailable() {
    let redis = RedisServer::start(RedisOpts::always());
    let upstream = SocketAddr::from(([127, 0, 0, 1], redis.port()));
    // Down for a second after the lost reply: longer than the journal's own resend on a
    // fresh connection, so the engine's write fails and it must rebuild to learn more.
    let proxy = ReplyDropper::start(upstream, APPEND_SHA.as_bytes(), Duration::from_secs(1)).await;
    let journal = RedisJournal::open(&RedisJournalConfig {
        url: proxy.url(),
        prefix: "lost-reply".into(),
        op_timeout_ms: 1_000,
        ..RedisJournalConfig::default()
    })
    .await
    .expect("open the journal through the proxy");
    let dir = tempfile::tempdir().expect("temp dir");
    let server = TestServer::start_on(&[], journal, dir).await;
    let addr = server.addr;
    let seller = create_seller(addr, "Seller").await;
    let dealers = [
        create_dealer(addr, "Dealer 1", 1_000_000_000).await,
        create_dealer(addr, "Dealer 2", 1_000_000_000).await,
    ];
    let lot = list_car(addr, &seller, &listing(5_000_000, 8_000_000, None, 600)).await;
    let lot = lot["auction"].as_str().expect("auction id").to_owned();

    // Each round another dealer takes the lead, in the other encoding.
    for (format, dealer) in [Format::Json, Format::MsgPack].into_iter().zip(&dealers) {
        let mut ws = Ws::connect(addr, &dealer.token, format).await;
        let before = proxy.dropped();
        proxy.arm();
        let bid_id = format!("reply-lost-{}", format.as_str());
        let amount = 5_000_000 + 100_000 * (before as u64 + 1);
        let r = ws.bid(&lot, amount, None, &bid_id).await;
        assert_eq!(
            proxy.dropped(),
            before + 1,
            "the proxy did not drop the reply"
        );
        assert!(
            r.accepted,
            "a bid the journal holds was answered {:?}",
            r.reason
        );
        let seq = r.seq.expect("an accepted bid has its seq");
        // It is what the journal holds: a retry with the same bid_id gets the same result,
        // and the auction shows it.
        let again = ws.bid(&lot, amount, None, &bid_id).await;
        assert_eq!((again.accepted, again.seq), (true, Some(seq)));
        let view = support::http::get(addr, &format!("/v1/auctions/{lot}"), Some(&dealer.token))
            .await
            .body;
        assert_eq!(view["price"], amount, "{view}");
    }
}
