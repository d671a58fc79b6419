//! An HTTP client for one running server, in the contract's terms: calls with a token,
//! accounts an operator creates, polling for a background effect, and
//! `gavel replay --verify` over a stopped server's file journal.

use super::client::call;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;

/// The public API of one server, with its operator's token.
pub struct Api {
    pub addr: SocketAddr,
    pub admin: &'static str,
}

impl Api {
    pub fn new(addr: SocketAddr, admin: &'static str) -> Self {
        Self { addr, admin }
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        call(self.addr, method, path, Some(token), body.as_ref()).await
    }

    /// A call that must answer `want`; its body.
    pub async fn ok(&self, method: &str, path: &str, token: &str, body: Value, want: u16) -> Value {
        let (status, reply) = self.call(method, path, token, Some(body)).await;
        assert_eq!(status, want, "{method} {path}: {reply}");
        reply
    }

    /// The error code of a call (body `{}`) that must fail with `status`.
    pub async fn fails(&self, method: &str, path: &str, token: &str, status: u16) -> Value {
        let (got, reply) = self.call(method, path, token, Some(json!({}))).await;
        assert_eq!(got, status, "{method} {path}: {reply}");
        reply["error"]["code"].clone()
    }

    pub async fn get(&self, path: &str, token: &str) -> Value {
        let (status, reply) = self.call("GET", path, token, None).await;
        assert_eq!(status, 200, "GET {path}: {reply}");
        reply
    }

    /// `POST /v1/sellers` or `/v1/dealers` or `/v1/service-tokens`: (id, token).
    pub async fn account(&self, path: &str, body: Value) -> (String, String) {
        let r = self.ok("POST", path, self.admin, body, 201).await;
        (
            r["id"].as_str().expect("id").to_string(),
            r["token"].as_str().expect("token").to_string(),
        )
    }

    /// `POST /v1/dealers` with a deposit in fen: (id, token).
    pub async fn dealer(&self, name: &str, deposit: u64) -> (String, String) {
        self.account("/v1/dealers", json!({"name": name, "deposit": deposit}))
            .await
    }

    /// Polls `path` until `done` holds (a durable effect of a background task or a timer).
    pub async fn until(&self, path: &str, token: &str, done: impl Fn(&Value) -> bool) -> Value {
        let mut last = Value::Null;
        for _ in 0..200 {
            last = self.get(path, token).await;
            if done(&last) {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{path} never got there; last: {last}");
    }
}

/// `gavel replay --verify` over a stopped server's file journal agrees.
pub fn verify_replay(dir: &std::path::Path) {
    let (status, out) =
        super::gavel::replay_verify(&super::gavel::JournalArg::File(dir.to_path_buf()));
    assert!(status.success(), "gavel replay --verify failed:\n{out}");
    assert!(out.contains("all agree"), "{out}");
}
