//! The work a shard does for its own partitions, whoever asked for it.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::cluster::topic_config::{TIMESTAMP_AFTER_MAX_MS, TIMESTAMP_BEFORE_MAX_MS};
use crate::cluster::topic_table::{TopicMeta, TopicTable, new_topic_id, validate_topic_name};
use crate::net::outgoing::{FileRange, Piece, Pieces};
use crate::protocol::error_code::ErrorCode;
use crate::protocol::spliced::MAX_SPLICED_FIELD;
use crate::record::record_checks::{RecordRules, check_records};
use crate::record::{BatchHeader, Compression, validate_batch};
use crate::shard::messages::{
    FetchItem, FetchResult, NewTopic, OffsetResult, PartitionKey, ProduceItem, ProduceResult,
    ShardRequest, ShardResponse, TopicChangeResult,
};
use crate::shard::table_updates::Turn;
use crate::shard::{CONTROLLER_SHARD, Shard};
use crate::storage::read::{ReadChunk, ReadOutcome};
use crate::storage::{AppendOptions, LogError, PartitionLog};
use crate::types::{LeaderEpoch, Offset, TimestampMs};

/// Leader epoch of every partition until replication brings elections.
pub const LEADER_EPOCH: LeaderEpoch = LeaderEpoch(0);

impl Shard {
    pub async fn serve(self: &Rc<Self>, request: ShardRequest) -> ShardResponse {
        match request {
            ShardRequest::Produce {
                zstd_allowed,
                items,
            } => ShardResponse::Produce(self.produce_local(zstd_allowed, items).await),
            ShardRequest::Fetch {
                items,
                max_wait_ms,
                min_bytes,
                max_bytes,
            } => ShardResponse::Fetch(
                self.fetch_local(&items, max_wait_ms, min_bytes, max_bytes)
                    .await,
            ),
            ShardRequest::ListOffsets { items } => {
                ShardResponse::ListOffsets(self.list_offsets_local(&items).await)
            }
            ShardRequest::CreateTopics(topics) => {
                ShardResponse::TopicsChanged(self.create_topics(topics).await)
            }
            ShardRequest::DeleteTopics(names) => {
                ShardResponse::TopicsChanged(self.delete_topics(names).await)
            }
            ShardRequest::DeleteRecords { items } => {
                ShardResponse::DeleteRecords(self.delete_records_local(&items).await)
            }
            ShardRequest::CreatePartitions {
                topics,
                validate_only,
            } => ShardResponse::TopicsChanged(self.create_partitions(topics, validate_only).await),
            ShardRequest::SetTopicConfigs {
                topic,
                configs,
                validate_only,
            } => ShardResponse::TopicsChanged(vec![
                self.set_topic_configs(topic, configs, validate_only).await,
            ]),
            ShardRequest::AllocateProducerId => {
                ShardResponse::ProducerId(self.allocate_producer_id())
            }
            ShardRequest::Group(request) => {
                ShardResponse::Group(crate::group::requests::serve(self, request).await)
            }
            ShardRequest::ApplyTopics(table) => {
                self.apply_topics(table).await;
                ShardResponse::Applied
            }
        }
    }

    async fn produce_local(
        self: &Rc<Self>,
        zstd_allowed: bool,
        items: Vec<ProduceItem>,
    ) -> Vec<ProduceResult> {
        let tasks: Vec<_> = items
            .into_iter()
            .map(|item| {
                let shard = Rc::clone(self);
                glommio::spawn_local(async move { shard.produce_one(item, zstd_allowed).await })
            })
            .collect();
        let mut results = Vec::with_capacity(tasks.len());
        for task in tasks {
            results.push(task.await);
        }
        results
    }

