//! Kafka wire protocol glue: framing, request/response codecs (kafka-protocol crate)
//! and the advertised API versions.

pub mod api_versions;
pub mod codec;
pub mod error_code;
pub mod frame;
pub mod old_produce;
pub mod spliced;
