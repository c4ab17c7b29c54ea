//! Overload protection: per-IP connection counts and message rates (GCRA via governor; IPv6
//! counted per /64, what one subscriber gets), the per-session message rate limiter, the
//! pre-login and session connection budgets, and admission control that refuses new rooms
//! while the recent tick p99 is above its limit.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Weak};

use dashmap::DashMap;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use parking_lot::Mutex;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// A GCRA limiter allowing `per_s` sustained and `burst` at once (0 is treated as 1).
pub fn limiter(per_s: u32, burst: u32) -> DefaultDirectRateLimiter {
    let rate = NonZeroU32::new(per_s.max(1)).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
    RateLimiter::direct(Quota::per_second(rate).allow_burst(burst))
}

/// The bucket an address is counted in: an IPv4 address itself (also when it arrives mapped
/// into IPv6), an IPv6 address by its /64, since one subscriber is usually given a whole /64
/// and could otherwise take a fresh address for every connection.
pub fn ip_bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

/// Connection counts and message limiters per client IP (per /64 for IPv6, [`ip_bucket`]).
#[derive(Debug)]
pub struct IpLimits {
    entries: DashMap<IpAddr, IpEntry>,
    max_connections_per_ip: usize,
    rate_per_s: u32,
    burst: u32,
}

#[derive(Debug)]
struct IpEntry {
    connections: usize,
    limiter: Arc<DefaultDirectRateLimiter>,
}

/// A connection's claim on its IP's budget; released on drop.
#[derive(Debug)]
pub struct IpGuard {
    limits: Arc<IpLimits>,
    ip: IpAddr,
    /// Shared by every connection from this IP.
    pub limiter: Arc<DefaultDirectRateLimiter>,
}

impl IpLimits {
    /// Limits of `max_connections_per_ip` connections and `rate_per_s`/`burst` messages per IP.
    pub fn new(max_connections_per_ip: usize, rate_per_s: u32, burst: u32) -> Arc<IpLimits> {
        Arc::new(IpLimits {
            entries: DashMap::new(),
            max_connections_per_ip,
            rate_per_s,
            burst,
        })
    }

    /// Takes a connection slot for `ip`'s bucket, or None when the bucket is at its limit.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<IpGuard> {
        let ip = ip_bucket(ip);
        let mut entry = self.entries.entry(ip).or_insert_with(|| IpEntry {
            connections: 0,
            limiter: Arc::new(limiter(self.rate_per_s, self.burst)),
        });
        if entry.connections >= self.max_connections_per_ip {
            return None;
        }
        entry.connections += 1;
        let limiter = entry.limiter.clone();
        drop(entry);
        Some(IpGuard {
            limits: self.clone(),
            ip,
            limiter,
        })
    }

    /// Connections currently held by `ip`'s bucket.
    pub fn connections(&self, ip: IpAddr) -> usize {
        self.entries
            .get(&ip_bucket(ip))
            .map_or(0, |e| e.connections)
    }
}

impl Drop for IpGuard {
    fn drop(&mut self) {
        // Forget the IP once its last connection is gone, so the map stays bounded.
        self.limits.entries.remove_if_mut(&self.ip, |_, e| {
            e.connections = e.connections.saturating_sub(1);
            e.connections == 0
        });
    }
}

/// The pre-login budget. A connection holds one of its permits from before it is accepted until
/// its handshake's challenge is answered (a valid ticket or session proved), and then exchanges
/// it for a session permit ([`ConnectionSlot::promote`]). So connections that never log in
/// cannot use up the slots of established sessions. When the budget is spent, the oldest
/// pre-login connection is closed to make room, so idle sockets from many addresses delay a
/// real player by one handshake at most instead of locking them out until a timeout.
#[derive(Debug)]
pub struct PreLogin {
    slots: Arc<Semaphore>,
    total: usize,
    /// Pre-login connections, oldest first (entries of finished or promoted ones are skipped).
    order: Mutex<VecDeque<Weak<Mark>>>,
}