    async fn produce_one(&self, item: ProduceItem, zstd_allowed: bool) -> ProduceResult {
        let failed = |error: ErrorCode| ProduceResult {
            error,
            base_offset: -1,
            log_append_time: -1,
            log_start_offset: -1,
        };
        let log = match self.log_or_error(&item.key) {
            Ok(log) => log,
            Err(error) => return failed(error),
        };
        let Some(records) = item.records else {
            return failed(ErrorCode::InvalidRecord);
        };
        let rules = self.produce_rules(&item.key.topic);
        if records.len() > rules.max_message_bytes {
            return failed(ErrorCode::MessageTooLarge);
        }
        // Exactly one batch per partition, as Kafka requires of v2 produce requests.
        let one_batch = BatchHeader::parse(&records)
            .and_then(|h| h.total_len())
            .is_some_and(|len| len == records.len());
        if !one_batch {
            return failed(ErrorCode::InvalidRecord);
        }
        let refused = |error: &dyn std::fmt::Display| {
            tracing::debug!(topic = %item.key.topic, partition = item.key.partition, %error, "refused batch");
        };
        match validate_batch(&records) {
            Err(error) => {
                refused(&error);
                return failed(error.error_code());
            }
            Ok(batch)
                if !zstd_allowed
                    && batch.header().attributes().compression() == Some(Compression::Zstd) =>
            {
                return failed(ErrorCode::UnsupportedCompressionType);
            }
            Ok(batch) => {
                if let Err(error) = check_records(batch, &rules.records) {
                    refused(&error);
                    return failed(error.error_code());
                }
            }
        }
        let log_append_time = rules.log_append_time.then(TimestampMs::now);
        let mut batch = records.to_vec();
        let options = AppendOptions {
            leader_epoch: LEADER_EPOCH,
            log_append_time,
        };
        match log.append(&mut batch, options).await {
            Ok(info) => {
                self.appended.wake_all();
                ProduceResult {
                    error: ErrorCode::None,
                    base_offset: info.base_offset.0,
                    log_append_time: log_append_time.map_or(-1, |t| t.0),
                    log_start_offset: info.log_start_offset.0,
                }
            }
            Err(error) => {
                tracing::warn!(topic = %item.key.topic, partition = item.key.partition, %error, "append failed");
                failed(error.error_code())
            }
        }
    }

    /// What `topic`'s configs require of a produced batch, as of now: one look at
    /// the topic table per batch.
    fn produce_rules(&self, topic: &str) -> ProduceRules {
        let topics = self.topics.borrow();
        let configs = topics.topics.get(topic).map(|meta| &meta.configs);
        let get = |name: &str| configs.and_then(|c| c.get(name));
        let number = |name: &str, default: i64| {
            get(name)
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(default)
        };
        // The broker's clock replaces the timestamps of LogAppendTime topics, so
        // they have no bounds.
        let log_append_time = get("message.timestamp.type").is_some_and(|t| t == "LogAppendTime");
        let bound = |name, default| {
            if log_append_time {
                i64::MAX
            } else {
                number(name, default)
            }
        };
        let before = bound("message.timestamp.before.max.ms", TIMESTAMP_BEFORE_MAX_MS);
        let after = bound("message.timestamp.after.max.ms", TIMESTAMP_AFTER_MAX_MS);
        let now = TimestampMs::now().0;
        ProduceRules {
            max_message_bytes: get("max.message.bytes")
                .and_then(|v| v.parse().ok())
                .unwrap_or(self.config.message_max_bytes),
            log_append_time,
            records: RecordRules {
                require_keys: get("cleanup.policy").is_some_and(|p| p.contains("compact")),
                min_timestamp: (before != i64::MAX)
                    .then(|| TimestampMs(now.saturating_sub(before))),
                max_timestamp: (after != i64::MAX).then(|| TimestampMs(now.saturating_add(after))),
                inflate_limit: self.config.socket_request_max_bytes,
            },
        }
    }

    /// Reads every item; if fewer than `min_bytes` are there, waits for appends on
    /// this shard until `max_wait_ms` passes.
    async fn fetch_local(
        &self,
        items: &[FetchItem],
        max_wait_ms: u64,
        min_bytes: usize,
        max_bytes: usize,
    ) -> Vec<FetchResult> {
        let deadline = Instant::now() + Duration::from_millis(max_wait_ms);
        const MAX_ROUNDS: usize = 100_000;
        let mut results = Vec::new();
        for _ in 0..MAX_ROUNDS {
            results = self.fetch_once(items, max_bytes).await;
            let bytes: u64 = results.iter().map(|r| r.records.len()).sum();
            let has_error = results.iter().any(|r| r.error != ErrorCode::None);
            let now = Instant::now();
            if bytes >= min_bytes.max(1) as u64 || has_error || now >= deadline {
                break;
            }
            let wait = self.appended.wait();
            let _ = glommio::timer::timeout(deadline - now, async {
                wait.await;
                Ok(())
            })
            .await;
        }
        results
    }

