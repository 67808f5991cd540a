//! Kafka wire protocol glue: error codes now, request/response codecs with the broker.

pub mod error_code;
