//! A dealer's deposit moved between two markets over HTTP: two real `gavel serve`
//! processes (Beijing and Chengdu), each with its own file journal, the same accounts
//! registered in both in the same order, and the test as the coordinator calling
//! `POST /v1/admin/transfers` on each. A restart, and `gavel replay --verify` over both
//! journals.

mod support;

use serde_json::{json, Value};
use support::client::Dealer;
use support::gavel::{replay_verify, Gavel, GavelOpts, JournalArg, ADMIN};

const Y: u64 = 100;
const PATH: &str = "/v1/admin/transfers";

fn half(transfer: &str, dealer: &str, direction: &str, market: &str, amount: u64) -> Value {
    json!({"transfer": transfer, "dealer": dealer, "direction": direction,
           "market": market, "amount": amount})
}

/// A decided transfer's half: the answer, which must be a 200.
async fn send(g: &Gavel, body: &Value) -> Value {
    let (status, reply) = g.http("POST", PATH, Some(ADMIN), Some(body)).await;
    assert_eq!(status, 200, "{body}: {reply}");
    reply
}

/// (outcome, duplicate, deposit in yuan) of an answer.
fn said(v: &Value) -> (String, bool, u64) {
    (
        v["outcome"].as_str().expect("outcome").to_string(),
        v["duplicate"].as_bool().expect("duplicate"),
        v["deposit"].as_u64().expect("deposit") / Y,
    )
}

fn r(outcome: &str, duplicate: bool, deposit: u64) -> (String, bool, u64) {
    (outcome.to_string(), duplicate, deposit)
}

/// A dealer's buying power in a market, in yuan, as `/v1/me` shows it.
async fn power(g: &Gavel, token: &str) -> u64 {
    let (status, me) = g.http("GET", "/v1/me", Some(token), None).await;
    assert_eq!(status, 200, "{me}");
    me["buying_power"].as_u64().expect("buying_power") / Y
}