    async fn fetch_once(&self, items: &[FetchItem], max_bytes: usize) -> Vec<FetchResult> {
        let mut results = Vec::with_capacity(items.len());
        let mut budget = max_bytes;
        for item in items {
            let log = match self.log_or_error(&item.key) {
                Ok(log) => log,
                Err(error) => {
                    results.push(FetchResult {
                        error,
                        high_watermark: -1,
                        log_start_offset: -1,
                        records: Pieces::default(),
                    });
                    continue;
                }
            };
            let limit = (item.max_bytes.max(0) as usize).min(budget);
            let first = results.iter().all(|r: &FetchResult| r.records.is_empty());
            let outcome = log.read(Offset(item.offset), limit as u64, first).await;
            let result = match outcome {
                Ok(outcome) => match pieces_of(&outcome).await {
                    Ok(records) => FetchResult {
                        error: ErrorCode::None,
                        high_watermark: outcome.high_watermark.0,
                        log_start_offset: outcome.log_start_offset.0,
                        records,
                    },
                    Err(error) => error_result(&log, &error),
                },
                Err(error) => error_result(&log, &error),
            };
            budget = budget.saturating_sub(result.records.len() as usize);
            results.push(result);
        }
        results
    }

    async fn list_offsets_local(&self, items: &[(PartitionKey, i64)]) -> Vec<OffsetResult> {
        let mut results = Vec::with_capacity(items.len());
        for (key, timestamp) in items {
            let log = match self.log_or_error(key) {
                Ok(log) => log,
                Err(error) => {
                    results.push(OffsetResult {
                        error,
                        offset: -1,
                        timestamp: -1,
                    });
                    continue;
                }
            };
            let found = match *timestamp {
                -2 => Ok(Some((log.log_start_offset(), TimestampMs::NONE))),
                -1 => Ok(Some((log.high_watermark(), TimestampMs::NONE))),
                -3 => Ok(log.max_timestamp().map(|(ts, offset)| (offset, ts))),
                ts => log.offset_for_timestamp(TimestampMs(ts)).await,
            };
            results.push(match found {
                Ok(Some((offset, ts))) => OffsetResult {
                    error: ErrorCode::None,
                    offset: offset.0,
                    timestamp: ts.0,
                },
                Ok(None) => OffsetResult {
                    error: ErrorCode::None,
                    offset: -1,
                    timestamp: -1,
                },
                Err(error) => OffsetResult {
                    error: error.error_code(),
                    offset: -1,
                    timestamp: -1,
                },
            });
        }
        results
    }

    fn allocate_producer_id(&self) -> Option<i64> {
        assert_eq!(
            self.id, CONTROLLER_SHARD,
            "producer ids come from the controller shard"
        );
        let mut ids = self.producer_ids.borrow_mut();
        if ids.is_none() {
            match crate::txn::producer_ids::ProducerIds::load(&self.config.data_dir) {
                Ok(loaded) => *ids = Some(loaded),
                Err(error) => {
                    tracing::error!(%error, "cannot load producer ids");
                    return None;
                }
            }
        }
        let allocated = ids.as_mut().map(|ids| ids.allocate());
        match allocated {
            Some(Ok(id)) => Some(id),
            Some(Err(error)) => {
                tracing::error!(%error, "cannot reserve producer ids");
                None
            }
            None => None,
        }
    }

    async fn delete_records_local(&self, items: &[(PartitionKey, i64)]) -> Vec<OffsetResult> {
        let mut results = Vec::with_capacity(items.len());
        for (key, offset) in items {
            let result = match self.log_or_error(key) {
                Err(error) => Err(error),
                Ok(log) => {
                    let target = if *offset == -1 {
                        log.high_watermark()
                    } else {
                        Offset(*offset)
                    };
                    log.delete_records(target).await.map_err(|e| e.error_code())
                }
            };
            results.push(match result {
                Ok(low_watermark) => OffsetResult {
                    error: ErrorCode::None,
                    offset: low_watermark.0,
                    timestamp: -1,
                },
                Err(error) => OffsetResult {
                    error,
                    offset: -1,
                    timestamp: -1,
                },
            });
        }
        results
    }

