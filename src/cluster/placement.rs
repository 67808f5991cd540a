//! Replica placement for new partitions across the live brokers, as Kafka
//! spreads them: leaders evenly (least-loaded first), followers on other
//! brokers, and, when brokers have racks, each partition's replicas on distinct
//! racks where there are enough. Pure and deterministic for a given state, so a
//! decision can be checked in tests and replayed.

use std::collections::BTreeMap;

use crate::cluster::state::ClusterState;
use crate::types::NodeId;

/// What a live broker already carries, across every topic.
#[derive(Debug, Clone, Copy, Default)]
struct Load {
    leaders: usize,
    replicas: usize,
}

/// Replica lists for `partitions` new partitions whose first index is
/// `start_index` (the topic's existing partition count), each with
/// `replication_factor` distinct live brokers; the first of each list is the
/// preferred leader.
pub fn place(
    state: &ClusterState,
    partitions: usize,
    start_index: i32,
    replication_factor: usize,
) -> Result<Vec<Vec<NodeId>>, String> {
    let brokers: Vec<(NodeId, Option<&str>)> = state
        .live_brokers()
        .map(|broker| (broker.id, broker.rack.as_deref()))
        .collect();
    if brokers.is_empty() {
        return Err("no live broker".into());
    }
    if replication_factor == 0 {
        return Err("replication factor must be at least 1".into());
    }
    if replication_factor > brokers.len() {
        return Err(format!(
            "replication factor {replication_factor} needs {replication_factor} brokers; only {} live",
            brokers.len()
        ));
    }
    let (mut load, mut pairs) = current_load(state, &brokers);
    let racks_matter = brokers.iter().any(|(_, rack)| rack.is_some());
    let count = brokers.len();
    let start = usize::try_from(start_index).unwrap_or(0);
    let placed = (0..partitions)
        .map(|i| {
            let leader = (0..count)
                .min_by_key(|&b| (load[b].leaders, load[b].replicas, brokers[b].0))
                .expect("at least one live broker");
            load[leader].leaders += 1;
            load[leader].replicas += 1;
            let mut chosen = vec![leader];
            // Among equally loaded brokers, followers go where this leader has
            // the fewest already, then rotate with the partition index (Kafka's
            // replica shift): the partitions a broker leads then fail over to
            // several brokers, not all to the same one.
            let shift = (leader + 1 + start + i) % count;
            while chosen.len() < replication_factor {
                let follower = (0..count)
                    .filter(|b| !chosen.contains(b))
                    .min_by_key(|&b| {
                        let rack_taken =
                            racks_matter && chosen.iter().any(|&c| brokers[c].1 == brokers[b].1);
                        let paired = pairs.get(&(leader, b)).copied().unwrap_or(0);
                        (
                            rack_taken,
                            load[b].replicas,
                            paired,
                            (b + count - shift) % count,
                        )
                    })
                    .expect("replication factor checked against the live brokers");
                load[follower].replicas += 1;
                *pairs.entry((leader, follower)).or_insert(0) += 1;
                chosen.push(follower);
            }
            chosen.into_iter().map(|b| brokers[b].0).collect()
        })
        .collect();
    Ok(placed)
}

