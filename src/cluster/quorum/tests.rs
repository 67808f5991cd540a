//! Quorum tests over real TCP on 127.0.0.1, each node on its own executor thread.

use std::cell::RefCell;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures_lite::AsyncWriteExt;

use super::*;

/// Applied entries in order; a snapshot is this whole list, so equal lists on two
/// nodes mean they applied the same entries in the same order.
#[derive(Default)]
struct Recorder {
    entries: RefCell<Vec<(u64, Vec<u8>)>>,
    restored_at: RefCell<Option<u64>>,
}

impl StateMachine for Recorder {
    fn apply(&self, index: u64, data: &[u8]) {
        let mut entries = self.entries.borrow_mut();
        if let Some((last, _)) = entries.last() {
            assert!(*last < index, "applied {index} after {last}");
        }
        entries.push((index, data.to_vec()));
    }

    fn snapshot(&self) -> Vec<u8> {
        serde_json::to_vec(&*self.entries.borrow()).unwrap()
    }

    fn restore(&self, index: u64, data: &[u8]) {
        *self.entries.borrow_mut() = serde_json::from_slice(data).unwrap();
        *self.restored_at.borrow_mut() = Some(index);
    }
}

/// Answers `from:body`.
struct Echo;

impl RequestHandler for Echo {
    fn handle(&self, from: NodeId, body: Vec<u8>) -> Pin<Box<dyn Future<Output = Vec<u8>>>> {
        Box::pin(async move {
            let mut out = format!("{from}:").into_bytes();
            out.extend_from_slice(&body);
            out
        })
    }
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn config(
    id: i32,
    voters: &[(NodeId, SocketAddr)],
    dir: &Path,
    snapshot_after: u64,
) -> QuorumConfig {
    let listen = voters
        .iter()
        .find(|(v, _)| v.0 == id)
        .map(|(_, a)| *a)
        .filter(|_| voters.len() > 1);
    QuorumConfig {
        node_id: NodeId(id),
        voters: voters.to_vec(),
        listen,
        dir: dir.to_path_buf(),
        cluster_id: "cluster-a".into(),
        tick: Duration::from_millis(20),
        election_ticks: 10,
        heartbeat_ticks: 1,
        snapshot_after_entries: snapshot_after,
    }
}

fn run_local<F: Future<Output = ()> + 'static>(f: impl FnOnce() -> F + Send + 'static) {
    glommio::LocalExecutorBuilder::default()
        .spawn(f)
        .unwrap()
        .join()
        .unwrap();
}

#[derive(Debug, Clone)]
struct Status {
    is_leader: bool,
    leader: Option<NodeId>,
    applied: u64,
    entries: Vec<(u64, Vec<u8>)>,
    restored_at: Option<u64>,
}

enum Cmd {
    Propose(Vec<u8>, mpsc::Sender<Result<u64, ProposeError>>),
    Status(mpsc::Sender<Status>),
    Stop(mpsc::Sender<()>),
}