    /// Controller only: validates, places, persists and broadcasts new topics.
    async fn create_topics(self: &Rc<Self>, topics: Vec<NewTopic>) -> Vec<TopicChangeResult> {
        assert_eq!(
            self.id, CONTROLLER_SHARD,
            "topic changes go through the controller shard"
        );
        let mut table = self.topics.borrow().clone();
        let mut results = Vec::with_capacity(topics.len());
        let mut changed = false;
        for topic in topics {
            let outcome = self.check_new_topic(&table, &topic);
            let result = match outcome {
                Err((error, message)) => TopicChangeResult {
                    name: topic.name,
                    error,
                    message: Some(message),
                },
                Ok(meta) => {
                    if !topic.validate_only {
                        table.topics.insert(topic.name.clone(), meta);
                        changed = true;
                    }
                    TopicChangeResult {
                        name: topic.name,
                        error: ErrorCode::None,
                        message: None,
                    }
                }
            };
            results.push(result);
        }
        if changed {
            self.publish_or_fail(table, &mut results).await;
        }
        results
    }

    fn check_new_topic(
        &self,
        table: &TopicTable,
        topic: &NewTopic,
    ) -> Result<TopicMeta, (ErrorCode, String)> {
        validate_topic_name(&topic.name).map_err(|m| (ErrorCode::InvalidTopicException, m))?;
        if table.topics.contains_key(&topic.name) {
            return Err((
                ErrorCode::TopicAlreadyExists,
                format!("topic '{}' already exists", topic.name),
            ));
        }
        let partitions = if topic.partitions == -1 {
            self.config.num_partitions
        } else {
            topic.partitions
        };
        if !(1..=100_000).contains(&partitions) {
            return Err((
                ErrorCode::InvalidPartitions,
                format!("{partitions} partitions: must be in 1..=100000"),
            ));
        }
        if topic.replication_factor != -1 && topic.replication_factor != 1 {
            return Err((
                ErrorCode::InvalidReplicationFactor,
                format!(
                    "replication factor {} is larger than the 1 available broker",
                    topic.replication_factor
                ),
            ));
        }
        let mut configs = BTreeMap::new();
        for (name, value) in &topic.configs {
            let value = value.clone().ok_or((
                ErrorCode::InvalidConfig,
                format!("config {name} has no value"),
            ))?;
            crate::cluster::topic_config::validate(name, &value)
                .map_err(|m| (ErrorCode::InvalidConfig, m))?;
            configs.insert(name.clone(), value);
        }
        Ok(TopicMeta {
            id: new_topic_id(),
            shards: table.place(partitions as usize, self.count),
            configs,
        })
    }

    /// Controller only: adds partitions to existing topics (never removes any).
    async fn create_partitions(
        self: &Rc<Self>,
        topics: Vec<(String, i32)>,
        validate_only: bool,
    ) -> Vec<TopicChangeResult> {
        assert_eq!(
            self.id, CONTROLLER_SHARD,
            "topic changes go through the controller shard"
        );
        let mut table = self.topics.borrow().clone();
        let mut results = Vec::with_capacity(topics.len());
        let mut changed = false;
        for (name, count) in topics {
            let outcome = match table.topics.get(&name) {
                None => Err((
                    ErrorCode::UnknownTopicOrPartition,
                    format!("topic {name} does not exist"),
                )),
                Some(meta) if count <= meta.partition_count() => Err((
                    ErrorCode::InvalidPartitions,
                    format!(
                        "topic {name} has {} partitions; {count} would not add any",
                        meta.partition_count()
                    ),
                )),
                Some(_) if count > 100_000 => Err((
                    ErrorCode::InvalidPartitions,
                    format!("{count} partitions: at most 100000"),
                )),
                Some(meta) => Ok(meta.partition_count()),
            };
            let result = match outcome {
                Err((error, message)) => TopicChangeResult {
                    name,
                    error,
                    message: Some(message),
                },
                Ok(current) => {
                    if !validate_only {
                        let added = table.place((count - current) as usize, self.count);
                        table
                            .topics
                            .get_mut(&name)
                            .expect("checked above")
                            .shards
                            .extend(added);
                        changed = true;
                    }
                    TopicChangeResult {
                        name,
                        error: ErrorCode::None,
                        message: None,
                    }
                }
            };
            results.push(result);
        }
        if changed {
            self.publish_or_fail(table, &mut results).await;
        }
        results
    }

