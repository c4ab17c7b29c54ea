//! Overload protection: per-IP connection counts and message rates (GCRA via governor), the
//! per-session message rate limiter, and admission control that refuses new rooms while the
//! recent tick p99 is above its limit.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// A GCRA limiter allowing `per_s` sustained and `burst` at once (0 is treated as 1).
pub fn limiter(per_s: u32, burst: u32) -> DefaultDirectRateLimiter {
    let rate = NonZeroU32::new(per_s.max(1)).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
    RateLimiter::direct(Quota::per_second(rate).allow_burst(burst))
}

/// Connection counts and message limiters per client IP.
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

    /// Takes a connection slot for `ip`, or None when the IP is at its limit.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<IpGuard> {
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

    /// Connections currently held by `ip`.
    pub fn connections(&self, ip: IpAddr) -> usize {
        self.entries.get(&ip).map_or(0, |e| e.connections)
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
    fn limiter_allows_the_burst_then_refuses() {
        let l = limiter(1, 5);
        let allowed = (0..20).filter(|_| l.check().is_ok()).count();
        assert_eq!(allowed, 5);
    }
}