/// A quorum member on its own executor thread, driven by commands.
struct NodeThread {
    id: i32,
    cmds: mpsc::Sender<Cmd>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NodeThread {
    fn start(config: QuorumConfig) -> NodeThread {
        let id = config.node_id.0;
        let (cmds, rx) = mpsc::channel::<Cmd>();
        let thread = std::thread::spawn(move || {
            run_local(move || async move {
                let state = Rc::new(Recorder::default());
                let q = Quorum::start(config, state.clone(), Rc::new(Echo))
                    .await
                    .unwrap();
                loop {
                    let Ok(cmd) = rx.try_recv() else {
                        glommio::timer::sleep(Duration::from_millis(2)).await;
                        continue;
                    };
                    match cmd {
                        Cmd::Propose(data, reply) => {
                            let q = q.clone();
                            glommio::spawn_local(async move {
                                let _ = reply.send(q.propose(data).await);
                            })
                            .detach();
                        }
                        Cmd::Status(reply) => {
                            let _ = reply.send(Status {
                                is_leader: q.is_leader(),
                                leader: q.leader(),
                                applied: q.applied(),
                                entries: state.entries.borrow().clone(),
                                restored_at: *state.restored_at.borrow(),
                            });
                        }
                        Cmd::Stop(reply) => {
                            q.stop().await;
                            let _ = reply.send(());
                            return;
                        }
                    }
                }
            })
        });
        NodeThread {
            id,
            cmds,
            thread: Some(thread),
        }
    }

    fn status(&self) -> Status {
        let (tx, rx) = mpsc::channel();
        self.cmds.send(Cmd::Status(tx)).unwrap();
        rx.recv().unwrap()
    }

    fn propose(&self, data: &[u8]) -> Result<u64, ProposeError> {
        let (tx, rx) = mpsc::channel();
        self.cmds.send(Cmd::Propose(data.to_vec(), tx)).unwrap();
        rx.recv_timeout(Duration::from_secs(10)).unwrap()
    }

    fn stop(mut self) {
        let (tx, rx) = mpsc::channel();
        self.cmds.send(Cmd::Stop(tx)).unwrap();
        rx.recv().unwrap();
        self.thread.take().unwrap().join().unwrap();
    }
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until exactly one of `nodes` leads and all of them agree on it.
fn wait_leader(nodes: &[&NodeThread]) -> i32 {
    let mut leader = None;
    wait_until("one agreed leader", || {
        let s: Vec<Status> = nodes.iter().map(|n| n.status()).collect();
        let leaders: Vec<i32> = nodes
            .iter()
            .zip(&s)
            .filter(|(_, s)| s.is_leader)
            .map(|(n, _)| n.id)
            .collect();
        if leaders.len() != 1 || s.iter().any(|s| s.leader != Some(NodeId(leaders[0]))) {
            return false;
        }
        leader = Some(leaders[0]);
        true
    });
    leader.unwrap()
}

fn wait_same_state(nodes: &[&NodeThread], applied_at_least: u64) -> Vec<(u64, Vec<u8>)> {
    let mut state = Vec::new();
    wait_until("the same applied state everywhere", || {
        let s: Vec<Status> = nodes.iter().map(|n| n.status()).collect();
        if s.iter().any(|s| s.applied < applied_at_least) {
            return false;
        }
        if s.windows(2)
            .any(|w| w[0].entries != w[1].entries || w[0].applied != w[1].applied)
        {
            return false;
        }
        state = s[0].entries.clone();
        true
    });
    state
}

#[test]
fn single_voter_leads_at_start_commits_and_restarts_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("__cluster_metadata-0");
    let voters = vec![(NodeId(0), free_addr())];
    let cfg = config(0, &voters, &path, 5);
    let cfg2 = config(0, &voters, &path, 5);
    run_local(move || async move {
        let state = Rc::new(Recorder::default());
        let q = Quorum::start(cfg, state.clone(), Rc::new(Echo))
            .await
            .unwrap();
        assert!(q.is_leader());
        assert_eq!(q.leader(), Some(NodeId(0)));
        let mut last = 0;
        for i in 0..12u8 {
            let index = q.propose(vec![i]).await.unwrap();
            assert!(index > last);
            assert!(q.applied() >= index);
            last = index;
        }
        let before = state.entries.borrow().clone();
        assert_eq!(before.len(), 12);
        assert_eq!(before.last().unwrap().0, last);
        q.stop().await;
        assert_eq!(q.propose(vec![1]).await, Err(ProposeError::Stopped));

        // Restart: the snapshot (taken after 5 entries) is restored, then the
        // committed entries after it are re-applied.
        let state = Rc::new(Recorder::default());
        let q = Quorum::start(cfg2, state.clone(), Rc::new(Echo))
            .await
            .unwrap();
        let restored_at = state.restored_at.borrow().expect("snapshot restored");
        assert!(
            restored_at >= 5 && restored_at < last,
            "snapshot at {restored_at}"
        );
        assert_eq!(*state.entries.borrow(), before);
        assert!(q.is_leader());
        let index = q.propose(b"after".to_vec()).await.unwrap();
        assert!(index > last);
        assert_eq!(state.entries.borrow().last().unwrap().1, b"after");
        q.stop().await;
    });
}

#[test]
fn three_voters_replicate_fail_over_and_catch_up() {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let voters: Vec<(NodeId, SocketAddr)> = (0..3).map(|i| (NodeId(i), free_addr())).collect();
    let cfg = |i: i32| config(i, &voters, dirs[i as usize].path(), 10);
    let mut nodes: Vec<Option<NodeThread>> =
        (0..3).map(|i| Some(NodeThread::start(cfg(i)))).collect();
    let live = |nodes: &[Option<NodeThread>]| -> Vec<i32> {
        nodes.iter().flatten().map(|n| n.id).collect()
    };

    let leader = wait_leader(&nodes.iter().flatten().collect::<Vec<_>>());
    for i in 0..3u8 {
        nodes[leader as usize]
            .as_ref()
            .unwrap()
            .propose(&[b'a', i])
            .unwrap();
    }
    let follower = (0..3).find(|&i| i != leader).unwrap();
    let state = wait_same_state(&nodes.iter().flatten().collect::<Vec<_>>(), 4);
    assert_eq!(state.len(), 3);
    // Not the leader: refused at once, naming the leader.
    assert_eq!(
        nodes[follower as usize].as_ref().unwrap().propose(b"x"),
        Err(ProposeError::NotLeader {
            leader: Some(NodeId(leader))
        })
    );

    // A follower misses a few entries and catches up from the log.
    nodes[follower as usize].take().unwrap().stop();
    for i in 0..3u8 {
        nodes[leader as usize]
            .as_ref()
            .unwrap()
            .propose(&[b'b', i])
            .unwrap();
    }
    nodes[follower as usize] = Some(NodeThread::start(cfg(follower)));
    let state = wait_same_state(&nodes.iter().flatten().collect::<Vec<_>>(), 7);
    assert_eq!(state.len(), 6);
    assert_eq!(
        nodes[follower as usize]
            .as_ref()
            .unwrap()
            .status()
            .restored_at,
        None
    );

    // The leader stops: another is elected and proposals continue, past a snapshot
    // that compacts the log below what the old leader has.
    let old = leader;
    nodes[old as usize].take().unwrap().stop();
    assert_eq!(live(&nodes).len(), 2);
    let leader = wait_leader(&nodes.iter().flatten().collect::<Vec<_>>());
    assert_ne!(leader, old);
    for i in 0..8u8 {
        nodes[leader as usize]
            .as_ref()
            .unwrap()
            .propose(&[b'c', i])
            .unwrap();
    }
    wait_same_state(&nodes.iter().flatten().collect::<Vec<_>>(), 15);

    // The old leader restarts from its directory and catches up through the snapshot.
    nodes[old as usize] = Some(NodeThread::start(cfg(old)));
    let state = wait_same_state(&nodes.iter().flatten().collect::<Vec<_>>(), 15);
    assert_eq!(state.len(), 14);
    let expected: Vec<Vec<u8>> = (0..3u8)
        .map(|i| vec![b'a', i])
        .chain((0..3u8).map(|i| vec![b'b', i]))
        .chain((0..8u8).map(|i| vec![b'c', i]))
        .collect();
    assert_eq!(
        state.iter().map(|(_, d)| d.clone()).collect::<Vec<_>>(),
        expected
    );
    assert!(
        nodes[old as usize]
            .as_ref()
            .unwrap()
            .status()
            .restored_at
            .is_some(),
        "the restarted old leader should have installed the leader's snapshot"
    );
    for n in nodes.into_iter().flatten() {
        n.stop();
    }
}

#[test]
fn a_node_of_another_cluster_is_refused_and_goes_fatal() {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let voters: Vec<(NodeId, SocketAddr)> = (1..=3).map(|i| (NodeId(i), free_addr())).collect();
    let cfgs: Vec<QuorumConfig> = (1..=3)
        .map(|i| {
            let mut c = config(i, &voters, dirs[i as usize - 1].path(), 100);
            if i == 2 {
                c.cluster_id = "cluster-b".into();
            }
            c
        })
        .collect();
    run_local(move || async move {
        let mut started = Vec::new();
        for c in cfgs {
            let q = Quorum::start(c, Rc::new(Recorder::default()), Rc::new(Echo))
                .await
                .unwrap();
            started.push(q);
        }
        // Node 2 is refused by both peers: it is the odd one out.
        let msg = futures_lite::future::or(started[1].fatal(), async {
            glommio::timer::sleep(Duration::from_secs(10)).await;
            panic!("fatal() did not resolve");
        })
        .await;
        assert!(
            msg.contains("cluster-a") && msg.contains("cluster-b") && msg.contains("node 2"),
            "{msg}"
        );
        // Nodes 1 and 3 were refused by node 2 only: they elect a leader and go on.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !started[0].is_leader() && !started[2].is_leader() {
            assert!(
                Instant::now() < deadline,
                "no leader among the healthy nodes"
            );
            glommio::timer::sleep(Duration::from_millis(20)).await;
        }
        let leader = if started[0].is_leader() {
            &started[0]
        } else {
            &started[2]
        };
        leader.propose(b"ok".to_vec()).await.unwrap();
        for q in [&started[0], &started[2]] {
            assert_eq!(futures_lite::future::poll_once(q.fatal()).await, None);
        }
        for q in &started {
            q.stop().await;
        }
    });
}

