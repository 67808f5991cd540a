//! This broker's life in the cluster: it registers with the active controller
//! (fenced until caught up with the metadata log), heartbeats with its broker
//! epoch, registers again when the controller no longer knows that epoch, and
//! on a clean shutdown asks the controller to move its leaderships away first.
//! A broker-only node also follows the committed metadata from the controller.

use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::cluster::controller::BrokerRegistration;
use crate::shard::metadata::MetadataNode;
use crate::shard::metadata::rpc::{ControllerRequest, ControllerResponse};

/// How long a clean shutdown waits for the controller to move leaderships.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);
/// Pause between failed attempts to reach a controller.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

impl MetadataNode {
    /// Registers this broker and keeps it alive with heartbeats, in a task of
    /// its own, until [`MetadataNode::shut_down`].
    pub fn start_broker(self: &Rc<Self>) {
        let node = Rc::clone(self);
        glommio::spawn_local(async move { node.heartbeat_loop().await }).detach();
    }

    async fn heartbeat_loop(&self) {
        let interval = Duration::from_millis(self.shard().config().broker_heartbeat_interval_ms);
        // Runs for the life of the process; each turn waits `interval` or retries.
        loop {
            if self.stopping.get() {
                return;
            }
            let Some(epoch) = self.broker_epoch.get() else {
                self.register().await;
                continue;
            };
            let request = ControllerRequest::Heartbeat {
                id: self.identity.node,
                epoch,
                applied: self.published.get(),
                shutting_down: false,
            };
            match self.ask_controller(request).await {
                ControllerResponse::Heartbeat { fenced } => {
                    if !fenced {
                        // Serve only once every shard's image has this broker
                        // unfenced: a request routed by an older image would
                        // get NOT_LEADER_OR_FOLLOWER for its own partitions.
                        self.applied_unfenced(epoch, interval).await;
                    }
                    self.set_fenced(fenced);
                    // A fenced broker asks again soon: it is unfenced by the
                    // first heartbeat after it caught up.
                    glommio::timer::sleep(if fenced { RETRY_PAUSE } else { interval }).await;
                }
                ControllerResponse::StaleBrokerEpoch => {
                    tracing::warn!(
                        epoch,
                        "the controller no longer knows this broker's epoch: registering again"
                    );
                    self.broker_epoch.set(None);
                    self.set_fenced(true);
                }
                answer => {
                    tracing::debug!(?answer, "heartbeat not answered");
                    glommio::timer::sleep(RETRY_PAUSE).await;
                }
            }
        }
    }

    async fn register(&self) {
        let shard = self.shard();
        let (host, port) = shard.config().advertised();
        let registration = BrokerRegistration {
            id: self.identity.node,
            incarnation: self.incarnation.clone(),
            host,
            port,
            rack: shard.config().broker_rack.clone(),
        };
        match self
            .ask_controller(ControllerRequest::RegisterBroker(registration))
            .await
        {
            ControllerResponse::Registered { epoch } => {
                tracing::info!(epoch, "broker registered");
                self.broker_epoch.set(Some(epoch));
                // Caught up with its own registration, the first heartbeat
                // can unfence it.
                self.published(u64::try_from(epoch).unwrap_or(0)).await;
            }
            answer => {
                tracing::info!(?answer, "broker registration not answered yet");
                glommio::timer::sleep(RETRY_PAUSE).await;
            }
        }
    }

    /// Waits (at most `limit`) until every shard applied an image in which
    /// this broker, at `epoch`, is unfenced.
    async fn applied_unfenced(&self, epoch: i64, limit: Duration) {
        let deadline = Instant::now() + limit;
        // Bounded by the deadline; one wake-up per publication.
        while Instant::now() < deadline {
            let unfenced_at = {
                let state = self.state.borrow();
                state
                    .brokers
                    .get(&self.identity.node)
                    .filter(|b| b.epoch == epoch && !b.fenced)
                    .map(|_| state.offset)
            };
            if let Some(offset) = unfenced_at
                && self.published.get() >= offset
            {
                return;
            }
            futures_lite::future::or(self.published_changed.wait(), async {
                glommio::timer::sleep(deadline.saturating_duration_since(Instant::now())).await;
            })
            .await;
        }
    }

    fn set_fenced(&self, fenced: bool) {
        if self.fenced.replace(fenced) != fenced {
            tracing::info!(fenced, "broker fencing changed");
            self.fenced_changed.wake_all();
        }
    }

    /// Controlled shutdown: the controller hands this broker's leaderships to
    /// other ISR members and fences it, so clients move before it stops.
    pub async fn shut_down(&self) {
        self.stopping.set(true);
        let Some(epoch) = self.broker_epoch.get() else {
            return;
        };
        let deadline = Instant::now() + SHUTDOWN_DEADLINE;
        let request = ControllerRequest::Heartbeat {
            id: self.identity.node,
            epoch,
            applied: self.published.get(),
            shutting_down: true,
        };
        let answer =
            futures_lite::future::or(async { Some(self.ask_controller(request).await) }, async {
                glommio::timer::sleep(deadline.saturating_duration_since(Instant::now())).await;
                None
            })
            .await;
        match answer {
            Some(ControllerResponse::Heartbeat { fenced: true }) => {
                tracing::info!("controlled shutdown: leaderships handed over");
            }
            other => tracing::warn!(?other, "controlled shutdown not confirmed; stopping anyway"),
        }
    }
}

/// A broker-only node: fetches the committed metadata from the controllers
/// until it has a first state, then keeps following in a task of its own.
pub(super) async fn follow(node: &Rc<MetadataNode>) {
    fetch_once(node).await;
    let node = Rc::clone(node);
    glommio::spawn_local(async move {
        // Runs for the life of the process; each turn is one long poll.
        while !node.stopping.get() {
            fetch_once(&node).await;
        }
    })
    .detach();
}

async fn fetch_once(node: &MetadataNode) {
    let after = node.state.borrow().offset;
    match node
        .ask_controller(ControllerRequest::FetchMetadata { after })
        .await
    {
        ControllerResponse::Metadata { state: Some(state) } => node.replace_state(*state),
        ControllerResponse::Metadata { state: None } => {}
        answer => {
            tracing::debug!(?answer, "metadata fetch not answered");
            glommio::timer::sleep(RETRY_PAUSE).await;
        }
    }
}
