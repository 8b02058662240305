//! Events sent to the API server (`events.k8s.io/v1`): deduplicated
//! (the same finding about the same object is sent once per [`REPEAT_AFTER`], however often
//! the audits find it) and rate-limited (at most one every [`MIN_GAP`]; what does not fit in
//! the queue is dropped and counted in the log).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use std::time::SystemTime;

use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::ops::events::{EventRecorder, ObjectEvent};

/// The same Event about the same object is sent again only after this long.
pub const REPEAT_AFTER: Duration = Duration::from_secs(3600);
/// The least time between two Events sent.
pub const MIN_GAP: Duration = Duration::from_millis(100);
/// Events waiting to be sent at most; more are dropped.
pub const QUEUE: usize = 256;
/// Events remembered for deduplication at most (the oldest forgotten first).
const REMEMBERED: usize = 10_000;

/// Queues Events for [`send`], dropping repeats and what does not fit.
#[derive(Debug)]
pub struct EventPublisher {
    queue: mpsc::Sender<ObjectEvent>,
    sent: Mutex<HashMap<ObjectEvent, Instant>>,
}

impl EventPublisher {
    /// A publisher, and the queue [`send`] empties.
    pub fn new() -> (Self, mpsc::Receiver<ObjectEvent>) {
        let (queue, receiver) = mpsc::channel(QUEUE);
        (
            EventPublisher {
                queue,
                sent: Mutex::new(HashMap::new()),
            },
            receiver,
        )
    }

    /// Whether `event` was not recorded within [`REPEAT_AFTER`] of `now` (and remembers it).
    fn first_in_a_while(&self, event: &ObjectEvent, now: Instant) -> bool {
        let mut sent = self.sent.lock().unwrap_or_else(PoisonError::into_inner);
        if sent
            .get(event)
            .is_some_and(|at| now.saturating_duration_since(*at) < REPEAT_AFTER)
        {
            return false;
        }
        if sent.len() >= REMEMBERED {
            sent.retain(|_, at| now.saturating_duration_since(*at) < REPEAT_AFTER);
            if sent.len() >= REMEMBERED {
                sent.clear();
            }
        }
        sent.insert(event.clone(), now);
        true
    }
}

impl EventRecorder for EventPublisher {
    fn record(&self, event: ObjectEvent) {
        if !self.first_in_a_while(&event, Instant::now()) {
            return;
        }
        // Closed: no client could be made (logged once where it failed).
        if let Err(mpsc::error::TrySendError::Full(_)) = self.queue.try_send(event) {
            warn!("too many Events to send: one dropped");
        }
    }
}

/// Sends the queued Events as `nodeguard` on node `node`, at most one every [`MIN_GAP`], until
/// `shutdown`. Each is created as it is (`events.k8s.io/v1`): the deduplication is done when
/// recorded, and two different findings about one object stay two Events. A failure is
/// logged; the Event is not retried.
pub async fn send(
    client: Client,
    node: String,
    mut queue: mpsc::Receiver<ObjectEvent>,
    shutdown: CancellationToken,
) {
    let resource = ApiResource {
        group: "events.k8s.io".into(),
        version: "v1".into(),
        api_version: "events.k8s.io/v1".into(),
        kind: "Event".into(),
        plural: "events".into(),
    };
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => return,
            event = queue.recv() => match event {
                Some(event) => event,
                None => return,
            },
        };
        let object = event_object(&event, &node, SystemTime::now());
        let namespace = if event.regarding.namespace.is_empty() {
            "default"
        } else {
            event.regarding.namespace.as_str()
        };
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        let sent = match serde_json::from_value::<DynamicObject>(object) {
            Ok(object) => api.create(&PostParams::default(), &object).await.map(drop),
            Err(e) => {
                warn!(error = %e, "cannot build an Event");
                Ok(())
            }
        };
        match sent {
            Ok(()) => debug!(reason = event.reason, name = %event.regarding.name, "event sent"),
            Err(e) => warn!(error = %e, reason = event.reason, "cannot send an Event"),
        }
        tokio::time::sleep(MIN_GAP).await;
    }
}

/// The `events.k8s.io/v1` Event of `event`, reported by `nodeguard` on `node` at `now`.
pub fn event_object(event: &ObjectEvent, node: &str, now: SystemTime) -> serde_json::Value {
    let nanos = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let r = &event.regarding;
    let mut regarding = serde_json::json!({
        "apiVersion": r.api_version, "kind": r.kind, "name": r.name,
    });
    if !r.namespace.is_empty() {
        regarding["namespace"] = r.namespace.clone().into();
    }
    if !r.uid.is_empty() {
        regarding["uid"] = r.uid.clone().into();
    }
    let namespace = if r.namespace.is_empty() {
        "default"
    } else {
        r.namespace.as_str()
    };
    serde_json::json!({
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": format!("{}.{nanos:x}", r.name), "namespace": namespace},
        "eventTime": humantime::format_rfc3339_micros(now).to_string(),
        "reportingController": "nodeguard.io/nodeguard",
        "reportingInstance": format!("nodeguard-{node}"),
        "action": event.action,
        "reason": event.reason,
        "note": truncate(&event.message, 1000),
        "type": if event.warning { "Warning" } else { "Normal" },
        "regarding": regarding,
    })
}

/// `text` cut to at most `max` bytes, on a character boundary (an Event's note is at most 1 kB).
fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max.saturating_sub(3);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::events::Regarding;

    fn event(message: &str) -> ObjectEvent {
        ObjectEvent {
            regarding: Regarding {
                api_version: "v1".into(),
                kind: "Pod".into(),
                namespace: "shop".into(),
                name: "cart".into(),
                uid: "u".into(),
            },
            warning: true,
            reason: "PolicyWarning",
            action: "Judged",
            message: message.into(),
        }
    }

    #[test]
    fn the_same_event_is_sent_once_an_hour() {
        let (publisher, _queue) = EventPublisher::new();
        let t0 = Instant::now();
        assert!(publisher.first_in_a_while(&event("a"), t0));
        assert!(!publisher.first_in_a_while(&event("a"), t0 + Duration::from_secs(600)));
        assert!(
            publisher.first_in_a_while(&event("b"), t0),
            "another finding"
        );
        assert!(publisher.first_in_a_while(&event("a"), t0 + REPEAT_AFTER));
    }

    #[test]
    fn a_full_queue_drops_instead_of_blocking() {
        let (publisher, mut queue) = EventPublisher::new();
        for i in 0..QUEUE + 10 {
            publisher.record(event(&format!("finding {i}")));
        }
        let mut queued = 0;
        while queue.try_recv().is_ok() {
            queued += 1;
        }
        assert_eq!(queued, QUEUE);
    }

    #[test]
    fn notes_are_cut_on_a_character_boundary() {
        assert_eq!(truncate("short", 10), "short");
        let cut = truncate(&"é".repeat(600), 1000);
        assert!(cut.len() <= 1000 && cut.ends_with("..."));
    }
}