#[test]
fn controller_client_calls_the_handler() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let addr = free_addr();
    let closed = free_addr();
    run_local(move || async move {
        let mut cfg = config(3, &[(NodeId(3), addr)], &path, 100);
        cfg.listen = Some(addr);
        let q = Quorum::start(cfg, Rc::new(Recorder::default()), Rc::new(Echo))
            .await
            .unwrap();
        let client = ControllerClient::new(NodeId(7), "cluster-a".into());
        let t = Duration::from_secs(5);
        let (x, y) = futures_lite::future::zip(
            client.call(addr, b"x".to_vec(), t),
            client.call(addr, b"y".to_vec(), t),
        )
        .await;
        assert_eq!(x.unwrap(), b"7:x");
        assert_eq!(y.unwrap(), b"7:y");

        // A malformed frame closes only its own connection.
        let mut raw = glommio::net::TcpStream::connect(addr).await.unwrap();
        let hello = frame::Frame::Hello {
            cluster_id: "cluster-a".into(),
            node_id: NodeId(9),
        };
        raw.write_all(&hello.encode()).await.unwrap();
        raw.write_all(&[0, 0, 0, 1, 99]).await.unwrap();
        assert_eq!(client.call(addr, b"z".to_vec(), t).await.unwrap(), b"7:z");

        let stranger = ControllerClient::new(NodeId(8), "cluster-b".into());
        assert_eq!(
            stranger.call(addr, b"x".to_vec(), t).await,
            Err(RpcError::InconsistentClusterId {
                theirs: "cluster-a".into()
            })
        );
        assert!(matches!(
            client.call(closed, b"x".to_vec(), t).await,
            Err(RpcError::Io(_))
        ));
        q.stop().await;
        // The server is gone: the cached connection fails and no answer comes.
        assert!(
            client
                .call(addr, b"x".to_vec(), Duration::from_millis(500))
                .await
                .is_err()
        );
    });
}