#[tokio::test]
async fn a_deposit_moves_between_two_markets_once_per_transfer_and_never_from_under_a_lead() {
    support::init_tracing();
    let dirs = [
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    ];
    let journals = dirs
        .each_ref()
        .map(|d| JournalArg::File(d.path().to_path_buf()));
    let opts = journals.clone().map(GavelOpts::new);
    let mut beijing = Gavel::start(&opts[0]).await.expect("beijing starts");
    let mut chengdu = Gavel::start(&opts[1]).await.expect("chengdu starts");

    // The same accounts in both markets, in the same order: D1 holds 10,000 yuan in
    // Beijing and 2,000 in Chengdu; D2 is its rival in Beijing.
    let (_, seller) = beijing.seller("Li Wei").await;
    chengdu.seller("Li Wei").await;
    let (d1, t1) = beijing.dealer("Chengdu Motors", 10_000 * Y).await;
    let (d1_there, t1_there) = chengdu.dealer("Chengdu Motors", 2_000 * Y).await;
    assert_eq!(d1, d1_there, "dealer ids are the same in every market");
    let (_, t2) = beijing.dealer("Beijing Auto Trust", 50_000 * Y).await;
    chengdu.dealer("Beijing Auto Trust", 50_000 * Y).await;

    // Only an operator moves deposit; a body that is not a transfer never reaches the
    // engine.
    let body = half("T1", &d1, "out", "chengdu", Y);
    let (status, reply) = beijing.http("POST", PATH, Some(&t1), Some(&body)).await;
    assert_eq!(
        (status, &reply["error"]["code"]),
        (403, &json!("forbidden"))
    );
    for (bad, status, code) in [
        (half("", &d1, "out", "chengdu", Y), 422, "invalid"),
        (
            half(&"x".repeat(65), &d1, "out", "chengdu", Y),
            422,
            "invalid",
        ),
        (half("T1", &d1, "out", &"m".repeat(33), Y), 422, "invalid"),
        (half("T1", &d1, "out", "chengdu", 0), 422, "invalid"),
        (half("T1", "X1", "out", "chengdu", Y), 404, "not_found"),
        (
            half("T1", &d1, "sideways", "chengdu", Y),
            400,
            "bad_request",
        ),
    ] {
        let (got, reply) = beijing.http("POST", PATH, Some(ADMIN), Some(&bad)).await;
        assert_eq!(
            (got, &reply["error"]["code"]),
            (status, &json!(code)),
            "{bad}"
        );
    }

    // D1 leads a Beijing lot with its whole buying power (100,000 yuan): none of its
    // deposit there is free.
    let (lot, _) = beijing.list(&seller, 600, 1_000 * Y).await;
    let mut ws1 = Dealer::connect(beijing.addr, &t1).await;
    let reply = ws1.bid_max(&lot, 1_000 * Y, 100_000 * Y, "b-1").await;
    assert_eq!(reply["accepted"], true, "{reply}");
    let refused = send(&beijing, &half("T1", &d1, "out", "chengdu", Y)).await;
    assert_eq!(said(&refused), r("refused", false, 10_000));
    assert_eq!(
        (&refused["reason"], &refused["free"]),
        (&json!("transfer_exceeds_free"), &json!(0))
    );

    // Outbid by D2, its max no longer counts; the refused id stays refused.
    let mut ws2 = Dealer::connect(beijing.addr, &t2).await;
    let reply = ws2.bid(&lot, 110_000 * Y, "b-2").await;
    assert_eq!(reply["accepted"], true, "{reply}");
    let again = send(&beijing, &half("T1", &d1, "out", "chengdu", Y)).await;
    assert_eq!(said(&again), r("refused", true, 10_000));

    // T2: 6,000 yuan out of Beijing, then into Chengdu; each half answered once, then
    // repeated with its first answer (the numeric spelling of the dealer is accepted).
    let out = send(&beijing, &half("T2", &d1, "out", "chengdu", 6_000 * Y)).await;
    assert_eq!(said(&out), r("accepted", false, 4_000));
    assert_eq!(
        out,
        json!({"transfer": "T2", "direction": "out", "dealer": d1, "market": "chengdu",
               "amount": 6_000 * Y, "outcome": "accepted", "duplicate": false,
               "deposit": 4_000 * Y, "seq": out["seq"]})
    );
    assert_eq!(power(&beijing, &t1).await, 40_000);
    let numeric = json!({"transfer": "T2", "dealer": 1, "direction": "out",
                         "market": "chengdu", "amount": 6_000 * Y});
    assert_eq!(
        said(&send(&beijing, &numeric).await),
        r("accepted", true, 4_000)
    );
    let arrived = send(&chengdu, &half("T2", &d1, "in", "beijing", 6_000 * Y)).await;
    assert_eq!(said(&arrived), r("accepted", false, 8_000));
    let again = send(&chengdu, &half("T2", &d1, "in", "beijing", 6_000 * Y)).await;
    assert_eq!(said(&again), r("accepted", true, 8_000));
    assert_eq!(power(&chengdu, &t1_there).await, 80_000);
    // Across both markets: 4,000 + 8,000 = the 12,000 yuan D1 started with.

    // Beijing restarts: its journal remembers T2, so a late repeat still moves nothing.
    assert!(beijing.terminate().success(), "{}", beijing.output());
    drop(beijing);
    let mut beijing = Gavel::start(&opts[0]).await.expect("beijing restarts");
    let late = send(&beijing, &half("T2", &d1, "out", "chengdu", 6_000 * Y)).await;
    assert_eq!(said(&late), r("accepted", true, 4_000));
    assert_eq!(power(&beijing, &t1).await, 40_000);

    drop((ws1, ws2));
    for g in [&mut beijing, &mut chengdu] {
        assert!(g.terminate().success(), "{}", g.output());
    }
    for journal in &journals {
        let (status, out) = replay_verify(journal);
        assert!(status.success(), "gavel replay --verify failed:\n{out}");
        assert!(out.contains("all agree"), "{out}");
    }
}
