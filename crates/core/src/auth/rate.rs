//! A keyed rate limit: at most `burst` events per key at once, refilled evenly over `period`
//! (a token bucket). For endpoints that create rows for anyone who asks (device authorization)
//! and must not let one address fill the database. Memory is bounded like the throttle's.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const MAX_KEYS: usize = 100_000;

pub struct RateLimit<K: Hash + Eq> {
    burst: f64,
    period: Duration,
    buckets: Mutex<HashMap<K, (f64, Instant)>>,
}

impl<K: Hash + Eq> RateLimit<K> {
    /// `burst` events at once, `burst` more per `period`.
    pub fn new(burst: u32, period: Duration) -> RateLimit<K> {
        RateLimit {
            burst: f64::from(burst),
            period,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Count one event of `key`: `Err(seconds)` to wait when it has none left.
    pub fn allow(&self, key: K) -> Result<(), u64> {
        let now = Instant::now();
        let per_second = self.burst / self.period.as_secs_f64();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_KEYS {
            let period = self.period;
            buckets.retain(|_, (_, at)| now.duration_since(*at) < period);
            if buckets.len() >= MAX_KEYS {
                buckets.clear();
            }
        }
        let (tokens, at) = buckets.entry(key).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * per_second).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / per_second).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RateLimit;
    use std::time::Duration;

    #[test]
    fn a_burst_then_waits() {
        let limit = RateLimit::new(3, Duration::from_secs(60));
        for _ in 0..3 {
            assert!(limit.allow("a").is_ok());
        }
        let wait = limit.allow("a").unwrap_err();
        assert!((1..=20).contains(&wait), "{wait}");
        assert!(limit.allow("b").is_ok());
    }
}
