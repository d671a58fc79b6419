//! How answers are shown: JSON values (the admin endpoint's bodies, and one per line for
//! tools) and fixed-width tables for people. Money stays in fen in JSON; the tables show
//! yuan with the fen exact.

use super::scan::Attempt;
use super::shill::{Row, ShillReport};
use super::time::format_utc;
use super::trail::Leader;
use serde_json::{json, Value};
use std::fmt::Write as _;

/// One attempt as JSON.
pub fn attempt_json(a: &Attempt) -> Value {
    json!({
        "seq": a.seq,
        "at": a.at,
        "auction": a.lot.to_string(),
        "seller": a.seller.map(|s| s.to_string()),
        "dealer": a.dealer.to_string(),
        "bid_id": &*a.bid_id,
        "amount": a.amount,
        "max": a.max,
        "result": a.result.as_str(),
        "leading": a.result.leading(),
        "reason": a.result.reason(),
        "min_next_before": a.min_next_before,
        "price_after": a.price_after,
    })
}

/// An auction's state at a moment as JSON.
pub fn leader_json(l: &Leader) -> Value {
    json!({
        "auction": l.lot.to_string(),
        "at": l.at,
        "status": l.status.as_str(),
        "leader": l.leader.map(|d| d.to_string()),
        "price": l.price,
        "seq": l.seq,
        "changed_at": l.changed_at,
    })
}

/// A ratio shown to four places (the measures are estimates; more digits are noise).
fn r4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// One row of the shill report as JSON.
pub fn row_json(row: &Row) -> Value {
    let m = &row.measures;
    json!({
        "dealer": row.dealer.to_string(),
        "seller": row.seller.map(|s| s.to_string()),
        "auctions": m.auctions,
        "bids": m.bids,
        "shill_score": r4(m.shill_score),
        "bidder_tendency": r4(m.bidder_tendency),
        "bidding_ratio": r4(m.bidding_ratio),
        "successive_outbidding": r4(m.successive_outbidding),
        "last_bidding": r4(m.last_bidding),
        "auction_bids": r4(m.auction_bids),
        "early_bidding": r4(m.early_bidding),
        "winning_ratio": r4(m.winning_ratio),
        "response": r4(m.response),
        "min_raise": r4(m.min_raise),
        "probes": m.probes,
        "probe_share": r4(m.probe_share),
        "flags": row.flags.iter().map(|f| f.as_str()).collect::<Vec<_>>(),
    })
}

/// Fen as yuan with two decimals.
fn yuan(fen: Option<u64>) -> String {
    fen.map_or("-".into(), |f| format!("{}.{:02}", f / 100, f % 100))
}

/// Attempts as a table, with a line saying where the next page starts.
pub fn attempts_table(attempts: &[Attempt], next: Option<u64>) -> String {
    let mut out = format!(
        "{:>9} {:<24} {:<7} {:<7} {:<24} {:>13} {:>13} {:<9} {:<7} {:<15} {:>13}\n",
        "SEQ",
        "TIME (UTC)",
        "DEALER",
        "AUCTION",
        "BID_ID",
        "AMOUNT",
        "MAX",
        "RESULT",
        "LEADS",
        "REASON",
        "PRICE AFTER"
    );
    for a in attempts {
        let _ = writeln!(
            out,
            "{:>9} {:<24} {:<7} {:<7} {:<24} {:>13} {:>13} {:<9} {:<7} {:<15} {:>13}",
            a.seq,
            format_utc(a.at),
            a.dealer.to_string(),
            a.lot.to_string(),
            a.bid_id.chars().take(24).collect::<String>(),
            yuan(Some(a.amount)),
            yuan(a.max),
            a.result.as_str(),
            a.result
                .leading()
                .map_or("-", |l| if l { "yes" } else { "no" }),
            a.result.reason().unwrap_or("-"),
            yuan(a.price_after),
        );
    }
    match next {
        Some(seq) => {
            let _ = writeln!(out, "more: --after {seq}");
        }
        None => {
            let _ = writeln!(out, "({} attempts; end)", attempts.len());
        }
    }
    out
}

/// An auction's state at a moment, for people.
pub fn leader_text(l: &Leader) -> String {
    format!(
        "auction {} at {}: {}, leader {}, price {} (since seq {} at {})\n",
        l.lot,
        format_utc(l.at),
        l.status.as_str(),
        l.leader.map_or("none".into(), |d| d.to_string()),
        yuan(l.price),
        l.seq,
        format_utc(l.changed_at)
    )
}

/// The shill report as two ranked tables (pairs, then dealers), at most `limit` rows each.
pub fn shill_table(r: &ShillReport, limit: usize) -> String {
    let mut out = format!(
        "shill report: lots whose bidding ended in [{}, {}): {}\n",
        format_utc(r.from),
        format_utc(r.to.min(253_402_300_799_999)),
        r.lots
    );
    for (title, rows) in [("pairs", &r.pairs), ("dealers", &r.dealers)] {
        let _ = writeln!(
            out,
            "\n{title}\n{:>4} {:<7} {:<7} {:>5} {:>6} {:>5} {:>5} {:>5} {:>5} {:>5} {:>5} {:>5} {:>5} {:>5} {:>5} {:>6}  FLAGS",
            "RANK", "DEALER", "SELLER", "SCORE", "LOTS", "TEND", "RATIO", "SUCC", "LAST", "ABIDS",
            "EARLY", "WIN", "RESP", "MINR", "PROBE", "BIDS"
        );
        for (i, row) in rows.iter().take(limit).enumerate() {
            let m = &row.measures;
            let _ = writeln!(
                out,
                "{:>4} {:<7} {:<7} {:>5.2} {:>6} {:>5.2} {:>5.2} {:>5.2} {:>5.2} {:>5.2} {:>5.2} {:>5.2} {:>5.2} {:>5.2} {:>5} {:>6}  {}",
                i + 1,
                row.dealer.to_string(),
                row.seller.map_or("*".into(), |s| s.to_string()),
                m.shill_score,
                m.auctions,
                m.bidder_tendency,
                m.bidding_ratio,
                m.successive_outbidding,
                m.last_bidding,
                m.auction_bids,
                m.early_bidding,
                m.winning_ratio,
                m.response,
                m.min_raise,
                m.probes,
                m.bids,
                row.flags
                    .iter()
                    .map(|f| f.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            );
        }
        if rows.len() > limit {
            let _ = writeln!(out, "… {} more", rows.len() - limit);
        }
    }
    out
}
