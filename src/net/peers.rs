//! A shard's connections to other brokers for its inter-broker requests other
//! than replica fetching (transaction markers, KIP-890 verification).
//!
//! A [`KafkaClient`] carries one request at a time, so a request takes an idle
//! connection to its broker out of the pool (or connects a new one), and puts it
//! back only once its answer came back whole: after any error the connection is
//! dropped and the next request connects again. Concurrent requests to one broker
//! each use their own connection; up to [`MAX_IDLE_PER_BROKER`] stay open for
//! later ones. A broker that moved to another address gets a new connection.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use kafka_protocol::protocol::Request;

use crate::net::kafka_client::{ClientError, KafkaClient};
use crate::types::NodeId;

/// Idle connections kept per broker.
pub const MAX_IDLE_PER_BROKER: usize = 4;
/// The `client.id` of every request.
const CLIENT_ID: &str = "sluice-inter-broker";
/// How long establishing a connection may take, at most.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Answers to these requests are a few bytes per partition.
const MAX_RESPONSE_BYTES: usize = 8 << 20;

#[derive(Default)]
pub struct PeerClients {
    idle: RefCell<HashMap<NodeId, Vec<(SocketAddr, KafkaClient)>>>,
}

impl PeerClients {
    /// Sends `request` at `version` to `broker` at `address` and returns its
    /// answer; connecting, writing and reading each within `timeout`.
    pub async fn send<R: Request>(
        &self,
        broker: NodeId,
        address: SocketAddr,
        request: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response, ClientError> {
        let mut client = match self.take(broker, address) {
            Some(client) => client,
            None => {
                KafkaClient::connect(
                    address,
                    CLIENT_ID,
                    MAX_RESPONSE_BYTES,
                    CONNECT_TIMEOUT.min(timeout),
                )
                .await?
            }
        };
        let response = client.send(request, version, timeout).await?;
        self.put_back(broker, address, client);
        Ok(response)
    }

    /// An idle connection to `broker` at `address`; those to an older address
    /// are closed.
    fn take(&self, broker: NodeId, address: SocketAddr) -> Option<KafkaClient> {
        let mut idle = self.idle.borrow_mut();
        let clients = idle.get_mut(&broker)?;
        clients.retain(|(at, _)| *at == address);
        clients.pop().map(|(_, client)| client)
    }

    fn put_back(&self, broker: NodeId, address: SocketAddr, client: KafkaClient) {
        let mut idle = self.idle.borrow_mut();
        let clients = idle.entry(broker).or_default();
        if clients.len() < MAX_IDLE_PER_BROKER {
            clients.push((address, client));
        }
    }

    #[cfg(test)]
    fn idle_count(&self, broker: NodeId) -> usize {
        self.idle.borrow().get(&broker).map_or(0, Vec::len)
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    use glommio::LocalExecutorBuilder;
    use glommio::net::TcpListener;
    use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse, ResponseHeader};
    use kafka_protocol::protocol::{Encodable, HeaderVersion};

    use super::*;

    /// Answers every ApiVersions request on each accepted connection with an
    /// empty v0 answer; counts the connections.
    fn serve(listener: TcpListener, accepted: Rc<std::cell::Cell<usize>>) {
        glommio::spawn_local(async move {
            while let Ok(mut stream) = listener.accept().await {
                accepted.set(accepted.get() + 1);
                glommio::spawn_local(async move {
                    loop {
                        let mut size = [0; 4];
                        if stream.read_exact(&mut size).await.is_err() {
                            return;
                        }
                        let mut frame = vec![0; i32::from_be_bytes(size) as usize];
                        if stream.read_exact(&mut frame).await.is_err() {
                            return;
                        }
                        let correlation_id =
                            i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
                        let mut body = bytes::BytesMut::new();
                        ResponseHeader::default()
                            .with_correlation_id(correlation_id)
                            .encode(&mut body, ApiVersionsResponse::header_version(0))
                            .unwrap();
                        ApiVersionsResponse::default().encode(&mut body, 0).unwrap();
                        let mut answer = (body.len() as i32).to_be_bytes().to_vec();
                        answer.extend_from_slice(&body);
                        if stream.write_all(&answer).await.is_err() {
                            return;
                        }
                    }
                })
                .detach();
            }
        })
        .detach();
    }

    #[test]
    fn connections_are_reused_and_concurrent_requests_get_their_own() {
        LocalExecutorBuilder::default()
            .spawn(|| async move {
                let listener = TcpListener::bind("127.0.0.1:0").unwrap();
                let address = listener.local_addr().unwrap();
                let accepted = Rc::new(std::cell::Cell::new(0));
                serve(listener, Rc::clone(&accepted));
                let peers = Rc::new(PeerClients::default());
                let broker = NodeId(1);
                let timeout = Duration::from_secs(5);
                let request = ApiVersionsRequest::default();
                for _ in 0..3 {
                    peers
                        .send(broker, address, &request, 0, timeout)
                        .await
                        .unwrap();
                }
                assert_eq!(accepted.get(), 1, "one connection for sequential requests");
                assert_eq!(peers.idle_count(broker), 1);

                let concurrent: Vec<_> = (0..MAX_IDLE_PER_BROKER + 2)
                    .map(|_| {
                        let peers = Rc::clone(&peers);
                        let request = request.clone();
                        glommio::spawn_local(async move {
                            peers.send(broker, address, &request, 0, timeout).await
                        })
                    })
                    .collect();
                for task in concurrent {
                    task.await.unwrap();
                }
                assert_eq!(accepted.get(), MAX_IDLE_PER_BROKER + 2);
                assert_eq!(peers.idle_count(broker), MAX_IDLE_PER_BROKER);
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn a_failed_request_drops_its_connection() {
        LocalExecutorBuilder::default()
            .spawn(|| async move {
                // Bound but never accepting: the connection is made by the
                // kernel's backlog, the answer never comes.
                let listener = TcpListener::bind("127.0.0.1:0").unwrap();
                let address = listener.local_addr().unwrap();
                let peers = PeerClients::default();
                let error = peers
                    .send(
                        NodeId(2),
                        address,
                        &ApiVersionsRequest::default(),
                        0,
                        Duration::from_millis(100),
                    )
                    .await
                    .unwrap_err();
                assert!(matches!(error, ClientError::Timeout), "{error}");
                assert_eq!(peers.idle_count(NodeId(2)), 0);
                drop(listener);
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
