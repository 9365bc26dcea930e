//! The Redis queue: reliable delivery for several workers on several hosts.
//!
//! Four keys under the configured prefix:
//! - `push:waiting` — sorted set of card serials scored by when they are due;
//! - `push:leased` — sorted set of serials being worked on, scored by when their lease ends;
//! - `push:tokens` — hash serial → lease token of the worker holding it;
//! - `push:attempts` — hash serial → `attempts:first-failure-ms` for jobs being retried.
//!
//! Every operation is one Lua script, so it is atomic, and uses Redis's clock, so workers on
//! hosts with different clocks agree on what is due. Nothing blocks on the server: workers poll
//! for due jobs every few milliseconds (a due time cannot wake a blocking read), which keeps all
//! commands well inside the connection's response timeout.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::Script;
use redis::aio::ConnectionManager;

use super::{Lease, PushQueue, QueueDepth, QueueError, duration_ms, lease_token};
use crate::domain::SerialNumber;

const NOW: &str = "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)";

pub struct RedisQueue {
    conn: ConnectionManager,
    keys: [String; 4],
    enqueue: Script,
    ensure: Script,
    take: Script,
    ack: Script,
    retry: Script,
    release: Script,
    reap: Script,
}

impl RedisQueue {
    pub fn new(conn: ConnectionManager, prefix: &str) -> Self {
        let key = |name: &str| format!("{prefix}:push:{name}");
        Self {
            conn,
            keys: [key("waiting"), key("leased"), key("tokens"), key("attempts")],
            // ZADD LT: a card already waiting keeps the earlier of its two due times.
            enqueue: Script::new(&format!(
                "{NOW} redis.call('ZADD', KEYS[1], 'LT', now + tonumber(ARGV[2]), ARGV[1]) return 1"
            )),
            ensure: Script::new(&format!("{NOW} redis.call('ZADD', KEYS[1], 'NX', now, ARGV[1]) return 1")),
            // A due card that is still leased (it changed again while being pushed) is skipped
            // until its lease ends. The scan pages on past them: there are at most as many as
            // leased jobs, and a job behind them must not wait for them.
            take: Script::new(&format!(
                "{NOW}
                local offset = 0
                while true do
                  local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', offset, 100)
                  if #due == 0 then return false end
                  for _, serial in ipairs(due) do
                    if not redis.call('ZSCORE', KEYS[2], serial) then
                      redis.call('ZREM', KEYS[1], serial)
                      redis.call('ZADD', KEYS[2], now + tonumber(ARGV[1]), serial)
                      redis.call('HSET', KEYS[3], serial, ARGV[2])
                      local attempts = redis.call('HGET', KEYS[4], serial)
                      if not attempts then attempts = '' end
                      return {{serial, attempts}}
                    end
                  end
                  offset = offset + #due
                end"
            )),
            ack: Script::new(
                "if redis.call('HGET', KEYS[3], ARGV[1]) == ARGV[2] then
                   redis.call('ZREM', KEYS[2], ARGV[1])
                   redis.call('HDEL', KEYS[3], ARGV[1])
                   redis.call('HDEL', KEYS[4], ARGV[1])
                   return 1
                 end
                 return 0",
            ),
            retry: Script::new(&format!(
                "{NOW}
                if redis.call('HGET', KEYS[3], ARGV[1]) == ARGV[2] then
                  redis.call('ZREM', KEYS[2], ARGV[1])
                  redis.call('HDEL', KEYS[3], ARGV[1])
                  redis.call('HSET', KEYS[4], ARGV[1], ARGV[4])
                  redis.call('ZADD', KEYS[1], 'LT', now + tonumber(ARGV[3]), ARGV[1])
                  return 1
                end
                return 0"
            )),
            release: Script::new(&format!(
                "{NOW}
                if redis.call('HGET', KEYS[3], ARGV[1]) == ARGV[2] then
                  redis.call('ZREM', KEYS[2], ARGV[1])
                  redis.call('HDEL', KEYS[3], ARGV[1])
                  redis.call('ZADD', KEYS[1], 'LT', now, ARGV[1])
                  return 1
                end
                return 0"
            )),
            reap: Script::new(&format!(
                "{NOW}
                local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 1000)
                for _, serial in ipairs(expired) do
                  redis.call('ZREM', KEYS[2], serial)
                  redis.call('HDEL', KEYS[3], serial)
                  redis.call('ZADD', KEYS[1], 'LT', now, serial)
                end
                return #expired"
            )),
        }
    }

    fn invocation<'a>(&self, script: &'a Script) -> redis::ScriptInvocation<'a> {
        let mut invocation = script.prepare_invoke();
        for key in &self.keys {
            invocation.key(key);
        }
        invocation
    }
}

