//! Renders the shards' snapshots in the Prometheus text format, through the
//! `prometheus-client` crate's encoder: one family per metric, one series per
//! shard, topic, partition, API or group as its labels say. docs/operations.md
//! lists every family.

use std::collections::{BTreeMap, HashMap};

use kafka_protocol::messages::ApiKey;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::group::state::GroupState;
use crate::metrics::histogram::HistogramSample;
use crate::metrics::snapshot::ShardSnapshot;
use crate::protocol::error_code::kafka_name;

/// Every group state, so a state with no group reads 0 rather than vanishing.
const GROUP_STATES: [GroupState; 5] = [
    GroupState::Empty,
    GroupState::PreparingRebalance,
    GroupState::CompletingRebalance,
    GroupState::Stable,
    GroupState::Dead,
];

/// The Prometheus text of `snapshots`; with `aggregate`, series per partition
/// are summed per topic (and group lag per group and topic).
pub fn render(snapshots: Vec<ShardSnapshot>, aggregate: bool) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Exposition {
        snapshots,
        aggregate,
    }));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)
        .expect("writing to a String cannot fail");
    text
}

#[derive(Debug)]
struct Exposition {
    snapshots: Vec<ShardSnapshot>,
    aggregate: bool,
}

type Labels = Vec<(&'static str, String)>;

/// One family's series, then written in one go.
struct Family {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    series: Vec<(Labels, Value)>,
}

enum Value {
    Counter(u64),
    Seconds(f64),
    Gauge(i64),
    Histogram(HistogramSample),
}

impl Family {
    fn new(name: &'static str, help: &'static str, kind: MetricType) -> Family {
        Family {
            name,
            help,
            kind,
            series: Vec::new(),
        }
    }

    fn counter(&mut self, labels: Labels, value: u64) {
        debug_assert!(matches!(self.kind, MetricType::Counter));
        self.series.push((labels, Value::Counter(value)));
    }

    fn seconds(&mut self, labels: Labels, value: f64) {
        debug_assert!(matches!(self.kind, MetricType::Counter));
        self.series.push((labels, Value::Seconds(value)));
    }

    fn gauge(&mut self, labels: Labels, value: i64) {
        debug_assert!(matches!(self.kind, MetricType::Gauge));
        self.series.push((labels, Value::Gauge(value)));
    }

    fn histogram(&mut self, labels: Labels, value: HistogramSample) {
        debug_assert!(matches!(self.kind, MetricType::Histogram));
        self.series.push((labels, Value::Histogram(value)));
    }

    fn encode(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut metric = encoder.encode_descriptor(self.name, self.help, None, self.kind)?;
        for (labels, value) in &self.series {
            let mut series = metric.encode_family(labels)?;
            match value {
                Value::Counter(n) => series.encode_counter::<Labels, _, u64>(n, None)?,
                Value::Seconds(n) => series.encode_counter::<Labels, _, f64>(n, None)?,
                Value::Gauge(n) => series.encode_gauge(n)?,
                Value::Histogram(h) => {
                    series.encode_histogram::<Labels>(h.sum, h.count, &h.buckets, None)?
                }
            }
        }
        Ok(())
    }
}

/// What a topic's partitions on this broker add up to.
#[derive(Default)]
struct TopicTotals {
    bytes_in: u64,
    records_in: u64,
    bytes_out: u64,
    replicas: i64,
    /// Sums of the partition gauges (log start, log end, high watermark, size,
    /// leaders), used when aggregating.
    gauges: [i64; 5],
}

fn shard_label(snapshot: &ShardSnapshot) -> Labels {
    vec![("shard", snapshot.shard.0.to_string())]
}

fn api_name(key: i16) -> String {
    ApiKey::try_from(key).map_or_else(|_| key.to_string(), |api| format!("{api:?}"))
}

impl Exposition {
    fn families(&self) -> Vec<Family> {
        let mut families = self.shard_families();
        families.extend(self.partition_families());
        families.extend(self.group_families());
        families
    }

    fn shard_families(&self) -> Vec<Family> {
        use MetricType::{Counter, Gauge, Histogram};
        let mut requests = Family::new(
            "sluice_kafka_requests",
            "Kafka requests answered, by API.",
            Counter,
        );
        let mut latency = Family::new(
            "sluice_kafka_request_latency_seconds",
            "Time from a request decoded to its response ready, by API.",
            Histogram,
        );
        let mut errors = Family::new(
            "sluice_kafka_request_errors",
            "Error codes in responses (once per partition, topic or group that got one), by API and error.",
            Counter,
        );
        let mut fsync = Family::new(
            "sluice_storage_fsync_latency_seconds",
            "fdatasync of a partition log's data (the count is the number of fsyncs).",
            Histogram,
        );
        let mut appends = Family::new(
            "sluice_storage_group_commit_appends",
            "Appends acknowledged by one group-commit write.",
            Histogram,
        );
        let mut write_bytes = Family::new(
            "sluice_storage_group_commit_bytes",
            "Bytes of one group-commit write.",
            Histogram,
        );
        let mut hits = Family::new(
            "sluice_storage_tail_cache_hits",
            "Partition reads served from the in-memory tail.",
            Counter,
        );
        let mut misses = Family::new(
            "sluice_storage_tail_cache_misses",
            "Partition reads served from the segment file.",
            Counter,
        );
        let mut tail_bytes = Family::new(
            "sluice_storage_tail_cache_bytes",
            "Bytes held by the shard's tail caches.",
            Gauge,
        );
        let mut sendfile = Family::new(
            "sluice_net_sendfile_bytes",
            "Bytes sent to sockets zero-copy from segment files.",
            Counter,
        );
        let mut open = Family::new("sluice_net_connections", "Open client connections.", Gauge);
        let mut accepted = Family::new(
            "sluice_net_connections_accepted",
            "Client connections accepted.",
            Counter,
        );
        let mut sent = Family::new(
            "sluice_mesh_calls_sent",
            "Calls this shard sent to other shards.",
            Counter,
        );
        let mut received = Family::new(
            "sluice_mesh_calls_received",
            "Calls other shards sent this shard.",
            Counter,
        );
        let mut in_flight = Family::new(
            "sluice_mesh_calls_in_flight",
            "Calls this shard sent that await their reply (its queue depth on the mesh).",
            Gauge,
        );
        let mut stalls = Family::new(
            "sluice_reactor_stalls",
            "Times a task held the shard for at least reactor_stall_threshold_ms.",
            Counter,
        );
        let mut stalled = Family::new(
            "sluice_reactor_stall_seconds",
            "Time the shard was held in those stalls.",
            Counter,
        );
        for snapshot in &self.snapshots {
            let shard = shard_label(snapshot);
            let sample = &snapshot.sample;
            let c = sample.counters;
            for (api, histogram) in &sample.requests {
                let mut labels = shard.clone();
                labels.push(("api", api_name(*api)));
                requests.counter(labels.clone(), histogram.count);
                latency.histogram(labels, histogram.clone());
            }
            for &((api, code), n) in &sample.errors {
                let mut labels = shard.clone();
                labels.push(("api", api_name(api)));
                labels.push(("error", kafka_name(code)));
                errors.counter(labels, n);
            }
            fsync.histogram(shard.clone(), sample.fsync.clone());
            appends.histogram(shard.clone(), sample.appends_per_write.clone());
            write_bytes.histogram(shard.clone(), sample.write_bytes.clone());
            hits.counter(shard.clone(), c.tail_cache_hits);
            misses.counter(shard.clone(), c.tail_cache_misses);
            tail_bytes.gauge(shard.clone(), snapshot.tail_cache_bytes as i64);
            sendfile.counter(shard.clone(), c.sendfile_bytes);
            open.gauge(shard.clone(), c.connections_open as i64);
            accepted.counter(shard.clone(), c.connections_accepted);
            sent.counter(shard.clone(), c.mesh_calls_sent);
            received.counter(shard.clone(), c.mesh_calls_received);
            in_flight.gauge(shard.clone(), c.mesh_calls_in_flight as i64);
            stalls.counter(shard.clone(), c.reactor_stalls);
            stalled.seconds(shard, c.reactor_stalled_micros as f64 / 1e6);
        }
        vec![
            requests,
            latency,
            errors,
            fsync,
            appends,
            write_bytes,
            hits,
            misses,
            tail_bytes,
            sendfile,
            open,
            accepted,
            sent,
            received,
            in_flight,
            stalls,
            stalled,
        ]
    }

    fn partition_families(&self) -> Vec<Family> {
        use MetricType::{Counter, Gauge};
        let mut bytes_in = Family::new(
            "sluice_topic_bytes_in",
            "Produced bytes appended, by topic.",
            Counter,
        );
        let mut records_in = Family::new(
            "sluice_topic_records_in",
            "Produced records appended, by topic.",
            Counter,
        );
        let mut bytes_out = Family::new(
            "sluice_topic_bytes_out",
            "Record bytes returned by fetches (consumers and followers), by topic.",
            Counter,
        );
        let mut log_start = Family::new(
            "sluice_partition_log_start_offset",
            "First offset of the log (summed over the topic when aggregated).",
            Gauge,
        );
        let mut log_end = Family::new(
            "sluice_partition_log_end_offset",
            "Offset the next record gets (summed over the topic when aggregated).",
            Gauge,
        );
        let mut high_watermark = Family::new(
            "sluice_partition_high_watermark",
            "Offset below which records are committed (summed over the topic when aggregated).",
            Gauge,
        );
        let mut size = Family::new(
            "sluice_partition_size_bytes",
            "Bytes of the partition's segments.",
            Gauge,
        );
        let mut leader = Family::new(
            "sluice_partition_leader",
            "1 where this broker leads the partition (leaders counted per topic when aggregated).",
            Gauge,
        );
        let mut replicas = Family::new(
            "sluice_topic_partition_replicas",
            "Partition replicas of the topic on this broker.",
            Gauge,
        );
        // Per topic: traffic, replica count and (aggregated) the gauges' sums.
        let mut topics: BTreeMap<&str, TopicTotals> = BTreeMap::new();
        // Rows of the partition gauges: per partition, or per topic when aggregated.
        let mut rows: Vec<(Labels, [i64; 5])> = Vec::new();
        for partition in self.snapshots.iter().flat_map(|s| &s.partitions) {
            let gauges = [
                partition.log_start,
                partition.log_end,
                partition.high_watermark,
                partition.size_bytes as i64,
                i64::from(partition.leader),
            ];
            let totals = topics.entry(&partition.topic).or_default();
            totals.bytes_in += partition.traffic.bytes_in;
            totals.records_in += partition.traffic.records_in;
            totals.bytes_out += partition.traffic.bytes_out;
            totals.replicas += 1;
            if self.aggregate {
                for (sum, value) in totals.gauges.iter_mut().zip(gauges) {
                    *sum += value;
                }
            } else {
                let labels = vec![
                    ("topic", partition.topic.clone()),
                    ("partition", partition.partition.to_string()),
                ];
                rows.push((labels, gauges));
            }
        }
        for (topic, totals) in &topics {
            let labels = vec![("topic", topic.to_string())];
            bytes_in.counter(labels.clone(), totals.bytes_in);
            records_in.counter(labels.clone(), totals.records_in);
            bytes_out.counter(labels.clone(), totals.bytes_out);
            replicas.gauge(labels.clone(), totals.replicas);
            if self.aggregate {
                rows.push((labels, totals.gauges));
            }
        }
        for (labels, [start, end, hw, bytes, leads]) in rows {
            log_start.gauge(labels.clone(), start);
            log_end.gauge(labels.clone(), end);
            high_watermark.gauge(labels.clone(), hw);
            size.gauge(labels.clone(), bytes);
            leader.gauge(labels, leads);
        }
        vec![
            bytes_in,
            records_in,
            bytes_out,
            log_start,
            log_end,
            high_watermark,
            size,
            leader,
            replicas,
        ]
    }

    fn group_families(&self) -> Vec<Family> {
        let mut states = Family::new(
            "sluice_consumer_groups",
            "Consumer groups this broker coordinates, by state.",
            MetricType::Gauge,
        );
        let mut committed = Family::new(
            "sluice_consumer_group_committed_offset",
            "A group's committed offset, by group, topic and partition.",
            MetricType::Gauge,
        );
        let mut lag = Family::new(
            "sluice_consumer_group_lag",
            "High watermark minus committed offset, for partitions with a replica on this broker (summed per group and topic when aggregated).",
            MetricType::Gauge,
        );
        let mut by_state: BTreeMap<&str, i64> =
            GROUP_STATES.iter().map(|state| (state.name(), 0)).collect();
        for state in self.snapshots.iter().flat_map(|s| &s.group_states) {
            *by_state.entry(state).or_default() += 1;
        }
        for (state, n) in by_state {
            states.gauge(vec![("state", state.to_string())], n);
        }
        // The leader's high watermark where this broker has it, else a
        // follower's (behind the leader's by at most its replication lag).
        let mut high_watermarks: HashMap<(&str, i32), (bool, i64)> = HashMap::new();
        for partition in self.snapshots.iter().flat_map(|s| &s.partitions) {
            let entry = high_watermarks
                .entry((&partition.topic, partition.partition))
                .or_insert((partition.leader, partition.high_watermark));
            if partition.leader {
                *entry = (true, partition.high_watermark);
            }
        }
        let mut lag_sums: BTreeMap<(&str, &str), i64> = BTreeMap::new();
        for offset in self.snapshots.iter().flat_map(|s| &s.committed) {
            let behind = high_watermarks
                .get(&(offset.topic.as_str(), offset.partition))
                .map(|&(_, hw)| (hw - offset.offset).max(0));
            if self.aggregate {
                if let Some(behind) = behind {
                    *lag_sums.entry((&offset.group, &offset.topic)).or_default() += behind;
                }
                continue;
            }
            let labels = vec![
                ("group", offset.group.clone()),
                ("topic", offset.topic.clone()),
                ("partition", offset.partition.to_string()),
            ];
            committed.gauge(labels.clone(), offset.offset);
            if let Some(behind) = behind {
                lag.gauge(labels, behind);
            }
        }
        for ((group, topic), behind) in lag_sums {
            lag.gauge(
                vec![("group", group.to_string()), ("topic", topic.to_string())],
                behind,
            );
        }
        vec![states, committed, lag]
    }
}

impl Collector for Exposition {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for family in self.families() {
            family.encode(&mut encoder)?;
        }
        Ok(())
    }
}
