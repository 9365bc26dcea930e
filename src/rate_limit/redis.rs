//! The GCRA in Redis, so every node counts against one allowance per key.

use redis::Script;
use redis::aio::ConnectionManager;

use super::{Rate, Throttled};

/// One key's theoretical arrival time (TAT) in milliseconds of Redis's clock. A request is
/// allowed when `now >= tat - interval * (burst - 1)`; it then moves the TAT one interval on.
/// The key expires when it would hold no information any more. Returns the wait in ms, or 0.
const GCRA: &str = "
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local tolerance = interval * (tonumber(ARGV[2]) - 1)
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local allow_at = tat - tolerance
if now < allow_at then return allow_at - now end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', new_tat - now + 1)
return 0
";

/// The shared limiter: one script call per check.
pub struct RedisLimiter {
    conn: ConnectionManager,
    prefix: String,
    script: Script,
}

impl RedisLimiter {
    pub fn new(conn: ConnectionManager, prefix: &str) -> Self {
        Self { conn, prefix: prefix.to_owned(), script: Script::new(GCRA) }
    }

    pub(super) async fn check(&self, limit: &str, key: &str, rate: &Rate) -> redis::RedisResult<Result<(), Throttled>> {
        let interval_ms = u64::try_from(rate.interval().as_millis()).unwrap_or(u64::MAX).max(1);
        let wait_ms: u64 = self
            .script
            .key(format!("{}:ratelimit:{limit}:{key}", self.prefix))
            .arg(interval_ms)
            .arg(rate.burst.get())
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(if wait_ms == 0 {
            Ok(())
        } else {
            Err(Throttled { retry_after: std::time::Duration::from_millis(wait_ms) })
        })
    }
}
