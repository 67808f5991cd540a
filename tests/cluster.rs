//! Several `sluice` nodes as one cluster (issue 14): three real processes on
//! 127.0.0.1, each a combined broker and controller, one metadata quorum. They
//! are driven by librdkafka clients and by raw requests where a client hides the
//! answer (which node answered, `controller_id`, the group coordinator).
//! Every wait polls with a deadline; no test sleeps to let something happen.

#[path = "support/broker.rs"]
mod broker;
#[path = "support/cluster.rs"]
mod cluster;
#[path = "support/command.rs"]
mod command;
#[path = "support/kafka.rs"]
mod kafka;
#[path = "support/wire.rs"]
mod wire;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cluster::{Cluster, NODE_START_TIMEOUT, SESSION_TIMEOUT, random_cluster_id};
use kafka::{OP_TIMEOUT, TestContext, admin_options};
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{
    ApiKey, ElectLeadersRequest, ElectLeadersResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, MetadataResponse, ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminClient, NewTopic, TopicReplication, TopicResult};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaResult;
use rdkafka::metadata::Metadata;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset, TopicPartitionList};
use sluice::record::builder::{NewRecord, build_batch};
use wire::Wire;

const NODES: usize = 3;
/// Bound on cluster-wide changes (an election, a topic reaching every node's
/// image, a restarted node catching up) on a loaded machine.
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(30);
/// Beyond the session timeout: the controller's check interval, the fencing
/// record's commit and every node applying it.
const FENCING_SLACK: Duration = Duration::from_secs(10);
/// Bound on reading back everything a test produced.
const CONSUME_TIMEOUT: Duration = Duration::from_secs(60);
/// Pause between two attempts of a request that may fail while the cluster
/// recovers.
const RETRY_INTERVAL: Duration = Duration::from_millis(200);

/// Kafka's NOT_LEADER_OR_FOLLOWER error code.
const NOT_LEADER_OR_FOLLOWER: i16 = 6;
/// Kafka's UNKNOWN_TOPIC_OR_PARTITION error code.
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
/// Kafka's INVALID_REQUEST error code.
const INVALID_REQUEST: i16 = 42;
/// Kafka's ELECTION_NOT_NEEDED error code.
const ELECTION_NOT_NEEDED: i16 = 84;
/// Consumer errors kept for a failure message (librdkafka repeats them).
const MAX_ERRORS_KEPT: usize = 20;

