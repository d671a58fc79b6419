//! The Lua scripts the journal runs, how each is composed from its parts, and how it is
//! loaded into Redis.
//!
//! Owns the scripts' text, the `.lua` files under `scripts/` included at build time, and
//! their composition: a writing script is the lease check, its body and (for the append and
//! snapshot scripts) the re-let, in that order. It must not change a script's bytes by
//! accident: Redis knows a script by its SHA-1, and the tests pin every composed script's.
//! The files are those bytes exactly, down to the empty first line and the final newline.
//! This module sends nothing itself.
//!
//! # Conventions shared by all the scripts
//!
//! - `KEYS[1]` = lease, `KEYS[2]` = epoch; `ARGV[1]` = our lease value `{epoch}:{owner}`,
//!   `ARGV[2]` = our epoch, `ARGV[3]` = lease TTL in ms.
//! - Sequence numbers travel as decimal strings and are compared as strings, never through
//!   Lua numbers (doubles), so a seq above 2^53 cannot be silently rounded.
//! - Errors are `redis.error_reply("CODE detail")`; the first word becomes the error code
//!   the Rust side maps to a `StoreError`.
//! - All checks come before the first write. Redis does not roll a script back, so a
//!   script that wrote and then failed would leave half a batch; this order means a refused
//!   call writes nothing.
//!
//! The lease check accepts two states: the lease holds our value, or the lease is gone
//! (expired while Redis or this engine was stalled) and the epoch is still ours, i.e. no
//! other engine has taken the journal since. In the second case the script re-lets the
//! lease to us as part of its writes. That is safe because every takeover increments the
//! epoch atomically with setting the lease (`open.lua`), so "epoch unchanged" proves nobody
//! else wrote; and it spares the engine a restart after a Redis outage longer than the TTL.

use redis::{Cmd, Script};

/// Takes the lease if free: KEYS lease, epoch; ARGV owner, ttl. Returns the new epoch, or
/// errors `HELD {current lease value}`. Incrementing the epoch only on success keeps a
/// refused engine from disturbing the owner.
const OPEN_LUA: &str = include_str!("scripts/open.lua");

/// The lease check, shared by every writing script (prepended to its body). Sets `relet`,
/// which `RELET_LUA` (appended to the append and snapshot scripts) acts on.
const LEASE_CHECK_LUA: &str = include_str!("scripts/lease_check.lua");

/// The end of every writing script (after its writes): re-let a lapsed lease that is
/// still ours (see the lease check), and return 1.
const RELET_LUA: &str = include_str!("scripts/relet.lua");

/// Append: KEYS lease, epoch, last_seq, log, outcomes; ARGV value, epoch, ttl, prev_seq,
/// stream id, last_seq, batch bytes, outcome bytes... Returns 1.
const APPEND_BODY_LUA: &str = include_str!("scripts/append_body.lua");

/// One part of a snapshot: KEYS lease, epoch, staging; ARGV value, epoch, ttl, index,
/// bytes. Part 0 starts the staging list over; any other must come right after the parts
/// staged (`PARTS {staged}` otherwise). Returns 1.
const SNAPSHOT_PART_BODY_LUA: &str = include_str!("scripts/snapshot_part_body.lua");

/// A snapshot's last step: KEYS lease, epoch, last_seq, snapshot, staging, parts; ARGV
/// value, epoch, ttl, seq, part count, byte length. Refuses (`AHEAD {last_seq}`) a
/// snapshot claiming entries the log does not hold, and (`PARTS`) one whose parts are not
/// all staged; otherwise the staged parts become the snapshot's, in one step (`RENAME` is
/// O(1) however large the book).
const SNAPSHOT_BODY_LUA: &str = include_str!("scripts/snapshot_body.lua");

/// Renew: KEYS lease, epoch; ARGV value, epoch, ttl. Returns 1.
const RENEW_BODY_LUA: &str = include_str!("scripts/renew_body.lua");

/// Release: KEYS lease; ARGV value. Deletes the lease only if it is ours.
const RELEASE_LUA: &str = include_str!("scripts/release.lua");

/// A Lua script and the command that loads it (for `NOSCRIPT`, after a Redis restart or a
/// `SCRIPT FLUSH`).
pub(super) struct Lua {
    pub(super) sha: String,
    pub(super) load: Cmd,
    /// The script's text, for `eval_of`.
    code: String,
}

