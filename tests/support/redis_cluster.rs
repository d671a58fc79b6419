//! A real Redis Cluster for tests: six `redis-server --cluster-enabled yes` processes on
//! free ports of 127.0.0.1 (three masters, one replica each), joined with
//! `redis-cli --cluster create`, with the AOF settings the test asks for.
//!
//! Every node is a [`RedisServer`] (own temp dir, killed on drop). A node also listens on
//! its cluster bus, `port + 10000`, so both ports are chosen free, below the kernel's
//! ephemeral range. A node timeout of 1 s makes startup and an automatic failover take
//! seconds, not tens. The admin calls here are blocking: call them from a multi-threaded
//! runtime or `spawn_blocking`, so a journal's tasks keep running meanwhile.

use super::redis_server::{Aof, RedisOpts, RedisServer};
use redis::cluster_routing::get_slot;
use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

/// How long a node waits for another before it calls it failing. Short, so an automatic
/// failover takes about 2-3 s.
const NODE_TIMEOUT_MS: u64 = 1_000;

/// How long any wait for the cluster to settle may take before the test fails.
const SETTLE: Duration = Duration::from_secs(30);

/// One line of `CLUSTER NODES`, as far as the tests need it.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    pub id: String,
    pub port: u16,
    pub master: bool,
    /// Marked `fail` or `fail?` by the node asked.
    pub failing: bool,
    /// The master's id, for a replica.
    pub master_id: Option<String>,
    /// Slot ranges served (a master's).
    pub slots: Vec<(u16, u16)>,
}

