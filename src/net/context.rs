//! What a handler knows of the connection a request came on: the peer, the
//! listener, the client's id and software, the authenticated principal and the
//! transport the response goes back through.

use std::cell::RefCell;
use std::net::SocketAddr;

use kafka_protocol::protocol::StrBytes;

/// How bytes reach the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Plain TCP: segment file ranges go out with sendfile.
    Plain,
}

impl Transport {
    /// Whether file ranges can be sent without copying them through user space
    /// (a TLS stream, say, must encrypt them and cannot).
    pub fn sends_file_ranges(self) -> bool {
        match self {
            Transport::Plain => true,
        }
    }
}

/// An authenticated identity, as Kafka's `KafkaPrincipal` (`User:name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub kind: &'static str,
    pub name: String,
}

impl Principal {
    /// Everyone, until SASL exists.
    pub fn anonymous() -> Principal {
        Principal {
            kind: "User",
            name: "ANONYMOUS".into(),
        }
    }
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.kind, self.name)
    }
}

/// The client's name and version, as it announced them in ApiVersions v3+.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientSoftware {
    pub name: String,
    pub version: String,
}

pub struct ConnectionContext {
    pub peer: SocketAddr,
    /// The listener's name, as Kafka's `listeners` names them.
    pub listener: &'static str,
    pub principal: Principal,
    pub transport: Transport,
    client_id: RefCell<Option<String>>,
    software: RefCell<Option<ClientSoftware>>,
}

impl ConnectionContext {
    pub fn new(peer: SocketAddr, transport: Transport) -> ConnectionContext {
        ConnectionContext {
            peer,
            listener: "PLAINTEXT",
            principal: Principal::anonymous(),
            transport,
            client_id: RefCell::new(None),
            software: RefCell::new(None),
        }
    }

    /// The peer's address as Kafka reports it in DescribeGroups (`/127.0.0.1`).
    pub fn client_host(&self) -> String {
        format!("/{}", self.peer.ip())
    }

    /// The client id of the request being handled (each request header names one).
    pub fn client_id(&self) -> Option<String> {
        self.client_id.borrow().clone()
    }

    pub fn set_client_id(&self, client_id: Option<&StrBytes>) {
        let mut current = self.client_id.borrow_mut();
        if current.as_deref() != client_id.map(|c| &**c) {
            *current = client_id.map(|c| c.to_string());
        }
    }

    pub fn client_software(&self) -> Option<ClientSoftware> {
        self.software.borrow().clone()
    }

    pub fn set_client_software(&self, name: &StrBytes, version: &StrBytes) {
        if name.is_empty() {
            return;
        }
        *self.software.borrow_mut() = Some(ClientSoftware {
            name: name.to_string(),
            version: version.to_string(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_reports_kafkas_forms() {
        let context = ConnectionContext::new("127.0.0.1:50000".parse().unwrap(), Transport::Plain);
        assert_eq!(context.client_host(), "/127.0.0.1");
        assert_eq!(context.principal.to_string(), "User:ANONYMOUS");
        assert!(context.transport.sends_file_ranges());
        context.set_client_id(Some(&StrBytes::from_static_str("app")));
        assert_eq!(context.client_id().as_deref(), Some("app"));
        context.set_client_software(
            &StrBytes::from_static_str("librdkafka"),
            &StrBytes::from_static_str("2.12.1"),
        );
        assert_eq!(context.client_software().unwrap().name, "librdkafka");
    }
}
