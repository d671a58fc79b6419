//! The audit trail end to end: a real `gavel serve` on a file journal and on a Redis
//! journal, dealers bidding over WebSocket, then the admin endpoints and the `gavel audit`
//! CLI (run beside the engine, against the same journal) answering from the journal:
//! every attempt with its result and reason, in order and paged; a `bid_id`'s fate; the
//! leader at a moment; a dealer's attempts in a time range; the shill report; and who may
//! ask (401 without a token, 403 for a dealer). Refusals decided before the engine are
//! not in the trail and are counted in `/metrics`.

mod support;

use serde_json::Value;
use support::client::Dealer;
use support::gavel::{audit, data_dir, Gavel, GavelOpts, JournalArg, ADMIN};
use support::redis_server::{RedisOpts, RedisServer};

/// The files of a data directory with their sizes.
fn files(dir: &std::path::Path) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = std::fs::read_dir(dir)
        .expect("the directory reads")
        .map(|e| {
            let e = e.expect("an entry");
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().expect("metadata").len(),
            )
        })
        .collect();
    out.sort();
    out
}

/// One metric's value from `/metrics` text.
async fn metric(server: &Gavel, line_prefix: &str) -> u64 {
    let m = support::http::get(server.addr, "/metrics", None).await;
    let text = m.body.as_str().unwrap_or_default().to_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(line_prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{line_prefix} in /metrics:\n{text}"))
}

fn field<'a>(attempts: &'a [Value], key: &str) -> Vec<&'a Value> {
    attempts.iter().map(|a| &a[key]).collect()
}