/// Leaders and replicas per live broker, indexed like `brokers`, and per
/// (preferred leader, follower) pair the partitions they share.
fn current_load(
    state: &ClusterState,
    brokers: &[(NodeId, Option<&str>)],
) -> (Vec<Load>, BTreeMap<(usize, usize), usize>) {
    let index: BTreeMap<NodeId, usize> = brokers
        .iter()
        .enumerate()
        .map(|(i, (id, _))| (*id, i))
        .collect();
    let mut load = vec![Load::default(); brokers.len()];
    let mut pairs = BTreeMap::new();
    for partition in state.topics.values().flat_map(|t| &t.partitions) {
        if let Some(&i) = index.get(&partition.leader) {
            load[i].leaders += 1;
        }
        let preferred = partition.replicas.first().and_then(|id| index.get(id));
        for (position, replica) in partition.replicas.iter().enumerate() {
            let Some(&i) = index.get(replica) else {
                continue;
            };
            load[i].replicas += 1;
            if let Some(&leader) = preferred
                && position > 0
            {
                *pairs.entry((leader, i)).or_insert(0) += 1;
            }
        }
    }
    (load, pairs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::state::{BrokerState, PartitionState, TopicState};
    use crate::types::LeaderEpoch;

    fn cluster(racks: &[Option<&str>]) -> ClusterState {
        let mut state = ClusterState::default();
        for (i, rack) in racks.iter().enumerate() {
            let id = NodeId(i32::try_from(i).unwrap() + 1);
            state.brokers.insert(
                id,
                BrokerState {
                    id,
                    incarnation: format!("run-{i}"),
                    epoch: 1,
                    host: "127.0.0.1".into(),
                    port: 9092,
                    rack: rack.map(str::to_string),
                    fenced: false,
                },
            );
        }
        state
    }

    fn add_topic(state: &mut ClusterState, name: &str, replicas: Vec<Vec<NodeId>>) {
        let partitions = replicas
            .into_iter()
            .map(|replicas| PartitionState {
                leader: replicas[0],
                isr: replicas.clone(),
                replicas,
                leader_epoch: LeaderEpoch(0),
                partition_epoch: 0,
            })
            .collect();
        state.topics.insert(
            name.into(),
            TopicState {
                id: name.into(),
                partitions,
                configs: BTreeMap::new(),
            },
        );
    }

    fn count(placed: &[Vec<NodeId>], pick: impl Fn(&Vec<NodeId>) -> Vec<NodeId>) -> Vec<usize> {
        let mut counts = BTreeMap::new();
        for replicas in placed {
            for id in pick(replicas) {
                *counts.entry(id).or_insert(0) += 1;
            }
        }
        counts.into_values().collect()
    }

    #[test]
    fn six_partitions_over_three_brokers_lead_two_each() {
        let state = cluster(&[None, None, None]);
        let placed = place(&state, 6, 0, 1).unwrap();
        assert_eq!(count(&placed, |r| vec![r[0]]), vec![2, 2, 2]);
        let placed = place(&state, 6, 0, 3).unwrap();
        assert_eq!(count(&placed, |r| vec![r[0]]), vec![2, 2, 2]);
        for replicas in &placed {
            let mut distinct = replicas.clone();
            distinct.sort();
            distinct.dedup();
            assert_eq!(distinct.len(), 3, "{replicas:?}");
        }
        assert_eq!(place(&state, 6, 0, 3).unwrap(), placed, "deterministic");
    }

    #[test]
    fn followers_of_one_leader_spread_over_the_others() {
        let state = cluster(&[None, None, None, None]);
        let placed = place(&state, 8, 0, 2).unwrap();
        for leader in 1..=4 {
            let mut followers: Vec<NodeId> = placed
                .iter()
                .filter(|r| r[0] == NodeId(leader))
                .map(|r| r[1])
                .collect();
            followers.sort();
            followers.dedup();
            assert!(followers.len() > 1, "leader {leader}: {placed:?}");
        }
    }

    #[test]
    fn added_partitions_fill_the_least_loaded_brokers() {
        let mut state = cluster(&[None, None, None]);
        add_topic(&mut state, "a", vec![vec![NodeId(1)], vec![NodeId(1)]]);
        let placed = place(&state, 4, 2, 1).unwrap();
        assert_eq!(count(&placed, |r| vec![r[0]]), vec![2, 2]);
        assert!(placed.iter().all(|r| r[0] != NodeId(1)), "{placed:?}");
        let placed = place(&state, 7, 2, 1).unwrap();
        let mut leaders = count(&placed, |r| vec![r[0]]);
        leaders[0] += 2;
        assert_eq!(leaders, vec![3, 3, 3]);
    }

    #[test]
    fn replicas_of_a_partition_sit_on_distinct_racks() {
        let state = cluster(&[Some("a"), Some("a"), Some("b"), Some("b")]);
        let rack = |id: NodeId| state.brokers[&id].rack.clone();
        let placed = place(&state, 8, 0, 2).unwrap();
        for replicas in &placed {
            assert_ne!(rack(replicas[0]), rack(replicas[1]), "{placed:?}");
        }
        assert_eq!(count(&placed, |r| vec![r[0]]), vec![2, 2, 2, 2]);
        assert_eq!(count(&placed, Vec::clone), vec![4, 4, 4, 4]);
    }

    #[test]
    fn too_few_live_brokers_is_refused() {
        let mut state = cluster(&[None, None]);
        assert!(place(&state, 1, 0, 3).unwrap_err().contains("only 2 live"));
        assert!(place(&state, 1, 0, 0).is_err());
        for broker in state.brokers.values_mut() {
            broker.fenced = true;
        }
        assert_eq!(place(&state, 1, 0, 1).unwrap_err(), "no live broker");
    }
}
