//! Container specs read ahead of StartContainer.
//!
//! containerd holds its NRI lock while a plugin answers StartContainer, so a spec read from
//! containerd inside that request delays every other container start on the node. After a
//! create nodeguard allows, it reads the spec as soon as containerd has the container record
//! (off the request path) and keeps it here until the start takes it.
//!
//! A spec is only ever handed out when nothing can have changed it since it was read: an
//! UpdateContainer forgets the container (and a read still in flight for it is dropped when it
//! lands), each entry is taken once, and entries expire. Whatever is not here is read on demand,
//! as before.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::runtime::containerd::ContainerRecord;

/// Entries kept at most; the oldest go first when full (containers created and never started).
pub const CAPACITY: usize = 1024;

/// How long a read-ahead spec stays usable: a start later than this reads on demand.
pub const TTL: Duration = Duration::from_secs(300);

/// One container's read-ahead.
#[derive(Debug)]
struct Slot {
    /// The read that filled (or is filling) it, numbered in the order reads began: a read
    /// outlived by an update or by a newer read does not match, and the smallest is the oldest.
    ticket: u64,
    /// The spec and when it was read; `None` while the read is under way.
    ready: Option<(Arc<ContainerRecord>, Instant)>,
}

impl Slot {
    /// Whether read `ticket` is the one under way here.
    fn reading(&self, ticket: Ticket) -> bool {
        self.ticket == ticket.0 && self.ready.is_none()
    }
}

#[derive(Debug, Default)]
struct Inner {
    slots: HashMap<String, Slot>,
    next: u64,
}

/// Specs read after create, by container id.
#[derive(Debug, Default)]
pub struct Prefetched {
    inner: Mutex<Inner>,
}

/// A read under way, returned by [`Prefetched::begin`] and given back to
/// [`Prefetched::finish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket(u64);

impl Prefetched {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts a read for `id`, making room when full.
    pub fn begin(&self, id: &str) -> Ticket {
        let mut inner = self.lock();
        inner.next += 1;
        let ticket = inner.next;
        if inner.slots.len() >= CAPACITY
            && !inner.slots.contains_key(id)
            && let Some(oldest) = inner
                .slots
                .iter()
                .min_by_key(|(_, slot)| slot.ticket)
                .map(|(id, _)| id.clone())
        {
            inner.slots.remove(&oldest);
        }
        inner.slots.insert(
            id.to_string(),
            Slot {
                ticket,
                ready: None,
            },
        );
        Ticket(ticket)
    }

    /// Stores the spec the read `ticket` got, unless the container was forgotten or read
    /// again meanwhile; returns whether it was stored.
    pub fn finish(&self, id: &str, ticket: Ticket, spec: ContainerRecord, now: Instant) -> bool {
        let mut inner = self.lock();
        match inner.slots.get_mut(id) {
            Some(slot) if slot.reading(ticket) => {
                slot.ready = Some((Arc::new(spec), now));
                true
            }
            _ => false,
        }
    }

    /// Drops the read `ticket` (it failed or gave up), unless a newer one replaced it.
    pub fn abandon(&self, id: &str, ticket: Ticket) {
        let mut inner = self.lock();
        if inner.slots.get(id).is_some_and(|slot| slot.reading(ticket)) {
            inner.slots.remove(id);
        }
    }

    /// Whether the read `ticket` is still wanted (the container was not forgotten meanwhile).
    pub fn wanted(&self, id: &str, ticket: Ticket) -> bool {
        self.lock()
            .slots
            .get(id)
            .is_some_and(|slot| slot.reading(ticket))
    }

    /// Takes the spec read ahead for `id`, if it is there and younger than [`TTL`] at `now`.
    /// A read still under way is left alone (the caller reads on demand).
    pub fn take(&self, id: &str, now: Instant) -> Option<Arc<ContainerRecord>> {
        let mut inner = self.lock();
        // A read under way stays; only a finished one is taken.
        inner.slots.get(id)?.ready.as_ref()?;
        let (spec, at) = inner.slots.remove(id)?.ready?;
        (now.duration_since(at) < TTL).then_some(spec)
    }

    /// Forgets `id`: its spec may have changed (an update), or it is gone.
    pub fn forget(&self, id: &str) {
        self.lock().slots.remove(id);
    }

    /// How many containers have a read under way or a spec waiting.
    pub fn len(&self) -> usize {
        self.lock().slots.len()
    }

    /// Whether nothing is read ahead.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ContainerRecord {
        ContainerRecord {
            spec: nodeguard_views::oci::RuntimeSpec::from_json(br#"{"ociVersion":"1.1.0"}"#)
                .unwrap(),
            image: String::new(),
        }
    }

    #[test]
    fn a_finished_read_is_taken_once() {
        let p = Prefetched::default();
        let now = Instant::now();
        let t = p.begin("c1");
        assert!(p.take("c1", now).is_none(), "not while reading");
        assert!(p.finish("c1", t, spec(), now));
        assert!(p.take("c1", now).is_some());
        assert!(p.take("c1", now).is_none(), "taken once");
        assert!(p.is_empty());
    }

    #[test]
    fn a_read_outlived_by_an_update_is_not_stored() {
        let p = Prefetched::default();
        let now = Instant::now();
        let t = p.begin("c1");
        p.forget("c1");
        assert!(!p.wanted("c1", t));
        assert!(
            !p.finish("c1", t, spec(), now),
            "the update came after the read began"
        );
        assert!(p.take("c1", now).is_none());

        // A newer read replaces an older one: the older one's result is not stored.
        let old = p.begin("c2");
        let new = p.begin("c2");
        assert!(!p.finish("c2", old, spec(), now));
        p.abandon("c2", old);
        assert!(
            p.wanted("c2", new),
            "abandoning the old read leaves the new one"
        );
        assert!(p.finish("c2", new, spec(), now));
        assert!(p.take("c2", now).is_some());
    }

    #[test]
    fn an_old_spec_is_not_handed_out() {
        let p = Prefetched::default();
        let then = Instant::now();
        let t = p.begin("c1");
        assert!(p.finish("c1", t, spec(), then));
        assert!(p.take("c1", then + TTL).is_none());
        assert!(p.is_empty(), "and it is gone");
    }

    #[test]
    fn the_oldest_entry_makes_room() {
        let p = Prefetched::default();
        let now = Instant::now();
        for i in 0..CAPACITY {
            let id = format!("c{i}");
            let t = p.begin(&id);
            p.finish(&id, t, spec(), now);
        }
        let t = p.begin("new");
        assert_eq!(p.len(), CAPACITY);
        assert!(p.take("c0", now).is_none(), "the oldest left");
        assert!(p.take("c1", now).is_some());
        assert!(p.finish("new", t, spec(), now));
    }
}