/// The JSON lines the CLI printed.
fn lines(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

async fn the_trail_answers_disputes(journal: JournalArg) {
    let server = Gavel::start(&GavelOpts::new(journal.clone()))
        .await
        .expect("the server starts");
    let (seller, seller_token) = server.seller("Wang Fang").await;
    let (d1, t1) = server.dealer("Beijing Auto Trust", 10_000_000_000).await;
    let (d2, t2) = server.dealer("Chengdu Honest Motors", 10_000_000_000).await;
    let (auction, _) = server.list(&seller_token, 600, 5_000_000).await;
    let mut a = Dealer::connect(server.addr, &t1).await;
    let mut b = Dealer::connect(server.addr, &t2).await;

    // 1. D1 opens at the start price and leads.
    let r = a.bid(&auction, 5_000_000, "a-1").await;
    assert_eq!(r["accepted"], true, "{r}");
    // 2. D2 under the minimum: refused.
    let r = b.bid(&auction, 5_000_000, "b-1").await;
    assert_eq!(r["reason"], "below_minimum", "{r}");
    let min_next = r["min_next"].as_u64().expect("min_next");
    // 3. D2 at the minimum with a proxy maximum: leads.
    let r = b.bid_max(&auction, min_next, 7_000_000, "b-2").await;
    assert_eq!(
        (r["accepted"].clone(), r["leading"].clone()),
        (true.into(), true.into()),
        "{r}"
    );
    // 4. D1 repeats its first bid_id: answered from the first result, nothing applied.
    let r = a.bid(&auction, 9_000_000, "a-1").await;
    assert_eq!(r["accepted"], true, "{r}");
    // 5. D1 above the minimum, under D2's maximum: the proxy answers, D1 stays behind.
    let r = a.bid(&auction, 6_000_000, "a-2").await;
    assert_eq!(
        (r["accepted"].clone(), r["leading"].clone()),
        (true.into(), false.into()),
        "{r}"
    );
    // 6. An auction id of the right form that does not exist: refused by the engine.
    let r = a.bid("A999", 6_000_000, "a-3").await;
    assert_eq!(r["reason"], "unknown_auction", "{r}");
    // 7. A string that is no auction id: refused before the engine, not in the trail.
    let before = metric(
        &server,
        "gavel_bids_refused_before_engine_total{cause=\"malformed_auction\"} ",
    )
    .await;
    let r = a.bid("not-an-auction", 6_000_000, "a-4").await;
    assert_eq!(r["reason"], "unknown_auction", "{r}");
    let after = metric(
        &server,
        "gavel_bids_refused_before_engine_total{cause=\"malformed_auction\"} ",
    )
    .await;
    assert_eq!(after, before + 1);

    // Every attempt on the auction, in order, as the engine decided it.
    let path = format!("/v1/audit/auctions/{auction}/attempts");
    let (status, body) = server.http("GET", &path, Some(ADMIN), None).await;
    assert_eq!(status, 200, "{body}");
    let attempts = body["attempts"].as_array().expect("attempts").clone();
    assert_eq!(
        field(&attempts, "bid_id"),
        ["a-1", "b-1", "b-2", "a-1", "a-2"]
    );
    assert_eq!(
        field(&attempts, "result"),
        ["accepted", "rejected", "accepted", "duplicate", "accepted"]
    );
    assert_eq!(
        field(&attempts, "reason"),
        [
            &Value::Null,
            &"below_minimum".into(),
            &Value::Null,
            &Value::Null,
            &Value::Null
        ]
    );
    assert_eq!(
        field(&attempts, "leading"),
        [
            &true.into(),
            &Value::Null,
            &true.into(),
            &true.into(),
            &false.into()
        ]
    );
    assert_eq!(
        field(&attempts, "dealer"),
        [&d1, &d2, &d2, &d1, &d1]
            .map(|d| Value::from(d.as_str()))
            .iter()
            .collect::<Vec<_>>()
    );
    assert_eq!(attempts[2]["max"], 7_000_000);
    assert_eq!(attempts[2]["min_next_before"], min_next);
    assert_eq!(attempts[0]["seller"], seller.as_str());
    assert_eq!(body["next"], Value::Null);
    let seqs: Vec<u64> = attempts
        .iter()
        .map(|a| a["seq"].as_u64().expect("seq"))
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");
    // The proxy's answer: the price after D1's 6,000,000 is above it, D2 still leads.
    assert!(attempts[4]["price_after"].as_u64().expect("price") > 6_000_000);

    // Paged: two, two, one; each page starts after the previous one's `next`.
    let mut paged = Vec::new();
    let mut after = 0u64;
    loop {
        let (status, body) = server
            .http(
                "GET",
                &format!("{path}?limit=2&after={after}"),
                Some(ADMIN),
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        paged.extend(body["attempts"].as_array().expect("attempts").clone());
        match body["next"].as_u64() {
            Some(n) => after = n,
            None => break,
        }
    }
    assert_eq!(paged, attempts);
    let (status, _) = server
        .http("GET", &format!("{path}?limit=501"), Some(ADMIN), None)
        .await;
    assert_eq!(status, 400);

    // Who may ask: the admin only.
    let unauthorized = metric(&server, "gavel_http_unauthorized_total ").await;
    let (status, body) = server.http("GET", &path, None, None).await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = server.http("GET", &path, Some("not-a-token"), None).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(
        metric(&server, "gavel_http_unauthorized_total ").await,
        unauthorized + 2
    );
    for p in [
        path.clone(),
        format!("/v1/audit/bids/{d1}/a-1"),
        "/v1/audit/shill".to_owned(),
        format!("/v1/audit/auctions/{auction}/leader?at=0"),
        format!("/v1/audit/dealers/{d1}/attempts"),
    ] {
        let (status, body) = server.http("GET", &p, Some(&t1), None).await;
        assert_eq!(status, 403, "{p}: {body}");
        assert_eq!(body["error"]["code"], "forbidden", "{p}");
    }
    let (status, _) = server
        .http("GET", "/v1/audit/auctions/A999/attempts", Some(ADMIN), None)
        .await;
    assert_eq!(status, 404, "an auction never listed");

    // A bid_id's fate: the first attempt decided it, the repeat was answered from it.
    let (status, fate) = server
        .http(
            "GET",
            &format!("/v1/audit/bids/{d1}/a-1"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, 200, "{fate}");
    let fate = fate["attempts"].as_array().expect("attempts").clone();
    assert_eq!(field(&fate, "result"), ["accepted", "duplicate"]);
    let (status, _) = server
        .http(
            "GET",
            &format!("/v1/audit/bids/{d1}/never-sent"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, 404);
    // The refused one with its reason; the one refused before the engine is not there.
    let (_, refused) = server
        .http(
            "GET",
            &format!("/v1/audit/bids/{d2}/b-1"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(refused["attempts"][0]["reason"], "below_minimum");
    let (status, _) = server
        .http(
            "GET",
            &format!("/v1/audit/bids/{d1}/a-4"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(
        status, 404,
        "a refusal before the engine is not in the trail"
    );
    let (_, unknown) = server
        .http(
            "GET",
            &format!("/v1/audit/bids/{d1}/a-3"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(unknown["attempts"][0]["reason"], "unknown_auction");
    assert_eq!(unknown["attempts"][0]["seller"], Value::Null);

    // The leader at a moment: D1 right after its first bid, D2 at the end.
    let first_at = attempts[0]["at"].as_u64().expect("at");
    let (status, then) = server
        .http(
            "GET",
            &format!("/v1/audit/auctions/{auction}/leader?at={first_at}"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, 200, "{then}");
    // Two bids may share a millisecond: the state at `first_at` is after every command of
    // that millisecond, so it is D1's lead unless D2's came in the same one.
    let later_in_same_ms = attempts[2]["at"].as_u64() == Some(first_at);
    if !later_in_same_ms {
        assert_eq!(then["leader"], d1.as_str(), "{then}");
        assert_eq!(then["price"], 5_000_000, "{then}");
    }
    let last_at = attempts[4]["at"].as_u64().expect("at");
    let (_, now) = server
        .http(
            "GET",
            &format!("/v1/audit/auctions/{auction}/leader?at={last_at}"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(now["leader"], d2.as_str(), "{now}");
    assert_eq!(now["status"], "live");
    assert_eq!(now["price"], attempts[4]["price_after"]);
    let (status, _) = server
        .http(
            "GET",
            &format!("/v1/audit/auctions/{auction}/leader?at=1000"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, 404, "before the auction existed");

    // A dealer's attempts in a time range (half-open), across auctions.
    let (_, mine) = server
        .http(
            "GET",
            &format!("/v1/audit/dealers/{d1}/attempts?from={first_at}"),
            Some(ADMIN),
            None,
        )
        .await;
    let mine = mine["attempts"].as_array().expect("attempts").clone();
    assert_eq!(field(&mine, "bid_id"), ["a-1", "a-1", "a-2", "a-3"]);
    let (_, none) = server
        .http(
            "GET",
            &format!("/v1/audit/dealers/{d1}/attempts?from=0&to={first_at}"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(none["attempts"], serde_json::json!([]));

    // The shill report answers (two dealers on a live lot: no lot has ended yet).
    let (status, report) = server
        .http("GET", "/v1/audit/shill", Some(ADMIN), None)
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["lots"], 0, "{report}");

    // The CLI, beside the running engine, on the same journal: the same answers, and not
    // one byte of the journal changed.
    let before = match &journal {
        JournalArg::File(dir) => files(dir),
        JournalArg::Redis { .. } | JournalArg::Config(_) => Vec::new(),
    };
    let (status, out, err) = audit(&journal, &["auction", &auction, "--format", "jsonl"]);
    assert!(status.success(), "{err}");
    assert_eq!(lines(&out), attempts, "the CLI and the endpoint agree");
    let (status, out, err) = audit(&journal, &["auction", &auction]);
    assert!(status.success(), "{err}");
    assert!(
        out.contains("below_minimum") && out.contains("duplicate"),
        "{out}"
    );
    let (status, out, err) = audit(
        &journal,
        &[
            "auction", &auction, "--limit", "2", "--after", "0", "--format", "jsonl",
        ],
    );
    assert!(status.success(), "{err}");
    assert_eq!(lines(&out), attempts[..2]);
    assert!(err.contains(&format!("more: --after {}", seqs[1])), "{err}");
    let (status, out, err) = audit(&journal, &["bid", &d2, "b-1", "--format", "jsonl"]);
    assert!(status.success(), "{err}");
    assert_eq!(lines(&out)[0]["reason"], "below_minimum");
    let (status, _, err) = audit(&journal, &["bid", &d1, "never-sent"]);
    assert!(!status.success());
    assert!(err.contains("never received"), "{err}");
    let (status, out, err) = audit(
        &journal,
        &[
            "auction",
            &auction,
            "--at",
            &last_at.to_string(),
            "--format",
            "jsonl",
        ],
    );
    assert!(status.success(), "{err}");
    assert_eq!(lines(&out)[0], now);
    let (status, out, err) = audit(
        &journal,
        &[
            "dealer",
            &d1,
            "--from",
            &first_at.to_string(),
            "--format",
            "jsonl",
        ],
    );
    assert!(status.success(), "{err}");
    assert_eq!(lines(&out), mine);
    let (status, out, err) = audit(&journal, &["shill"]);
    assert!(status.success(), "{err}");
    assert!(out.contains("shill report"), "{out}");
    if let JournalArg::File(dir) = &journal {
        assert_eq!(files(dir), before, "the audit changed the journal's files");
    }
    // The engine was not disturbed.
    let r = b.bid(&auction, 9_000_000, "b-3").await;
    assert_eq!(r["reason"], "already_leading", "{r}");
}

#[tokio::test]
async fn the_trail_answers_disputes_from_a_file_journal() {
    let dir = data_dir();
    the_trail_answers_disputes(JournalArg::File(dir.path().to_path_buf())).await;
}

#[tokio::test]
async fn the_trail_answers_disputes_from_a_redis_journal() {
    let redis = RedisServer::start(RedisOpts::always());
    the_trail_answers_disputes(JournalArg::Redis {
        url: redis.url(),
        prefix: "audit-e2e".into(),
    })
    .await;
}

#[test]
fn a_missing_journal_is_an_error_and_is_not_created() {
    let parent = data_dir();
    let missing = parent.path().join("no-such-journal");
    let (status, _, err) = audit(&JournalArg::File(missing.clone()), &["auction", "A1"]);
    assert!(!status.success());
    assert!(err.contains("not a directory"), "{err}");
    assert!(!missing.exists());
}
