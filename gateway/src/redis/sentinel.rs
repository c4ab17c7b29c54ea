//! Redis behind Sentinel: the directory follows the primary that the Sentinels name, through
//! failovers. A URL `redis+sentinel://host:port[,host:port...]/master-name` lists the Sentinels
//! and the name they monitor; the directory asks them where the primary is at start-up and
//! every `SENTINEL_POLL_MS`, and moves its connections when the answer changes. Calls made
//! while no primary answers fail as `Unavailable` (the gateway's `503` with `Retry-After`,
//! which clients wait out).

use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::watch;

use super::{
    bounded, unavailable, RedisConfig, REDIS_RECONNECT_MAX_DELAY_MS, REDIS_RECONNECT_RETRIES,
};
use crate::directory::DirectoryError;

/// The scheme of a Sentinel URL.
pub const SENTINEL_SCHEME: &str = "redis+sentinel://";
/// How often the directory asks the Sentinels where the primary is, in ms.
pub const SENTINEL_POLL_MS: u64 = 250;

/// The Redis the directory writes to: its client (for subscriptions) and its connection.
#[derive(Clone)]
pub(super) struct Primary {
    pub(super) client: ::redis::Client,
    pub(super) conn: ConnectionManager,
    /// `host:port` (for logs).
    pub(super) addr: String,
}

/// The Sentinels of a `redis+sentinel://` URL and the master name they monitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Sentinels {
    pub(super) addrs: Vec<String>,
    pub(super) master: String,
}

impl Sentinels {
    /// `Some` for a `redis+sentinel://h:p[,h:p...]/name` URL, `None` for any other scheme.
    pub(super) fn parse(url: &str) -> Result<Option<Sentinels>, DirectoryError> {
        let Some(rest) = url.strip_prefix(SENTINEL_SCHEME) else {
            return Ok(None);
        };
        let bad = |why: &str| DirectoryError::Unavailable(format!("bad sentinel url {url}: {why}"));
        let (hosts, master) = rest.split_once('/').ok_or_else(|| bad("no master name"))?;
        let master = master.trim_end_matches('/');
        if master.is_empty() || master.contains('/') {
            return Err(bad("the master name must follow the hosts: /name"));
        }
        let addrs: Vec<String> = hosts
            .split(',')
            .filter(|h| !h.is_empty())
            .map(str::to_owned)
            .collect();
        if addrs.is_empty() || addrs.iter().any(|a| !a.contains(':')) {
            return Err(bad("list the sentinels as host:port,host:port"));
        }
        Ok(Some(Sentinels {
            addrs,
            master: master.to_owned(),
        }))
    }

    /// Where the primary is now, by the first Sentinel that answers.
    pub(super) async fn primary_addr(&self, timeout: Duration) -> Result<String, DirectoryError> {
        let mut last = DirectoryError::Unavailable("no sentinel answered".into());
        for addr in &self.addrs {
            let asked = async {
                let client = ::redis::Client::open(format!("redis://{addr}"))?;
                let mut conn = client.get_multiplexed_async_connection().await?;
                ::redis::cmd("SENTINEL")
                    .arg("get-master-addr-by-name")
                    .arg(&self.master)
                    .query_async::<Option<(String, u16)>>(&mut conn)
                    .await
            };
            match bounded(timeout, asked).await {
                Ok(Some((host, port))) => return Ok(format!("{host}:{port}")),
                Ok(None) => {
                    last = DirectoryError::Unavailable(format!(
                        "sentinel {addr} monitors no master {}",
                        self.master
                    ))
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

/// The connection settings every primary connection uses.
fn manager_config(config: &RedisConfig) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_response_timeout(Some(config.response_timeout))
        .set_connection_timeout(Some(config.connect_timeout))
        .set_number_of_retries(REDIS_RECONNECT_RETRIES)
        .set_max_delay(Duration::from_millis(REDIS_RECONNECT_MAX_DELAY_MS))
}

/// Connects to the Redis at `url` (`redis://...`).
pub(super) async fn connect(url: &str, config: &RedisConfig) -> Result<Primary, DirectoryError> {
    let client = ::redis::Client::open(url).map_err(unavailable)?;
    let conn = bounded(
        config.call_timeout,
        ConnectionManager::new_with_config(client.clone(), manager_config(config)),
    )
    .await?;
    let addr = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .to_owned();
    Ok(Primary { client, conn, addr })
}

/// Asks the Sentinels where the primary is every `SENTINEL_POLL_MS` and, when it moved,
/// connects to the new one and hands it to the directory. Runs until aborted.
pub(super) async fn follow(
    sentinels: Sentinels,
    config: RedisConfig,
    primary: watch::Sender<Primary>,
) {
    let mut poll = tokio::time::interval(Duration::from_millis(SENTINEL_POLL_MS));
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        poll.tick().await;
        let Ok(addr) = sentinels.primary_addr(config.connect_timeout).await else {
            continue;
        };
        if primary.borrow().addr == addr {
            continue;
        }
        match connect(&format!("redis://{addr}"), &config).await {
            Ok(moved) => {
                tracing::warn!(from = %primary.borrow().addr, to = %addr, "the redis primary moved (sentinel failover)");
                primary.send_replace(moved);
            }
            Err(e) => tracing::warn!(%addr, error = %e, "cannot reach the new redis primary yet"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_urls_parse_and_bad_ones_are_refused() {
        assert_eq!(Sentinels::parse("redis://127.0.0.1:6379").unwrap(), None);
        assert_eq!(
            Sentinels::parse("redis+sentinel://127.0.0.1:26379,[::1]:26380/tickroom").unwrap(),
            Some(Sentinels {
                addrs: vec!["127.0.0.1:26379".into(), "[::1]:26380".into()],
                master: "tickroom".into(),
            })
        );
        for bad in [
            "redis+sentinel://127.0.0.1:26379",
            "redis+sentinel://127.0.0.1:26379/",
            "redis+sentinel:///tickroom",
            "redis+sentinel://localhost/tickroom",
            "redis+sentinel://h:1/a/b",
        ] {
            assert!(Sentinels::parse(bad).is_err(), "{bad}");
        }
    }
}