#[async_trait]
impl PushQueue for RedisQueue {
    fn backend(&self) -> &'static str {
        "redis"
    }

    async fn ping(&self) -> Result<(), QueueError> {
        let mut conn = self.conn.clone();
        redis::cmd("PING").query_async::<String>(&mut conn).await?;
        Ok(())
    }

    async fn enqueue(&self, serial: &SerialNumber, delay: Duration) -> Result<(), QueueError> {
        let mut conn = self.conn.clone();
        self.invocation(&self.enqueue)
            .arg(serial.as_str())
            .arg(duration_ms(delay))
            .invoke_async::<i64>(&mut conn)
            .await?;
        Ok(())
    }

    async fn ensure_queued(&self, serial: &SerialNumber) -> Result<(), QueueError> {
        let mut conn = self.conn.clone();
        self.invocation(&self.ensure).arg(serial.as_str()).invoke_async::<i64>(&mut conn).await?;
        Ok(())
    }

    async fn take(&self, lease: Duration) -> Result<Option<Lease>, QueueError> {
        let mut conn = self.conn.clone();
        let token = lease_token();
        let taken: Option<(String, String)> =
            self.invocation(&self.take).arg(duration_ms(lease)).arg(&token).invoke_async(&mut conn).await?;
        let Some((serial, attempts)) = taken else { return Ok(None) };
        let serial = SerialNumber::parse(&serial).map_err(|e| QueueError::Corrupt(e.to_string()))?;
        let (attempts, first_failure) = match attempts.split_once(':') {
            Some((n, first)) => (
                n.parse().map_err(|_| QueueError::Corrupt(format!("attempts `{attempts}`")))?,
                first.parse::<i64>().ok().and_then(DateTime::<Utc>::from_timestamp_millis),
            ),
            None => (0, None),
        };
        Ok(Some(Lease { serial, token, attempts, first_failure }))
    }

    async fn ack(&self, lease: &Lease) -> Result<(), QueueError> {
        let mut conn = self.conn.clone();
        self.invocation(&self.ack).arg(lease.serial.as_str()).arg(&lease.token).invoke_async::<i64>(&mut conn).await?;
        Ok(())
    }

    async fn retry(
        &self,
        lease: &Lease,
        delay: Duration,
        attempts: u32,
        first_failure: DateTime<Utc>,
    ) -> Result<(), QueueError> {
        let mut conn = self.conn.clone();
        self.invocation(&self.retry)
            .arg(lease.serial.as_str())
            .arg(&lease.token)
            .arg(duration_ms(delay))
            .arg(format!("{attempts}:{}", first_failure.timestamp_millis()))
            .invoke_async::<i64>(&mut conn)
            .await?;
        Ok(())
    }

    async fn release(&self, lease: &Lease) -> Result<(), QueueError> {
        let mut conn = self.conn.clone();
        self.invocation(&self.release)
            .arg(lease.serial.as_str())
            .arg(&lease.token)
            .invoke_async::<i64>(&mut conn)
            .await?;
        Ok(())
    }

    async fn reap(&self) -> Result<u64, QueueError> {
        let mut conn = self.conn.clone();
        let reaped: i64 = self.invocation(&self.reap).invoke_async(&mut conn).await?;
        Ok(u64::try_from(reaped).unwrap_or(0))
    }

    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        let mut conn = self.conn.clone();
        let (waiting, leased): (u64, u64) = redis::pipe()
            .cmd("ZCARD")
            .arg(&self.keys[0])
            .cmd("ZCARD")
            .arg(&self.keys[1])
            .query_async(&mut conn)
            .await?;
        Ok(QueueDepth { waiting, leased })
    }
}
