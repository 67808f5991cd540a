//! Executors per core. For now: what every executor must run beside its work.

pub mod reactor_heartbeat;
