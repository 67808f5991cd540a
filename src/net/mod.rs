//! Client connections: framing, one request at a time per connection, responses
//! in request order.

pub mod connection;
pub mod context;
pub mod listen_check;
pub mod outgoing;
pub mod sendfile;