/// Six nodes in one cluster, killed when dropped.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts six nodes with `aof`, creates the cluster (three masters, one replica each)
    /// and waits until every node says `cluster_state:ok` with all slots covered and every
    /// master has its replica in sync. Panics, with the nodes' logs, if that does not happen.
    pub fn start(aof: Aof) -> Self {
        let nodes: Vec<RedisServer> = (0..6).map(|_| start_node(aof)).collect();
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for node in &nodes {
            create.arg(format!("127.0.0.1:{}", node.port()));
        }
        create.args(["--cluster-replicas", "1", "--cluster-yes"]);
        let out = match create.output() {
            Ok(out) => out,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "redis-cli not found: install it (Debian/Ubuntu: apt-get install -y \
                 redis-server, which brings redis-tools) — tests need a real Redis Cluster"
            ),
            Err(e) => panic!("cannot run redis-cli: {e}"),
        };
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = Self { nodes };
        cluster.wait_until("the cluster forms", |c| c.settled());
        cluster
    }

    /// `redis://` URLs of every node, for a client's seeds.
    pub fn seeds(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port()))
            .collect()
    }

    /// The ports of the nodes started (killed ones included).
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(RedisServer::port).collect()
    }

    /// The node on `port`.
    pub fn node(&self, port: u16) -> &RedisServer {
        self.nodes
            .iter()
            .find(|n| n.port() == port)
            .expect("no node on that port")
    }

    /// The port of the master serving `key`'s slot, as a live node sees it.
    pub fn master_for_key(&self, key: &str) -> u16 {
        let slot = get_slot(key.as_bytes());
        let view = self.view();
        view.iter()
            .find(|n| {
                n.master && !n.failing && n.slots.iter().any(|&(a, b)| (a..=b).contains(&slot))
            })
            .unwrap_or_else(|| panic!("no master serves slot {slot}: {view:?}"))
            .port
    }

    /// The port of `master`'s replica.
    pub fn replica_of(&self, master: u16) -> u16 {
        let view = self.view();
        let id = &view
            .iter()
            .find(|n| n.port == master)
            .expect("master in CLUSTER NODES")
            .id;
        view.iter()
            .find(|n| n.master_id.as_ref() == Some(id) && !n.failing)
            .unwrap_or_else(|| panic!("{master} has no replica: {view:?}"))
            .port
    }

    /// A manual failover of the master serving `key`: `CLUSTER FAILOVER` on its replica
    /// (which waits for the replica to catch up with the master before it takes over),
    /// then waits until every node agrees that the replica serves the slot, the cluster
    /// is ok, and the old master follows the new one in sync. Returns (old, new) master.
    pub fn failover(&self, key: &str) -> (u16, u16) {
        let old = self.master_for_key(key);
        let new = self.replica_of(old);
        let reply: String = redis::cmd("CLUSTER")
            .arg("FAILOVER")
            .query(&mut connect(new))
            .expect("CLUSTER FAILOVER");
        assert_eq!(reply, "OK");
        let slot = get_slot(key.as_bytes());
        self.wait_until("the manual failover completes", |c| {
            c.serves(new, slot) && c.settled()
        });
        (old, new)
    }

    /// Kills (SIGKILL) the master serving `key` and waits for the automatic failover: its
    /// replica serves the slot in every live node's view and the cluster is ok again (the
    /// new master then has no replica). Returns (killed, new) master.
    pub fn kill_master_for(&mut self, key: &str) -> (u16, u16) {
        let old = self.master_for_key(key);
        let new = self.replica_of(old);
        self.nodes
            .iter_mut()
            .find(|n| n.port() == old)
            .expect("master is one of ours")
            .kill();
        let slot = get_slot(key.as_bytes());
        self.wait_until("the automatic failover completes", |c| {
            c.serves(new, slot) && c.live().all(cluster_ok)
        });
        (old, new)
    }

    /// Starts the killed node on `port` again on its own files (its `nodes.conf` names the
    /// cluster), so it rejoins as a replica of whoever took its slots; waits until the
    /// cluster is settled again (every master has a replica in sync).
    pub fn restart_node(&mut self, port: u16) {
        self.nodes
            .iter_mut()
            .find(|n| n.port() == port)
            .expect("node is one of ours")
            .start_again();
        self.wait_until("the restarted node rejoins as a replica", |c| c.settled());
    }

    /// `CLUSTER NODES` as a live node sees it.
    pub fn view(&self) -> Vec<NodeInfo> {
        let port = self.live().next().expect("a live node");
        cluster_nodes(port)
    }

    fn live(&self) -> impl Iterator<Item = u16> + '_ {
        self.nodes
            .iter()
            .filter(|n| n.pid().is_some())
            .map(RedisServer::port)
    }

    /// Whether every live node says `port` serves `slot`.
    fn serves(&self, port: u16, slot: u16) -> bool {
        self.live().all(|asked| {
            cluster_nodes(asked).iter().any(|n| {
                n.port == port && n.master && n.slots.iter().any(|&(a, b)| (a..=b).contains(&slot))
            })
        })
    }

    /// Every node up says the cluster is ok with all slots covered, and every master has
    /// a replica in sync (`WAIT 1` can then succeed anywhere).
    fn settled(&self) -> bool {
        if !self.live().all(cluster_ok) {
            return false;
        }
        let view = cluster_nodes(self.live().next().expect("a live node"));
        let masters: Vec<&NodeInfo> = view
            .iter()
            .filter(|n| n.master && !n.slots.is_empty())
            .collect();
        masters.len() == 3
            && masters.iter().all(|m| {
                info(m.port, "replication")
                    .lines()
                    .any(|l| l.starts_with("slave0:") && l.contains("state=online"))
            })
    }

    fn wait_until(&self, what: &str, done: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + SETTLE;
        while !done(self) {
            if Instant::now() > deadline {
                let logs: Vec<String> = self
                    .nodes
                    .iter()
                    .map(|n| format!("--- node {}:\n{}", n.port(), tail(&n.log(), 20)))
                    .collect();
                panic!(
                    "waiting for {what}: not done within {SETTLE:?}; view: {:#?}\n{}",
                    self.view(),
                    logs.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A node on a port whose bus port (+10000) is free too; a few tries, since another test
/// process may take a port between the check and the start.
fn start_node(aof: Aof) -> RedisServer {
    let opts = RedisOpts {
        aof,
        extra: vec![
            ("cluster-enabled".into(), "yes".into()),
            ("cluster-config-file".into(), "nodes.conf".into()),
            ("cluster-node-timeout".into(), NODE_TIMEOUT_MS.to_string()),
            // A replica's first full sync otherwise waits 5 s for more replicas to join it.
            ("repl-diskless-sync-delay".into(), "0".into()),
        ],
    };
    let mut last_error = String::new();
    for _ in 0..20 {
        let port = free_port_pair();
        match RedisServer::start_on_port(opts.clone(), port) {
            Ok(node) => return node,
            Err(e) => last_error = e,
        }
    }
    panic!("no cluster node would start: {last_error}");
}

/// A port in 20000..30000 (below the ephemeral range, so the bus port stays below 40000
/// and clear of 65535) that is free together with port + 10000.
fn free_port_pair() -> u16 {
    for _ in 0..1000 {
        let port = 20_000 + rand::random::<u16>() % 10_000;
        let free = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
        if free(port) && free(port + 10_000) {
            return port;
        }
    }
    panic!("no free port pair in 20000..30000");
}

fn connect(port: u16) -> redis::Connection {
    redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .expect("node url")
        .get_connection_with_timeout(Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("connect to node {port}: {e}"))
}

fn info(port: u16, section: &str) -> String {
    redis::cmd("INFO")
        .arg(section)
        .query(&mut connect(port))
        .unwrap_or_default()
}

fn cluster_ok(port: u16) -> bool {
    let info: String = redis::cmd("CLUSTER")
        .arg("INFO")
        .query(&mut connect(port))
        .unwrap_or_default();
    info.contains("cluster_state:ok") && info.contains("cluster_slots_ok:16384")
}

/// `CLUSTER NODES` on `port`, parsed.
pub fn cluster_nodes(port: u16) -> Vec<NodeInfo> {
    let text: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query(&mut connect(port))
        .unwrap_or_else(|e| panic!("CLUSTER NODES on {port}: {e}"));
    text.lines()
        .filter_map(|line| {
            // <id> <ip:port@cport> <flags> <master> <ping> <pong> <epoch> <link> <slot>...
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 8 {
                return None;
            }
            let addr = f[1].split('@').next()?;
            let port = addr.rsplit(':').next()?.parse().ok()?;
            let flags: Vec<&str> = f[2].split(',').collect();
            let slots = f[8..]
                .iter()
                .filter(|s| !s.starts_with('['))
                .filter_map(|s| match s.split_once('-') {
                    Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                    None => s.parse().ok().map(|a| (a, a)),
                })
                .collect();
            Some(NodeInfo {
                id: f[0].to_owned(),
                port,
                master: flags.contains(&"master"),
                failing: flags.iter().any(|f| f.starts_with("fail")),
                master_id: (f[3] != "-").then(|| f[3].to_owned()),
                slots,
            })
        })
        .collect()
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
