//! CoDel (RFC 8289): drop from the head of a queue whose packets have
//! waited longer than `target` for at least `interval`, at a rate that
//! grows with the square root of the drops, until the standing queue goes.
//! A short burst, which drains within an interval, loses nothing.

/// CoDel's parameters, in clock ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodelConf {
    pub target: u64,
    pub interval: u64,
}

impl CodelConf {
    /// RFC 8289's defaults: 5 ms target, 100 ms interval.
    pub fn default_for(hz: u64) -> Self {
        CodelConf { target: hz / 200, interval: hz / 10 }
    }
}

/// One queue's CoDel state.
#[derive(Clone, Copy, Debug, Default)]
pub struct Codel {
    /// When the sojourn time first stayed above target (0: it is not).
    first_above: u64,
    dropping: bool,
    drop_next: u64,
    count: u32,
    last_count: u32,
}

impl Codel {
    /// interval / sqrt(count), the spacing of drops in dropping state.
    fn control_law(t: u64, interval: u64, count: u32) -> u64 {
        t + (interval as f64 / (count.max(1) as f64).sqrt()) as u64
    }

    /// Whether the packet at the head, which waited `sojourn`, should be
    /// dropped at `now`; `queue_bytes` is what is queued behind it (a queue
    /// holding less than one MTU is never judged standing).
    pub fn should_drop(&mut self, conf: &CodelConf, sojourn: u64, queue_bytes: usize, now: u64) -> bool {
        let ok_to_drop = if sojourn < conf.target || queue_bytes <= 1514 {
            self.first_above = 0;
            false
        } else if self.first_above == 0 {
            self.first_above = now + conf.interval;
            false
        } else {
            now >= self.first_above
        };
        if self.dropping {
            if !ok_to_drop {
                self.dropping = false;
                return false;
            }
            if now >= self.drop_next {
                self.count += 1;
                self.drop_next = Self::control_law(self.drop_next, conf.interval, self.count);
                return true;
            }
            return false;
        }
        if ok_to_drop {
            self.dropping = true;
            // Recently in dropping state: resume near the previous rate.
            let delta = self.count.saturating_sub(self.last_count);
            self.count = if delta > 1 && now.saturating_sub(self.drop_next) < 16 * conf.interval { delta } else { 1 };
            self.last_count = self.count;
            self.drop_next = Self::control_law(now, conf.interval, self.count);
            return true;
        }
        false
    }
}