const PENDING: u8 = 0;
const PROMOTED: u8 = 1;
const EVICTED: u8 = 2;

/// One pre-login connection's state, shared with the budget so it can be evicted.
#[derive(Debug, Default)]
pub struct Mark {
    state: AtomicU8,
    notify: Notify,
}

impl Mark {
    /// Completes once the budget evicted this connection (never, once it was promoted).
    pub async fn evicted(&self) {
        self.notify.notified().await;
    }
}

/// Why a connection could not exchange its pre-login permit for a session permit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SlotError {
    /// Every session slot is taken (`--max-connections`).
    #[error("the server is full")]
    Full,
    /// The pre-login budget closed this connection to make room for a newer one.
    #[error("evicted to make room for newer connections")]
    Evicted,
}

/// A connection's place in the budgets: a pre-login permit, then a session permit.
#[derive(Debug)]
pub struct ConnectionSlot {
    mark: Arc<Mark>,
    _permit: OwnedSemaphorePermit,
    promoted: bool,
}

impl PreLogin {
    /// A budget of `total` pre-login connections (at least 1).
    pub fn new(total: usize) -> PreLogin {
        let total = total.max(1);
        PreLogin {
            slots: Arc::new(Semaphore::new(total)),
            total,
            order: Mutex::new(VecDeque::new()),
        }
    }

    /// A pre-login permit, evicting the oldest pre-login connection first when none is free.
    /// `None` once the budget is closed.
    pub async fn acquire(&self) -> Option<OwnedSemaphorePermit> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Some(permit);
        }
        self.evict_oldest();
        self.slots.clone().acquire_owned().await.ok()
    }

    /// Registers a newly accepted connection holding `permit`.
    pub fn slot(&self, permit: OwnedSemaphorePermit) -> ConnectionSlot {
        let mark = Arc::new(Mark::default());
        let mut order = self.order.lock();
        if order.len() >= 2 * self.total {
            // Entries of connections that finished or logged in pile up: drop them.
            order.retain(|m| {
                m.upgrade()
                    .is_some_and(|m| m.state.load(Ordering::Acquire) == PENDING)
            });
        }
        order.push_back(Arc::downgrade(&mark));
        drop(order);
        ConnectionSlot {
            mark,
            _permit: permit,
            promoted: false,
        }
    }

    /// Tells the oldest still-pending connection to close; false when there was none.
    pub fn evict_oldest(&self) -> bool {
        let mut order = self.order.lock();
        while let Some(weak) = order.pop_front() {
            let Some(mark) = weak.upgrade() else { continue };
            if mark
                .state
                .compare_exchange(PENDING, EVICTED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                mark.notify.notify_one();
                return true;
            }
        }
        false
    }

    /// Pre-login connections now.
    pub fn in_use(&self) -> usize {
        self.total - self.slots.available_permits()
    }

    /// The budget's size.
    pub fn total(&self) -> usize {
        self.total
    }

    /// True while more than half the budget is in use: QUIC then asks unvalidated addresses
    /// to prove themselves with a Retry first.
    pub fn under_load(&self) -> bool {
        self.in_use() * 2 > self.total
    }
}

impl ConnectionSlot {
    /// What the budget uses to evict this connection.
    pub fn mark(&self) -> Arc<Mark> {
        self.mark.clone()
    }

    /// True once the connection holds a session permit.
    pub fn promoted(&self) -> bool {
        self.promoted
    }

    /// Exchanges the pre-login permit for one of `sessions`' permits.
    pub fn promote(&mut self, sessions: &Arc<Semaphore>) -> Result<(), SlotError> {
        if self.promoted {
            return Ok(());
        }
        let permit = sessions
            .clone()
            .try_acquire_owned()
            .map_err(|_| SlotError::Full)?;
        self.mark
            .state
            .compare_exchange(PENDING, PROMOTED, Ordering::AcqRel, Ordering::Acquire)
            .map_err(|_| SlotError::Evicted)?;
        // The pre-login permit is released here, as the session permit takes its place.
        self._permit = permit;
        self.promoted = true;
        Ok(())
    }
}

