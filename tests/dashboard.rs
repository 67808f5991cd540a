//! The Grafana dashboard in docs/grafana/sluice.json stays true to the broker:
//! it is an importable dashboard (a Prometheus datasource input, the template
//! variables, titled and typed panels with unique ids, a query in every target),
//! and every metric name its queries reference is a sample name the real
//! broker's `/metrics` serves, so a renamed or dropped family breaks this test
//! rather than a panel that silently shows "No data".

#[path = "support/broker.rs"]
mod broker;
#[path = "support/http.rs"]
mod http;
#[path = "support/kafka.rs"]
mod kafka;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::{Duration, Instant};

use broker::Broker;
use kafka::{OP_TIMEOUT, admin, admin_options, client_config, create_topic, producer};
use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

const DASHBOARD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/grafana/sluice.json");

fn dashboard() -> Value {
    let text = std::fs::read_to_string(DASHBOARD).expect("read docs/grafana/sluice.json");
    serde_json::from_str(&text).expect("docs/grafana/sluice.json is JSON")
}

/// Every panel, rows included, with the panels nested in collapsed rows.
fn all_panels(dashboard: &Value) -> Vec<&Value> {
    fn walk<'a>(panels: &'a [Value], into: &mut Vec<&'a Value>) {
        for panel in panels {
            into.push(panel);
            if let Some(nested) = panel["panels"].as_array() {
                walk(nested, into);
            }
        }
    }
    let mut panels = Vec::new();
    walk(
        dashboard["panels"].as_array().expect("a `panels` array"),
        &mut panels,
    );
    panels
}

/// The identifiers starting with `sluice_` in `text` (a PromQL expression).
fn metric_names(text: &str) -> Vec<String> {
    let is_name_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("sluice_") {
        let starts_a_name = !rest[..at].ends_with(is_name_char);
        let tail = &rest[at..];
        let end = tail.find(|c: char| !is_name_char(c)).unwrap_or(tail.len());
        if starts_a_name {
            names.push(tail[..end].to_string());
        }
        rest = &tail[end..];
    }
    names
}

/// Every string inside `value`, however deeply nested.
fn strings(value: &Value) -> Vec<&str> {
    match value {
        Value::String(s) => vec![s],
        Value::Array(items) => items.iter().flat_map(strings).collect(),
        Value::Object(fields) => fields.values().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}

/// Metric name -> where the dashboard uses it (panel titles, variable names).
fn referenced_metrics(dashboard: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let mut used: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for panel in all_panels(dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            for name in metric_names(target["expr"].as_str().unwrap_or_default()) {
                let title = panel["title"].as_str().unwrap_or_default().to_string();
                used.entry(name)
                    .or_default()
                    .insert(format!("panel {title:?}"));
            }
        }
    }
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("templating.list");
    for variable in variables {
        let queries = strings(&variable["query"])
            .into_iter()
            .chain(strings(&variable["definition"]));
        for text in queries {
            for name in metric_names(text) {
                let variable = variable["name"].as_str().unwrap_or_default();
                used.entry(name)
                    .or_default()
                    .insert(format!("variable ${variable}"));
            }
        }
    }
    used
}