/// A record as produced or consumed: where it is, and its key and value.
type Records = BTreeMap<(i32, i64), (String, String)>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_form_a_cluster() {
    let cluster = Cluster::start(NODES);
    let all = all_node_ids();
    for node in 0..NODES {
        let metadata = cluster.wait_for_node_metadata(
            node,
            "Metadata lists all three brokers",
            CLUSTER_TIMEOUT,
            |m| broker_ids(m) == all,
        );
        for broker in &metadata.brokers {
            let id = usize::try_from(broker.node_id.0).expect("a listed broker id is a node");
            assert_eq!(broker.host.as_str(), "127.0.0.1", "node {node}: {broker:?}");
            assert_eq!(
                broker.port,
                i32::from(cluster.broker_port(id)),
                "node {node} lists broker {id} with its own port: {broker:?}"
            );
        }
        assert!(
            all.contains(&metadata.controller_id.0),
            "node {node}'s controller_id {:?} is a listed broker",
            metadata.controller_id
        );
    }

    let topic = "spread";
    let created = create_topic(&cluster, 2, topic, 6, 1)
        .await
        .expect("CreateTopics through node 2");
    assert_eq!(created, vec![Ok(topic.to_string())]);
    let mut views = Vec::new();
    for node in 0..NODES {
        let metadata = cluster.wait_for_node_metadata(
            node,
            "spread is listed with 6 partitions, each with a leader",
            CLUSTER_TIMEOUT,
            |m| {
                partition_leaders(m, topic)
                    .is_some_and(|leaders| leaders.len() == 6 && leaders.values().all(|l| *l >= 0))
            },
        );
        views.push(partition_leaders(&metadata, topic).expect("just checked"));
    }
    assert!(
        views.iter().all(|view| *view == views[0]),
        "every node lists the same leaders: {views:?}"
    );
    let leaders = views.swap_remove(0);
    let leading: BTreeSet<i32> = leaders.values().copied().collect();
    assert_eq!(
        leading, all,
        "leaders spread over every broker: {leaders:?}"
    );

    // The producer knows node 0 alone and must find the other leaders itself.
    let producer = producer(&cluster, 0);
    let mut produced = Records::new();
    for partition in 0..6 {
        for n in 0..5 {
            let key = format!("p{partition}-k{n}");
            let value = format!("spread p{partition} #{n}");
            let offset = produce(&producer, topic, partition, &key, &value).await;
            produced.insert((partition, offset), (key, value));
        }
    }

    let group = "cluster-group";
    let coordinators: Vec<i32> = (0..NODES)
        .map(|node| group_coordinator(&cluster, node, group))
        .collect();
    assert!(
        coordinators.iter().all(|c| *c == coordinators[0]) && all.contains(&coordinators[0]),
        "every node names the same live coordinator for {group}: {coordinators:?}"
    );
    assert!(
        leaders.values().any(|leader| *leader != coordinators[0]),
        "some partitions lead elsewhere than the coordinator {}: {leaders:?}",
        coordinators[0]
    );
    let consumer: BaseConsumer<TestContext> = cluster
        .client_config(1)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100")
        .create_with_context(TestContext)
        .expect("create the group consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let consumed = consume(&consumer, produced.len());
    assert_eq!(consumed, produced, "the group reads back what was produced");

    // Kafka's only limit on the replication factor: the live brokers.
    let refused = create_topic(&cluster, 0, "four-copies", 3, 4)
        .await
        .expect("CreateTopics request");
    assert_eq!(
        refused,
        vec![Err((
            "four-copies".to_string(),
            RDKafkaErrorCode::InvalidReplicationFactor
        ))]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_active_controller_dies() {
    let mut cluster = Cluster::start(NODES);
    cluster.wait_for_node_metadata(
        0,
        "Metadata lists all three brokers",
        CLUSTER_TIMEOUT,
        |m| broker_ids(m) == all_node_ids(),
    );
    let old_leader = node_index(cluster.wait_for_quorum_leader(CLUSTER_TIMEOUT));
    cluster.kill(old_leader);
    let survivor = (old_leader + 1) % NODES;

    let topic = "after-failover";
    let deadline = Instant::now() + CLUSTER_TIMEOUT;
    let mut failures = Vec::new();
    loop {
        let outcome = create_topic(&cluster, survivor, topic, 3, 1).await;
        match &outcome {
            Ok(results) if *results == vec![Ok(topic.to_string())] => break,
            // An earlier attempt was committed, its answer lost with the leader.
            Ok(results)
                if !failures.is_empty()
                    && *results
                        == vec![Err((
                            topic.to_string(),
                            RDKafkaErrorCode::TopicAlreadyExists,
                        ))] =>
            {
                break;
            }
            _ => failures.push(format!("{outcome:?}")),
        }
        assert!(
            Instant::now() < deadline,
            "CreateTopics through node {survivor} did not succeed within {CLUSTER_TIMEOUT:?} of \
             killing the quorum leader {old_leader}; attempts: {failures:?}"
        );
        tokio::time::sleep(RETRY_INTERVAL).await;
    }
    let new_leader = node_index(cluster.wait_for_quorum_leader(CLUSTER_TIMEOUT));
    assert_ne!(new_leader, old_leader, "the survivors elected a new leader");

    cluster.restart(old_leader);
    cluster.wait_for_node_metadata(
        old_leader,
        "the restarted node lists all brokers and the topic created while it was down",
        CLUSTER_TIMEOUT,
        |m| {
            broker_ids(m) == all_node_ids()
                && partition_leaders(m, topic)
                    .is_some_and(|leaders| leaders.len() == 3 && leaders.values().all(|l| *l >= 0))
        },
    );
    let leader = cluster.wait_for_quorum_leader(CLUSTER_TIMEOUT);
    assert_ne!(
        node_index(leader),
        old_leader,
        "the old leader rejoined as a follower of the new one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_dies_and_comes_back() {
    let mut cluster = Cluster::start(NODES);
    let topic = "comes-back";
    let created = create_topic(&cluster, 0, topic, 6, 1)
        .await
        .expect("CreateTopics");
    assert_eq!(created, vec![Ok(topic.to_string())]);
    let metadata = cluster.wait_for_node_metadata(
        0,
        "comes-back has a leader for each of its 6 partitions, on every broker",
        CLUSTER_TIMEOUT,
        |m| {
            partition_leaders(m, topic).is_some_and(|leaders| {
                leaders.len() == 6
                    && leaders.values().copied().collect::<BTreeSet<_>>() == all_node_ids()
            })
        },
    );
    let leaders = partition_leaders(&metadata, topic).expect("just checked");
    let epochs_before = leader_epochs(&metadata, topic);

    let producer = producer(&cluster, 0);
    let mut produced = Records::new();
    for n in 0..100 {
        let partition = n % 6;
        let key = format!("k{n}");
        let value = format!("record {n}");
        let offset = produce(&producer, topic, partition, &key, &value).await;
        produced.insert((partition, offset), (key, value));
    }

    let controller = node_index(cluster.wait_for_quorum_leader(CLUSTER_TIMEOUT));
    let victim = (controller + 1) % NODES;
    let victim_id = cluster.node_id(victim);
    let orphans: BTreeSet<i32> = leaders
        .iter()
        .filter(|(_, leader)| **leader == victim_id)
        .map(|(partition, _)| *partition)
        .collect();
    assert!(
        !orphans.is_empty(),
        "node {victim} leads some of {leaders:?}"
    );

    let killed_at = Instant::now();
    cluster.kill(victim);
    cluster.wait_for_metadata(
        controller,
        &format!(
            "node {victim} is no longer listed, its partitions {orphans:?} have no leader and \
             the others keep theirs"
        ),
        SESSION_TIMEOUT + FENCING_SLACK,
        |m| {
            !rdkafka_broker_ids(m).contains(&victim_id)
                && rdkafka_partitions(m, topic).is_some_and(|partitions| {
                    partitions.len() == 6
                        && partitions.iter().all(|(partition, (leader, error))| {
                            if orphans.contains(partition) {
                                *leader == -1
                                    || *error == Some(RDKafkaErrorCode::LeaderNotAvailable)
                            } else {
                                Some(leader) == leaders.get(partition)
                            }
                        })
                })
        },
    );
    eprintln!(
        "node {victim} fenced and its partitions offline {:?} after SIGKILL",
        killed_at.elapsed()
    );

    cluster.restart(victim);
    cluster.wait_for_metadata(
        controller,
        &format!("node {victim} is listed again and every partition has a leader"),
        CLUSTER_TIMEOUT,
        |m| {
            rdkafka_broker_ids(m) == all_node_ids()
                && rdkafka_partitions(m, topic).is_some_and(|partitions| {
                    partitions.len() == 6
                        && partitions
                            .values()
                            .all(|(leader, error)| *leader >= 0 && error.is_none())
                })
        },
    );

    let metadata = cluster.wait_for_node_metadata(
        controller,
        "every partition has a leader again",
        CLUSTER_TIMEOUT,
        |m| partition_leaders(m, topic).is_some_and(|l| l.values().all(|leader| *leader >= 0)),
    );
    let epochs_after = leader_epochs(&metadata, topic);
    for partition in &orphans {
        assert!(
            epochs_after[partition] > epochs_before[partition],
            "partition {partition} went offline and came back, so its leader epoch rose: \
             before {epochs_before:?}, after {epochs_after:?}"
        );
    }

    let consumer: BaseConsumer<TestContext> = cluster
        .client_config(controller)
        .set("group.id", "sluice-test-assign-only")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "error")
        .set("fetch.wait.max.ms", "100")
        .create_with_context(TestContext)
        .expect("create the consumer");
    let mut assignment = TopicPartitionList::new();
    for partition in 0..6 {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .expect("add a partition to the assignment");
    }
    consumer.assign(&assignment).expect("assign");
    let consumed = consume(&consumer, produced.len());
    assert_eq!(
        consumed, produced,
        "every record comes back at the offset it was acknowledged at"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_does_not_lead_names_the_leader() {
    let cluster = Cluster::start(NODES);
    let topic = "led-elsewhere";
    let created = create_topic(&cluster, 0, topic, 3, 1)
        .await
        .expect("CreateTopics");
    assert_eq!(created, vec![Ok(topic.to_string())]);
    let metadata = cluster.wait_for_node_metadata(
        0,
        "led-elsewhere has a leader for each of its 3 partitions",
        CLUSTER_TIMEOUT,
        |m| {
            partition_leaders(m, topic).is_some_and(|l| l.len() == 3 && l.values().all(|x| *x >= 0))
        },
    );
    let leaders = partition_leaders(&metadata, topic).expect("just checked");
    let epochs = leader_epochs(&metadata, topic);
    for (partition, leader) in &leaders {
        let leader_node = node_index(*leader);
        let answer = produce_raw(&cluster, leader_node, topic, *partition);
        assert_eq!(
            answer.error_code, 0,
            "the leader takes the batch: {answer:?}"
        );
        let elsewhere = (leader_node + 1) % NODES;
        let response = produce_raw_response(&cluster, elsewhere, topic, *partition);
        let answer = &response.responses[0].partition_responses[0];
        assert_eq!(
            answer.error_code, NOT_LEADER_OR_FOLLOWER,
            "node {elsewhere} does not lead {topic}/{partition}: {answer:?}"
        );
        assert_eq!(
            (
                answer.current_leader.leader_id.0,
                answer.current_leader.leader_epoch
            ),
            (*leader, epochs[partition]),
            "the answer names the current leader and its epoch (KIP-951): {answer:?}"
        );
        assert!(
            response
                .node_endpoints
                .iter()
                .any(|endpoint| endpoint.node_id.0 == *leader
                    && endpoint.port == i32::from(cluster.broker_port(leader_node))),
            "the answer carries the leader's endpoint: {:?}",
            response.node_endpoints
        );
    }
}

/// ElectLeaders (KIP-183, KIP-460): with the automatic rebalance off, a
/// preferred replica that died and came back in sync leads again only once an
/// administrator asks for a preferred election.
#[test]
fn elect_leaders_gives_leadership_back_to_the_preferred_replica() {
    let mut cluster = Cluster::formatted(&vec![random_cluster_id(); NODES])
        .with_env("SLUICE_AUTO_LEADER_REBALANCE_ENABLE", "false");
    cluster.start_all();
    let topic = "elect";
    cluster.create_topic(topic, NODES as i32, 3, &[]);
    let view = cluster.partition_state(topic, 0).expect("elect/0 is known");
    let preferred = view.replicas[0];
    assert_eq!(
        view.leader, preferred,
        "the first replica leads at creation"
    );
    let victim = cluster.node_index(preferred);

    cluster.kill(victim);
    cluster.wait_for_partition_leader(
        topic,
        0,
        &format!("leadership of elect/0 moved away from node {victim}"),
        SESSION_TIMEOUT + FENCING_SLACK,
        |leader| leader != preferred,
    );
    cluster.restart(victim);
    cluster.wait_for_isr(topic, 0, NODES, CLUSTER_TIMEOUT);
    assert_ne!(
        cluster.partition_leader(topic, 0),
        Some(preferred),
        "nothing but ElectLeaders gives the leadership back"
    );

    let asked = |partitions: Vec<i32>| {
        Some(vec![
            TopicPartitions::default()
                .with_topic(TopicName(StrBytes::from_static_str(topic)))
                .with_partitions(partitions),
        ])
    };
    let elsewhere = (victim + 1) % NODES;
    let mut wire = Wire::connect(&cluster.node_bootstrap(elsewhere));
    let request = ElectLeadersRequest::default()
        .with_election_type(0)
        .with_topic_partitions(asked(vec![0, 1, 2, 7]))
        .with_timeout_ms(30_000);
    let (response, _): (ElectLeadersResponse, _) = wire.call(ApiKey::ElectLeaders, 2, &request);
    assert_eq!(response.error_code, 0, "{response:?}");
    let errors: Vec<(i32, i16)> = response
        .replica_election_results
        .iter()
        .flat_map(|t| &t.partition_result)
        .map(|p| (p.partition_id, p.error_code))
        .collect();
    assert_eq!(
        errors,
        vec![
            (0, 0),
            (1, ELECTION_NOT_NEEDED),
            (2, ELECTION_NOT_NEEDED),
            (7, UNKNOWN_TOPIC_OR_PARTITION)
        ],
        "{response:?}"
    );
    assert_eq!(
        cluster
            .partition_seen_by(elsewhere, topic, 0)
            .map(|view| view.leader),
        Some(preferred),
        "the answering node applied the election before it answered"
    );
    cluster.wait_for_partition_leader(
        topic,
        0,
        &format!("node {victim} leads elect/0 again, on every node"),
        CLUSTER_TIMEOUT,
        |leader| leader == preferred,
    );

    // v0 (no election type): every partition, only those elected reported.
    let all = ElectLeadersRequest::default().with_topic_partitions(None);
    let (response, _): (ElectLeadersResponse, _) = wire.call(ApiKey::ElectLeaders, 0, &all);
    assert!(
        response.replica_election_results.is_empty(),
        "every partition is led by its preferred replica: {response:?}"
    );
    let unclean = ElectLeadersRequest::default()
        .with_election_type(1)
        .with_topic_partitions(asked(vec![0]));
    let (response, _): (ElectLeadersResponse, _) = wire.call(ApiKey::ElectLeaders, 1, &unclean);
    assert_eq!(
        response.replica_election_results[0].partition_result[0].error_code, ELECTION_NOT_NEEDED,
        "an unclean election leaves a led partition alone: {response:?}"
    );
    let unknown = unclean.with_election_type(7);
    let (response, _): (ElectLeadersResponse, _) = wire.call(ApiKey::ElectLeaders, 2, &unknown);
    assert_eq!(response.error_code, INVALID_REQUEST, "{response:?}");
}

#[test]
fn a_node_stopped_cleanly_leaves_and_rejoins() {
    let mut cluster = Cluster::start(NODES);
    cluster.wait_for_node_metadata(
        0,
        "Metadata lists all three brokers",
        CLUSTER_TIMEOUT,
        |m| broker_ids(m) == all_node_ids(),
    );
    let controller = node_index(cluster.wait_for_quorum_leader(CLUSTER_TIMEOUT));
    let leaving = (controller + 2) % NODES;
    let leaving_id = cluster.node_id(leaving);
    // SIGTERM: controlled shutdown, then exit status 0 (the harness checks both).
    cluster.stop(leaving);
    cluster.wait_for_node_metadata(
        controller,
        &format!("node {leaving}, stopped, is no longer listed"),
        SESSION_TIMEOUT + FENCING_SLACK,
        |m| !broker_ids(m).contains(&leaving_id),
    );
    cluster.restart(leaving);
    cluster.wait_for_node_metadata(
        leaving,
        "the restarted node lists all three brokers",
        CLUSTER_TIMEOUT,
        |m| broker_ids(m) == all_node_ids(),
    );
}

#[test]
fn a_node_from_another_cluster_is_refused() {
    let ours = random_cluster_id();
    let theirs = random_cluster_id();
    assert_ne!(ours, theirs, "random-cluster-id gives a new id each time");
    let mut cluster = Cluster::formatted(&[ours.clone(), ours.clone(), theirs.clone()]);
    for node in 0..NODES {
        cluster.spawn(node);
    }
    let status = cluster.wait_for_exit(2, NODE_START_TIMEOUT);
    assert!(
        !status.success(),
        "node 2, formatted for another cluster, exited with {status}"
    );
    let log = cluster.node_log(2);
    assert!(
        (log.contains(&ours) && log.contains(&theirs)) || log.to_lowercase().contains("cluster id"),
        "node 2's log names both cluster ids ({ours}, {theirs}) or says `cluster id`:\n{log}"
    );

    for node in 0..2 {
        cluster.wait_until_serving(node);
    }
    let two_nodes: BTreeSet<i32> = [0, 1].into();
    cluster.wait_for_node_metadata(
        0,
        "the two nodes of the cluster list each other, and not node 2",
        CLUSTER_TIMEOUT,
        |m| broker_ids(m) == two_nodes,
    );
}

/// A broker-only node (`process.roles=broker`) is no voter: it follows the
/// metadata of the three controllers' quorum, registers, leads its share of a
/// topic's partitions and serves them; the quorum's voters do not include it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_only_node_follows_the_quorum_and_serves() {
    let mut cluster = Cluster::formatted(&vec![random_cluster_id(); NODES + 1]).with_broker_only(1);
    cluster.start_all();
    let broker_only = NODES;
    let four: BTreeSet<i32> = (0..=NODES as i32).collect();
    cluster.wait_for_node_metadata(
        broker_only,
        "the broker-only node lists the three controllers and itself",
        CLUSTER_TIMEOUT,
        |m| broker_ids(m) == four,
    );
    assert!(
        !cluster.quorum_voters().contains(&format!("{broker_only}@")),
        "the broker-only node is not a voter: {}",
        cluster.quorum_voters()
    );

    let topic = "followed";
    let created = create_topic(&cluster, broker_only, topic, 8, 1)
        .await
        .expect("CreateTopics through the broker-only node");
    assert_eq!(created, vec![Ok(topic.to_string())]);
    let metadata = cluster.wait_for_node_metadata(
        broker_only,
        "followed has 8 partitions with leaders, some on the broker-only node",
        CLUSTER_TIMEOUT,
        |m| {
            partition_leaders(m, topic).is_some_and(|leaders| {
                leaders.len() == 8
                    && leaders.values().all(|l| *l >= 0)
                    && leaders.values().any(|l| *l == broker_only as i32)
            })
        },
    );
    let leaders = partition_leaders(&metadata, topic).expect("listed");
    let producer = producer(&cluster, 0);
    let mut produced = Records::new();
    for &partition in leaders.keys() {
        let key = format!("k{partition}");
        let value = format!("v{partition}");
        let offset = produce(&producer, topic, partition, &key, &value).await;
        produced.insert((partition, offset), (key, value));
    }
    let consumer: BaseConsumer<TestContext> = cluster
        .client_config(broker_only)
        .set("group.id", "sluice-test-assign-only")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "error")
        .set("fetch.wait.max.ms", "100")
        .create_with_context(TestContext)
        .expect("create the consumer");
    let mut assignment = TopicPartitionList::new();
    for &partition in leaders.keys() {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .expect("add a partition to the assignment");
    }
    consumer.assign(&assignment).expect("assign");
    assert_eq!(consume(&consumer, produced.len()), produced);
}

fn all_node_ids() -> BTreeSet<i32> {
    (0..NODES)
        .map(|node| i32::try_from(node).expect("node fits i32"))
        .collect()
}

fn node_index(id: i32) -> usize {
    usize::try_from(id).expect("a node id is not negative")
}

fn broker_ids(metadata: &MetadataResponse) -> BTreeSet<i32> {
    metadata.brokers.iter().map(|b| b.node_id.0).collect()
}

/// Partition → leader of `topic` in `metadata`, if it is listed without error.
fn partition_leaders(metadata: &MetadataResponse, topic: &str) -> Option<BTreeMap<i32, i32>> {
    let listed = metadata
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|name| name.as_str() == topic))?;
    (listed.error_code == 0).then(|| {
        listed
            .partitions
            .iter()
            .map(|p| (p.partition_index, p.leader_id.0))
            .collect()
    })
}

/// Partition → leader epoch of `topic` in `metadata`.
fn leader_epochs(metadata: &MetadataResponse, topic: &str) -> BTreeMap<i32, i32> {
    metadata
        .topics
        .iter()
        .filter(|t| t.name.as_ref().is_some_and(|name| name.as_str() == topic))
        .flat_map(|t| &t.partitions)
        .map(|p| (p.partition_index, p.leader_epoch))
        .collect()
}

fn rdkafka_broker_ids(metadata: &Metadata) -> BTreeSet<i32> {
    metadata.brokers().iter().map(|b| b.id()).collect()
}

/// Partition → (leader, error) of `topic` as librdkafka reports it, if the topic
/// is listed without error.
fn rdkafka_partitions(
    metadata: &Metadata,
    topic: &str,
) -> Option<BTreeMap<i32, (i32, Option<RDKafkaErrorCode>)>> {
    let listed = metadata.topics().iter().find(|t| t.name() == topic)?;
    listed.error().is_none().then(|| {
        listed
            .partitions()
            .iter()
            .map(|p| (p.id(), (p.leader(), p.error().map(RDKafkaErrorCode::from))))
            .collect()
    })
}

/// CreateTopics through an admin client that knows node `via` alone.
async fn create_topic(
    cluster: &Cluster,
    via: usize,
    topic: &str,
    partitions: i32,
    replication_factor: i32,
) -> KafkaResult<Vec<TopicResult>> {
    let admin: AdminClient<TestContext> = cluster
        .client_config(via)
        .create_with_context(TestContext)
        .expect("create the admin client");
    let new_topic = NewTopic::new(
        topic,
        partitions,
        TopicReplication::Fixed(replication_factor),
    );
    tokio::time::timeout(
        OP_TIMEOUT,
        admin.create_topics(&[new_topic], &admin_options()),
    )
    .await
    .expect("CreateTopics answered within the admin timeouts")
}

/// A producer that knows node `via` alone: acks=all, bounded delivery time.
fn producer(cluster: &Cluster, via: usize) -> FutureProducer<TestContext> {
    cluster
        .client_config(via)
        .set("acks", "all")
        .set("enable.idempotence", "false")
        .set("message.timeout.ms", "20000")
        .set("request.timeout.ms", "10000")
        .create_with_context(TestContext)
        .expect("create the producer")
}

/// Produces one keyed record to `partition` and returns the offset it got.
async fn produce(
    producer: &FutureProducer<TestContext>,
    topic: &str,
    partition: i32,
    key: &str,
    value: &str,
) -> i64 {
    let record = FutureRecord::to(topic)
        .partition(partition)
        .key(key)
        .payload(value);
    let delivery = producer
        .send(record, OP_TIMEOUT)
        .await
        .unwrap_or_else(|(error, _)| panic!("produce {key} to {topic}/{partition}: {error}"));
    assert_eq!(delivery.partition, partition);
    delivery.offset
}

/// The broker that node `node` names as `group`'s coordinator (FindCoordinator
/// v3 on a raw connection: librdkafka does not expose it).
fn group_coordinator(cluster: &Cluster, node: usize, group: &str) -> i32 {
    let mut wire = Wire::connect(&cluster.node_bootstrap(node));
    let request = FindCoordinatorRequest::default()
        .with_key(StrBytes::from_string(group.to_string()))
        .with_key_type(0);
    let deadline = Instant::now() + CLUSTER_TIMEOUT;
    loop {
        let (response, _): (FindCoordinatorResponse, _) =
            wire.call(ApiKey::FindCoordinator, 3, &request);
        if response.error_code == 0 {
            return response.node_id.0;
        }
        // COORDINATOR_NOT_AVAILABLE while the offsets topic is created or loads.
        assert!(
            Instant::now() < deadline,
            "FindCoordinator({group}) on node {node} kept failing: {response:?}"
        );
        std::thread::sleep(RETRY_INTERVAL);
    }
}

/// One record to `topic`/`partition` on node `node`, Produce v12 (acks=all) on a
/// raw connection, so the answer's leader hints can be read.
fn produce_raw_response(
    cluster: &Cluster,
    node: usize,
    topic: &str,
    partition: i32,
) -> ProduceResponse {
    let batch = build_batch(&[NewRecord {
        key: Some(b"k"),
        value: Some(b"v"),
        timestamp_ms: now_ms(),
    }]);
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(Bytes::from(batch))),
                ]),
        ]);
    let mut wire = Wire::connect(&cluster.node_bootstrap(node));
    let (response, _): (ProduceResponse, _) = wire.call(ApiKey::Produce, 12, &request);
    assert_eq!(response.responses.len(), 1, "{response:?}");
    assert_eq!(
        response.responses[0].partition_responses.len(),
        1,
        "{response:?}"
    );
    response
}

fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970");
    i64::try_from(since_epoch.as_millis()).expect("milliseconds fit i64")
}

/// The partition's part of [`produce_raw_response`].
fn produce_raw(
    cluster: &Cluster,
    node: usize,
    topic: &str,
    partition: i32,
) -> PartitionProduceResponse {
    produce_raw_response(cluster, node, topic, partition).responses[0].partition_responses[0]
        .clone()
}

/// Polls `consumer` until it has read `expected` records (panicking on a
/// duplicate position) or [`CONSUME_TIMEOUT`] passes.
fn consume(consumer: &BaseConsumer<TestContext>, expected: usize) -> Records {
    let deadline = Instant::now() + CONSUME_TIMEOUT;
    let mut consumed = Records::new();
    let mut errors = Vec::new();
    while consumed.len() < expected {
        assert!(
            Instant::now() < deadline,
            "read {} of {expected} records within {CONSUME_TIMEOUT:?}; errors: {errors:?}",
            consumed.len()
        );
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                let text = |bytes: Option<&[u8]>| {
                    String::from_utf8(bytes.expect("every record has it").to_vec()).expect("utf-8")
                };
                let record = (text(message.key()), text(message.payload()));
                let position = (message.partition(), message.offset());
                let previous = consumed.insert(position, record);
                assert!(previous.is_none(), "read {position:?} twice");
            }
            Some(Err(error)) if errors.len() < MAX_ERRORS_KEPT => errors.push(error.to_string()),
            Some(Err(_)) => {}
            None => {}
        }
    }
    consumed
}
