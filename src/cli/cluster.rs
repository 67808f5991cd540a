//! `sluice cluster info`: the cluster id, the controller and the brokers (with
//! racks) from DescribeCluster, and topic and partition counts from Metadata.
//!
//! rdkafka 0.39 does not wrap librdkafka's DescribeCluster, so this module calls
//! it through the C API (the only FFI in the CLI); against a broker older than
//! Kafka 2.8, without DescribeCluster, it falls back to Metadata (no racks).

use std::ffi::CStr;
use std::os::raw::c_char;
use std::process::ExitCode;
use std::time::Duration;

use rdkafka::bindings as rd;
use rdkafka::client::{Client, DefaultClientContext};
use rdkafka::types::RDKafkaErrorCode;
use serde_json::{Value, json};

use super::connect::Common;
use super::errors::{CliError, exit, is_transport};
use super::output::{Table, or_dash, print_json, print_text};
use super::topic::admin;

#[derive(clap::Subcommand, Debug)]
pub enum ClusterCommand {
    /// Show the cluster id, controller, brokers and topic/partition counts.
    Info(InfoArgs),
}

#[derive(clap::Args, Debug)]
pub struct InfoArgs {
    #[command(flatten)]
    pub common: Common,
}

pub fn run(command: ClusterCommand) -> ExitCode {
    exit(match command {
        ClusterCommand::Info(args) => info(args),
    })
}

struct Broker {
    id: i32,
    host: String,
    port: u16,
    rack: Option<String>,
}

struct Description {
    cluster_id: Option<String>,
    controller: Option<i32>,
    brokers: Vec<Broker>,
}

fn info(args: InfoArgs) -> Result<(), CliError> {
    let common = &args.common;
    let admin = admin(common)?;
    let client = admin.inner();
    let metadata = common.metadata(client, None)?;
    let description = match describe_cluster(client, common.timeout()) {
        Ok(description) => description,
        Err(RDKafkaErrorCode::UnsupportedFeature) => Description {
            cluster_id: client.fetch_cluster_id(common.timeout()),
            // SAFETY: a plain query on a live client handle.
            controller: Some(unsafe {
                rd::rd_kafka_controllerid(client.native_ptr(), timeout_ms(common.timeout()))
            })
            .filter(|id| *id >= 0),
            brokers: metadata
                .brokers()
                .iter()
                .map(|b| Broker {
                    id: b.id(),
                    host: b.host().to_string(),
                    port: u16::try_from(b.port()).unwrap_or_default(),
                    rack: None,
                })
                .collect(),
        },
        Err(code) if is_transport(code) => {
            return Err(CliError::Unreachable {
                bootstrap: common.bootstrap.clone(),
                detail: format!("DescribeCluster: {code}"),
            });
        }
        Err(code) => return Err(CliError::code(code, "DescribeCluster")),
    };
    let mut brokers = description.brokers;
    brokers.sort_by_key(|b| b.id);
    let topics = metadata.topics().len();
    let partitions: usize = metadata.topics().iter().map(|t| t.partitions().len()).sum();
    if common.json {
        let brokers: Vec<Value> = brokers
            .iter()
            .map(|b| json!({ "id": b.id, "host": b.host, "port": b.port, "rack": b.rack }))
            .collect();
        return print_json(&json!({
            "cluster_id": description.cluster_id,
            "controller": description.controller,
            "brokers": brokers,
            "topics": topics,
            "partitions": partitions,
        }));
    }
    let mut text = format!(
        "Cluster: {}  Controller: {}  Topics: {topics}  Partitions: {partitions}\n\n",
        or_dash(description.cluster_id),
        or_dash(description.controller)
    );
    let mut table = Table::new(&["BROKER", "ADDRESS", "RACK"]);
    for b in &brokers {
        table.row(vec![
            b.id.to_string(),
            format!("{}:{}", b.host, b.port),
            or_dash(b.rack.as_ref()),
        ]);
    }
    text.push_str(&table.render());
    print_text(&text)
}

