//! Client connections: framing, one request at a time per connection, responses
//! in request order; and the broker's own client connections to other brokers.

pub mod connection;
pub mod context;
pub mod kafka_client;
pub mod listen_check;
pub mod metrics_endpoint;
pub mod outgoing;
pub mod peers;
pub mod sendfile;