impl Lua {
    pub(super) fn new(code: &str) -> Self {
        let mut load = redis::cmd("SCRIPT");
        load.arg("LOAD").arg(code);
        Self {
            sha: Script::new(code).get_hash().to_owned(),
            load,
            code: code.to_owned(),
        }
    }

    /// `EVAL` with this script's text and the keys and arguments of `evalsha` (one made by
    /// [`Lua::evalsha`]): the same call in one request that needs no script cache. Redis
    /// caches the script as it runs it, so the next `EVALSHA` on that node finds it.
    pub(super) fn eval_of(&self, evalsha: &Cmd) -> Cmd {
        let mut eval = redis::cmd("EVAL");
        eval.arg(&self.code);
        // Skip `EVALSHA` and the sha; numkeys, the keys and the ARGV follow as they were.
        for arg in evalsha.args_iter().skip(2) {
            if let redis::Arg::Simple(bytes) = arg {
                eval.arg(bytes);
            }
        }
        eval
    }

    /// `EVALSHA sha numkeys keys...`; the caller adds the ARGV.
    pub(super) fn evalsha(&self, keys: &[&str]) -> Cmd {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(&self.sha).arg(keys.len()).arg(keys);
        cmd
    }
}

/// The scripts this journal runs.
pub(super) struct Scripts {
    pub(super) open: Lua,
    pub(super) append: Lua,
    pub(super) snapshot_part: Lua,
    pub(super) snapshot: Lua,
    pub(super) renew: Lua,
    pub(super) release: Lua,
}

impl Scripts {
    pub(super) fn new() -> Self {
        let guarded = |body: &str| Lua::new(&format!("{LEASE_CHECK_LUA}{body}"));
        let write = |body: &str| Lua::new(&format!("{LEASE_CHECK_LUA}{body}{RELET_LUA}"));
        Self {
            open: Lua::new(OPEN_LUA),
            append: write(APPEND_BODY_LUA),
            snapshot_part: write(SNAPSHOT_PART_BODY_LUA),
            snapshot: write(SNAPSHOT_BODY_LUA),
            renew: guarded(RENEW_BODY_LUA),
            release: Lua::new(RELEASE_LUA),
        }
    }

    pub(super) fn all(&self) -> [&Lua; 6] {
        [
            &self.open,
            &self.append,
            &self.snapshot_part,
            &self.snapshot,
            &self.renew,
            &self.release,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SHA-1 of every script as Redis runs it (the lease check, the body and the re-let,
    /// composed as `Scripts::new` does). A change to any script's text changes its pin:
    /// such a change must be deliberate, and the new pin written here with it.
    #[test]
    fn scripts_are_pinned() {
        let s = Scripts::new();
        assert_eq!(s.open.sha, "af67319b57a92bcf74a3ee1ca7817a84cb58e074");
        assert_eq!(s.append.sha, "f2bbff2418cd6bd0e37b809af375ce41decff536");
        assert_eq!(
            s.snapshot_part.sha,
            "7c42e4d79d86542f4ccfa855f204605359245e36"
        );
        assert_eq!(s.snapshot.sha, "e8fad70a1759276f20ff754a9322bd8efcc276d9");
        assert_eq!(s.renew.sha, "4c86c39641535dc3b34c83f5b852c03e05abbe65");
        assert_eq!(s.release.sha, "f4f23e4b63559980e4fd8dd1b2bf8e156fe4c29f");
        assert_eq!(s.all().len(), 6, "a script without a pin");
    }

    #[test]
    fn eval_of_keeps_the_keys_and_arguments() {
        let s = Scripts::new();
        let mut evalsha = s.release.evalsha(&["{m}:lease"]);
        evalsha.arg("1:owner").arg(&b"\x00\xff"[..]);
        let eval = s.release.eval_of(&evalsha);
        let args: Vec<Vec<u8>> = eval
            .args_iter()
            .map(|a| match a {
                redis::Arg::Simple(b) => b.to_vec(),
                redis::Arg::Cursor => Vec::new(),
            })
            .collect();
        let expected: Vec<Vec<u8>> = vec![
            b"EVAL".to_vec(),
            RELEASE_LUA.as_bytes().to_vec(),
            b"1".to_vec(),
            b"{m}:lease".to_vec(),
            b"1:owner".to_vec(),
            vec![0, 0xff],
        ];
        assert_eq!(args, expected);
    }
}
