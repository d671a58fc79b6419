//! `gavel replay --verify` is read-only: it creates nothing, repairs nothing, takes no lock
//! or lease (so it runs beside an engine), and a journal that is missing or holds nothing
//! fails with a clear error and a non-zero exit instead of "agreeing" with nothing.

mod support;

use std::path::Path;
use support::gavel::{data_dir, replay_verify, Gavel, GavelOpts, JournalArg};
use support::redis_server::{RedisOpts, RedisServer};

/// Every file under `dir`, as relative paths with their sizes, sorted.
fn listing(dir: &Path) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = std::fs::read_dir(dir)
        .expect("the directory reads")
        .map(|e| {
            let e = e.expect("an entry");
            let len = e.metadata().expect("metadata").len();
            (e.file_name().to_string_lossy().into_owned(), len)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_mistyped_data_path_is_an_error_and_is_not_created() {
    let parent = data_dir();
    let missing = parent.path().join("no-such-journal");
    let (status, out) = replay_verify(&JournalArg::File(missing.clone()));
    assert!(
        !status.success(),
        "replay of a missing path succeeded:\n{out}"
    );
    assert!(
        out.contains("no-such-journal"),
        "the error names the path:\n{out}"
    );
    assert!(out.contains("not a directory"), "{out}");
    assert!(!out.contains("all agree"), "{out}");
    assert!(!missing.exists(), "replay created {}", missing.display());
}

#[test]
fn an_empty_directory_holds_no_journal_and_stays_empty() {
    let dir = data_dir();
    let (status, out) = replay_verify(&JournalArg::File(dir.path().to_path_buf()));
    assert!(
        !status.success(),
        "replay of an empty directory succeeded:\n{out}"
    );
    assert!(out.contains("no journal segment"), "{out}");
    assert!(
        listing(dir.path()).is_empty(),
        "replay wrote into an empty directory"
    );
}

#[tokio::test]
async fn replay_reads_beside_a_running_engine_and_changes_no_file() {
    let dir = data_dir();
    let journal = JournalArg::File(dir.path().to_path_buf());
    let server = Gavel::start(&GavelOpts::new(journal.clone()))
        .await
        .expect("the server starts");
    server.seller("Wang Fang").await;
    server.dealer("Beijing Auto Trust", 10_000_000).await;
    let before = listing(dir.path());
    let (status, out) = replay_verify(&journal);
    assert!(status.success(), "replay beside the engine failed:\n{out}");
    assert!(out.contains("all agree"), "{out}");
    assert_eq!(
        listing(dir.path()),
        before,
        "replay changed the journal's files"
    );
    // The engine was not disturbed: it still takes commands.
    server.seller("Li Wei").await;
}

#[tokio::test]
async fn a_redis_prefix_with_no_journal_is_an_error() {
    let redis = RedisServer::start(RedisOpts::no_aof());
    let journal = JournalArg::Redis {
        url: redis.url(),
        prefix: "nobody-here".into(),
    };
    let (status, out) = replay_verify(&journal);
    assert!(
        !status.success(),
        "replay of an absent prefix succeeded:\n{out}"
    );
    assert!(out.contains("no journal"), "{out}");
    assert!(
        out.contains("nobody-here"),
        "the error names the prefix:\n{out}"
    );
}

#[tokio::test]
async fn replay_reads_a_redis_journal_beside_its_engine_without_the_lease() {
    let redis = RedisServer::start(RedisOpts::no_aof());
    let journal = JournalArg::Redis {
        url: redis.url(),
        prefix: "live".into(),
    };
    let server = Gavel::start(&GavelOpts::new(journal.clone()))
        .await
        .expect("the server starts");
    server.seller("Wang Fang").await;
    let (status, out) = replay_verify(&journal);
    assert!(status.success(), "replay beside the engine failed:\n{out}");
    assert!(out.contains("all agree"), "{out}");
    // The engine kept its lease: it still takes commands.
    server.seller("Li Wei").await;
}