fn timeout_ms(timeout: Duration) -> i32 {
    i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX)
}

/// Destroys what librdkafka handed out, on every return path.
struct Owned<T> {
    ptr: *mut T,
    destroy: unsafe extern "C" fn(*mut T),
}

impl<T> Drop for Owned<T> {
    fn drop(&mut self) {
        if !self.ptr.is_null() {
            // SAFETY: `ptr` came from the librdkafka constructor matching `destroy`
            // and is destroyed once, here.
            unsafe { (self.destroy)(self.ptr) }
        }
    }
}

/// A C string librdkafka owns, copied; `None` for NULL.
///
/// # Safety
/// `text` is NULL or a NUL-terminated string alive for the call.
unsafe fn string(text: *const c_char) -> Option<String> {
    (!text.is_null()).then(|| {
        unsafe { CStr::from_ptr(text) }
            .to_string_lossy()
            .into_owned()
    })
}

/// librdkafka's DescribeCluster, waited for at most `timeout`.
fn describe_cluster(
    client: &Client<DefaultClientContext>,
    timeout: Duration,
) -> Result<Description, RDKafkaErrorCode> {
    let rk = client.native_ptr();
    let ms = timeout_ms(timeout);
    // SAFETY: every pointer comes from librdkafka for this live client, is checked
    // for NULL where the API allows NULL, is released by an `Owned` guard, and the
    // result's nodes and strings are copied out before the event is destroyed.
    unsafe {
        let queue = Owned {
            ptr: rd::rd_kafka_queue_new(rk),
            destroy: rd::rd_kafka_queue_destroy,
        };
        let options = Owned {
            ptr: rd::rd_kafka_AdminOptions_new(
                rk,
                rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBECLUSTER,
            ),
            destroy: rd::rd_kafka_AdminOptions_destroy,
        };
        let mut errstr = [0 as c_char; 256];
        rd::rd_kafka_AdminOptions_set_request_timeout(
            options.ptr,
            ms,
            errstr.as_mut_ptr(),
            errstr.len(),
        );
        rd::rd_kafka_DescribeCluster(rk, options.ptr, queue.ptr);
        // The request times out in librdkafka after `ms`; the extra second only
        // lets that answer arrive.
        let event = Owned {
            ptr: rd::rd_kafka_queue_poll(queue.ptr, ms.saturating_add(1_000)),
            destroy: rd::rd_kafka_event_destroy,
        };
        if event.ptr.is_null() {
            return Err(RDKafkaErrorCode::OperationTimedOut);
        }
        let code: RDKafkaErrorCode = rd::rd_kafka_event_error(event.ptr).into();
        if code != RDKafkaErrorCode::NoError {
            return Err(code);
        }
        let result = rd::rd_kafka_event_DescribeCluster_result(event.ptr);
        if result.is_null() {
            return Err(RDKafkaErrorCode::Fail);
        }
        let node = |node: *const rd::rd_kafka_Node_t| Broker {
            id: rd::rd_kafka_Node_id(node),
            host: string(rd::rd_kafka_Node_host(node)).unwrap_or_default(),
            port: rd::rd_kafka_Node_port(node),
            rack: string(rd::rd_kafka_Node_rack(node)),
        };
        let mut count = 0usize;
        let nodes = rd::rd_kafka_DescribeCluster_result_nodes(result, &mut count);
        let brokers = if nodes.is_null() {
            Vec::new()
        } else {
            std::slice::from_raw_parts(nodes, count)
                .iter()
                .map(|n| node(*n))
                .collect()
        };
        let controller = rd::rd_kafka_DescribeCluster_result_controller(result);
        Ok(Description {
            cluster_id: string(rd::rd_kafka_DescribeCluster_result_cluster_id(result)),
            controller: (!controller.is_null()).then(|| rd::rd_kafka_Node_id(controller)),
            brokers,
        })
    }
}