    /// Controller only: replaces the config overrides of `topic`.
    async fn set_topic_configs(
        self: &Rc<Self>,
        topic: String,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> TopicChangeResult {
        assert_eq!(
            self.id, CONTROLLER_SHARD,
            "topic changes go through the controller shard"
        );
        let mut table = self.topics.borrow().clone();
        let checked = match table.topics.get_mut(&topic) {
            None => Err((
                ErrorCode::UnknownTopicOrPartition,
                format!("topic {topic} does not exist"),
            )),
            Some(meta) => configs
                .iter()
                .try_for_each(|(name, value)| crate::cluster::topic_config::validate(name, value))
                .map_err(|m| (ErrorCode::InvalidConfig, m))
                .map(|()| meta.configs = configs),
        };
        let mut result = TopicChangeResult {
            name: topic,
            error: ErrorCode::None,
            message: None,
        };
        match checked {
            Err((error, message)) => {
                result.error = error;
                result.message = Some(message);
            }
            Ok(()) if !validate_only => {
                if let Err(error) = self.publish_topics(table).await {
                    result.error = ErrorCode::KafkaStorageError;
                    result.message = Some(error);
                }
            }
            Ok(()) => {}
        }
        result
    }

    async fn delete_topics(self: &Rc<Self>, names: Vec<String>) -> Vec<TopicChangeResult> {
        assert_eq!(
            self.id, CONTROLLER_SHARD,
            "topic changes go through the controller shard"
        );
        let mut table = self.topics.borrow().clone();
        let mut results = Vec::with_capacity(names.len());
        for name in names {
            let error = if table.topics.remove(&name).is_some() {
                ErrorCode::None
            } else {
                ErrorCode::UnknownTopicOrPartition
            };
            results.push(TopicChangeResult {
                name,
                error,
                message: None,
            });
        }
        if results.iter().any(|r| r.error == ErrorCode::None) {
            self.publish_or_fail(table, &mut results).await;
        }
        results
    }

    /// Publishes `table`; if that fails, the changes that had succeeded report a
    /// storage error instead.
    async fn publish_or_fail(
        self: &Rc<Self>,
        table: TopicTable,
        results: &mut [TopicChangeResult],
    ) {
        if let Err(error) = self.publish_topics(table).await {
            for result in results.iter_mut().filter(|r| r.error == ErrorCode::None) {
                result.error = ErrorCode::KafkaStorageError;
                result.message = Some(error.clone());
            }
        }
    }

    /// Persists `table` and makes every shard apply it before returning.
    async fn publish_topics(self: &Rc<Self>, table: TopicTable) -> Result<(), String> {
        table
            .save(&self.config.data_dir)
            .map_err(|e| format!("saving the topic table: {e}"))?;
        for shard in 0..self.count {
            self.call(shard, ShardRequest::ApplyTopics(table.clone()))
                .await;
        }
        Ok(())
    }

    /// Opens the logs of partitions this shard now owns; closes and deletes those
    /// of topics that are gone.
    /// Makes `table` this shard's topic table, opening and closing partitions;
    /// returns once it (or a newer table) is applied.
    pub async fn apply_topics(self: &Rc<Self>, table: TopicTable) {
        match self.table_updates.submit(table) {
            Turn::Wait(generation) => self.table_updates.applied(generation).await,
            Turn::Apply => {
                while let Some((generation, table)) = self.table_updates.next() {
                    self.apply_table(table).await;
                    self.table_updates.finished(generation);
                }
            }
        }
    }

    async fn apply_table(self: &Rc<Self>, table: TopicTable) {
        *self.topics.borrow_mut() = table.clone();
        let owned: Vec<PartitionKey> = table
            .topics
            .iter()
            .flat_map(|(name, meta)| {
                meta.shards
                    .iter()
                    .enumerate()
                    .filter(|&(_, &shard)| shard == self.id)
                    .map(|(index, _)| PartitionKey {
                        topic: name.clone(),
                        partition: index as i32,
                    })
            })
            .collect();
        let gone: Vec<PartitionKey> = self
            .partitions
            .borrow()
            .keys()
            .filter(|key| !owned.contains(key))
            .cloned()
            .collect();
        self.offline
            .borrow_mut()
            .retain(|key, _| owned.contains(key));
        for key in gone {
            let log = self.partitions.borrow_mut().remove(&key);
            if let Some(log) = log {
                if let Err(error) = log.close().await {
                    tracing::warn!(topic = %key.topic, partition = key.partition, %error, "closing a deleted partition");
                }
                if let Err(error) = std::fs::remove_dir_all(log.dir()) {
                    tracing::warn!(dir = %log.dir().display(), %error, "removing a deleted partition");
                }
            }
        }
        for key in owned {
            if let Some(log) = self.log(&key) {
                let config = crate::cluster::topic_config::log_config(
                    &self.config,
                    table.topics.get(&key.topic),
                );
                if let Err(error) = log.update_config(config) {
                    tracing::warn!(topic = %key.topic, %error, "topic config not applied");
                }
                continue;
            }
            let dir = self
                .config
                .data_dir
                .join(format!("{}-{}", key.topic, key.partition));
            let config = crate::cluster::topic_config::log_config(
                &self.config,
                table.topics.get(&key.topic),
            );
            match PartitionLog::open(&dir, config).await {
                Ok((log, report)) => {
                    if !report.events.is_empty() {
                        tracing::warn!(dir = %dir.display(), events = ?report.events, "partition recovered");
                    }
                    let log = Rc::new(log);
                    crate::storage::background::spawn(&log, None);
                    if key.topic == crate::group::coordinator_key::OFFSETS_TOPIC {
                        crate::group::load::load_partition(self, key.partition, &log).await;
                    }
                    self.offline.borrow_mut().remove(&key);
                    self.partitions.borrow_mut().insert(key, log);
                }
                Err(error) => {
                    tracing::error!(
                        topic = %key.topic,
                        partition = key.partition,
                        dir = %dir.display(),
                        %error,
                        "cannot open partition; it stays offline and its requests get KAFKA_STORAGE_ERROR"
                    );
                    self.offline.borrow_mut().insert(key, error.to_string());
                }
            }
        }
    }
}

/// A topic's configs as the produce path needs them.
struct ProduceRules {
    max_message_bytes: usize,
    log_append_time: bool,
    records: RecordRules,
}

fn error_result(log: &PartitionLog, error: &LogError) -> FetchResult {
    FetchResult {
        error: error.error_code(),
        high_watermark: log.high_watermark().0,
        log_start_offset: log.log_start_offset().0,
        records: Pieces::default(),
    }
}

/// What a read returned, ready to cross shards: the tail cache's bytes copied
/// into one piece, segment file ranges as descriptors for a zero-copy send (or
/// copied, when larger than a spliced field may be).
async fn pieces_of(outcome: &ReadOutcome) -> Result<Pieces, LogError> {
    let mut pieces = Pieces::default();
    let mut copied = Vec::new();
    for chunk in &outcome.chunks {
        match chunk {
            ReadChunk::File {
                reader,
                position,
                len,
                ..
            } if *len <= MAX_SPLICED_FIELD as u64 => {
                pieces.push(Piece::Bytes(Bytes::from(std::mem::take(&mut copied))));
                pieces.push(Piece::File(FileRange {
                    file: reader.file()?,
                    position: *position,
                    len: *len,
                }));
            }
            chunk => chunk.copy_into(&mut copied).await?,
        }
    }
    pieces.push(Piece::Bytes(Bytes::from(copied)));
    Ok(pieces)
}