/// Admission control: set while recent ticks are too slow; new rooms are refused meanwhile.
#[derive(Debug, Default)]
pub struct Admission {
    overloaded: AtomicBool,
}

impl Admission {
    /// Records whether the server is over its tick budget.
    pub fn set_overloaded(&self, overloaded: bool) {
        self.overloaded.store(overloaded, Ordering::Relaxed);
    }

    /// True while new rooms should be refused.
    pub fn overloaded(&self) -> bool {
        self.overloaded.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_connection_limit_is_enforced_and_released() {
        let limits = IpLimits::new(2, 100, 100);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let a = limits.admit(ip).unwrap();
        let _b = limits.admit(ip).unwrap();
        assert!(limits.admit(ip).is_none());
        drop(a);
        assert_eq!(limits.connections(ip), 1);
        assert!(limits.admit(ip).is_some());
    }

    #[test]
    fn ipv6_is_counted_per_slash_64_and_mapped_ipv4_as_ipv4() {
        let limits = IpLimits::new(2, 100, 100);
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:fffe".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        let _a = limits.admit(a).unwrap();
        let _b = limits.admit(b).unwrap();
        assert!(limits.admit("2001:db8:1:2::77".parse().unwrap()).is_none());
        assert!(
            limits.admit(other).is_some(),
            "the next /64 is someone else"
        );
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        let _v4 = limits.admit(v4).unwrap();
        let _mapped = limits.admit(mapped).unwrap();
        assert!(limits.admit(v4).is_none());
        assert_eq!(limits.connections(mapped), 2);
    }

    #[tokio::test]
    async fn a_full_pre_login_budget_evicts_its_oldest_connection() {
        let budget = PreLogin::new(2);
        let first = budget.slot(budget.acquire().await.unwrap());
        let second = budget.slot(budget.acquire().await.unwrap());
        assert!(budget.under_load());
        let evicted = first.mark();
        // The budget is spent: acquiring evicts `first`, whose task then closes and frees it.
        let (permit, ()) = tokio::join!(budget.acquire(), async {
            evicted.evicted().await;
            drop(first);
        });
        assert!(permit.is_some());
        assert!(budget.evict_oldest(), "`second` is next");
        assert!(!budget.evict_oldest(), "and nobody after it");
        drop(second);
    }

    #[test]
    fn promotion_swaps_the_pre_login_permit_for_a_session_permit() {
        let budget = PreLogin::new(1);
        let sessions = Arc::new(Semaphore::new(1));
        let mut slot = budget.slot(budget.slots.clone().try_acquire_owned().unwrap());
        assert_eq!(budget.in_use(), 1);
        slot.promote(&sessions).unwrap();
        assert!(slot.promoted());
        assert_eq!(budget.in_use(), 0, "the pre-login permit went back");
        assert_eq!(sessions.available_permits(), 0);
        assert!(
            !budget.evict_oldest(),
            "a promoted connection is never evicted"
        );

        let mut full = budget.slot(budget.slots.clone().try_acquire_owned().unwrap());
        assert_eq!(full.promote(&sessions), Err(SlotError::Full));
        let mut evicted = budget.slot(Arc::new(Semaphore::new(1)).try_acquire_owned().unwrap());
        assert!(budget.evict_oldest());
        assert!(budget.evict_oldest(), "the second pending one");
        drop(slot);
        assert_eq!(evicted.promote(&sessions), Err(SlotError::Evicted));
        assert_eq!(full.promote(&sessions), Err(SlotError::Evicted));
    }

    #[test]
    fn limiter_allows_the_burst_then_refuses() {
        let l = limiter(1, 5);
        let allowed = (0..20).filter(|_| l.check().is_ok()).count();
        assert_eq!(allowed, 5);
    }
}