#[test]
fn the_dashboard_is_an_importable_grafana_dashboard() {
    let dashboard = dashboard();

    let inputs = dashboard["__inputs"].as_array().expect("`__inputs`");
    assert!(
        inputs.iter().any(|input| input["name"] == "DS_PROMETHEUS"
            && input["type"] == "datasource"
            && input["pluginId"] == "prometheus"),
        "a Prometheus datasource input DS_PROMETHEUS: {inputs:?}"
    );
    assert!(dashboard["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(dashboard["schemaVersion"].as_u64().is_some_and(|v| v >= 36));
    assert!(
        dashboard["uid"].as_str().is_some_and(|u| u.len() <= 40),
        "a uid of at most 40 characters"
    );

    let variables: BTreeMap<&str, &Value> = dashboard["templating"]["list"]
        .as_array()
        .expect("templating.list")
        .iter()
        .map(|v| (v["name"].as_str().expect("a variable name"), v))
        .collect();
    for name in ["instance", "topic", "group"] {
        let variable = variables
            .get(name)
            .unwrap_or_else(|| panic!("a template variable {name:?}"));
        assert_eq!(variable["type"], "query", "${name}");
        assert_eq!(variable["datasource"]["uid"], "${DS_PROMETHEUS}", "${name}");
    }
    assert!(
        variables["instance"]["definition"]
            .as_str()
            .is_some_and(|q| q.starts_with("label_values(sluice_net_connections")),
        "$instance lists the brokers"
    );
    assert_eq!(variables["topic"]["multi"], true);
    assert_eq!(variables["topic"]["includeAll"], true);

    let panels = all_panels(&dashboard);
    assert!(!panels.is_empty(), "the dashboard has panels");
    let mut ids = HashSet::new();
    for panel in &panels {
        let title = panel["title"].as_str().unwrap_or_default();
        assert!(!title.is_empty(), "a panel without a title: {panel}");
        let kind = panel["type"].as_str().unwrap_or_default();
        assert!(!kind.is_empty(), "panel {title:?} has no type");
        let id = panel["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("panel {title:?} has no numeric id"));
        assert!(ids.insert(id), "panel id {id} ({title:?}) is not unique");
        for key in ["x", "y", "w", "h"] {
            assert!(
                panel["gridPos"][key].is_u64(),
                "panel {title:?} has no gridPos.{key}"
            );
        }
        if kind == "row" {
            continue;
        }
        assert!(
            panel["description"].as_str().is_some_and(|d| !d.is_empty()),
            "panel {title:?} has no description"
        );
        assert!(
            panel["fieldConfig"]["defaults"]["unit"]
                .as_str()
                .is_some_and(|u| !u.is_empty()),
            "panel {title:?} has no unit"
        );
        assert_eq!(
            panel["datasource"]["uid"], "${DS_PROMETHEUS}",
            "panel {title:?} queries the imported datasource"
        );
        let targets = panel["targets"]
            .as_array()
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| panic!("panel {title:?} has no targets"));
        let mut ref_ids = HashSet::new();
        for target in targets {
            let expr = target["expr"].as_str().unwrap_or_default();
            assert!(!expr.trim().is_empty(), "a target of {title:?} has no expr");
            assert!(
                !metric_names(expr).is_empty(),
                "{title:?}: {expr} reads no sluice metric"
            );
            // Ranges follow the scrape interval Grafana knows of.
            for (at, _) in expr.match_indices('[') {
                assert!(
                    expr[at..].starts_with("[$__rate_interval]"),
                    "{title:?}: {expr} uses a fixed range; use $__rate_interval"
                );
            }
            let ref_id = target["refId"].as_str().unwrap_or_default();
            assert!(
                !ref_id.is_empty() && ref_ids.insert(ref_id),
                "{title:?}: refIds are present and distinct"
            );
        }
    }
}

/// The sample names of a scrape (`sluice_kafka_requests_total`,
/// `sluice_kafka_request_latency_seconds_bucket`, ...): the names Prometheus
/// stores and PromQL selects, which for counters and histograms are not the
/// family names of the `# TYPE` lines.
fn sample_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            line[..end].to_string()
        })
        .collect()
}

/// The family names of a scrape's `# TYPE` lines, for the failure message.
fn families(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// Produces to two partitions of `topic`, commits an offset in a group and
/// creates `topic` once more, so the per-topic, per-partition, per-group and
/// per-error families have series.
async fn traffic(broker: &Broker, topic: &str, group: &str) {
    create_topic(broker, topic, 2, &[]).await;
    let again = NewTopic::new(topic, 2, TopicReplication::Fixed(1));
    let created = admin(broker)
        .create_topics(&[again], &admin_options())
        .await
        .expect("CreateTopics request");
    assert!(created[0].is_err(), "{topic} created twice: {created:?}");
    let producer = producer(broker);
    for i in 0..10 {
        producer
            .send(
                FutureRecord::to(topic)
                    .key(&format!("key-{i}"))
                    .payload("dashboard")
                    .partition(i % 2),
                OP_TIMEOUT,
            )
            .await
            .expect("produce");
    }
    let consumer: BaseConsumer<kafka::TestContext> = client_config(broker)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create_with_context(kafka::TestContext)
        .expect("consumer");
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset(topic, 0, Offset::Offset(2))
        .expect("offset");
    // The coordinator may still be loading; retry until the commit lands.
    let deadline = Instant::now() + OP_TIMEOUT;
    while let Err(e) = consumer.commit(&offsets, CommitMode::Sync) {
        assert!(Instant::now() < deadline, "commit: {e}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test]
async fn every_metric_the_dashboard_queries_is_served() {
    let dashboard = dashboard();
    let used = referenced_metrics(&dashboard);
    assert!(
        used.len() >= 10,
        "the scan found the dashboard's metrics: {used:?}"
    );

    let broker = Broker::start();
    traffic(&broker, "dashboard", "dashboard-group").await;
    let (status, text) = http::get(broker.metrics_addr(), "/metrics");
    assert_eq!(status, 200, "{text}");
    let served = sample_names(&text);

    let missing: Vec<String> = used
        .iter()
        .filter(|(name, _)| !served.contains(*name))
        .map(|(name, places)| {
            let family = families(&text)
                .into_iter()
                .filter(|f| name.starts_with(f.as_str()))
                .max_by_key(String::len)
                .map(|f| {
                    let samples: Vec<&String> =
                        served.iter().filter(|s| s.starts_with(&f)).collect();
                    format!(" (family {f} serves {samples:?})")
                })
                .unwrap_or_default();
            format!("{name}, used by {places:?}{family}")
        })
        .collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries metrics /metrics does not serve:\n{}\n\nserved: {served:?}",
        missing.join("\n")
    );
}

#[test]
fn the_scan_finds_names_in_promql() {
    assert_eq!(
        metric_names(
            "histogram_quantile(0.99, sum by (le) (rate(sluice_a_bucket{x=\"y\"}[$__rate_interval]))) / sluice_b:c + not_sluice_d"
        ),
        ["sluice_a_bucket", "sluice_b:c"]
    );
}
