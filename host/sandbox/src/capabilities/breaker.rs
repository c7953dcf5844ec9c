//! Circuit breakers, one per destination (`host:port`): after
//! `failures` failures in a row (no answer, or a 5xx) a destination's
//! requests fail at once for `cooldown`; then one request goes through as
//! a probe, and its answer closes the breaker or opens it again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

/// Destinations tracked at most: past it, the closed ones are forgotten
/// (with their counts), so a plugin calling ever new hosts cannot grow
/// the map without bound. Only a destination that keeps failing stays.
const MAX_TRACKED: usize = 4_096;

/// When breakers open and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Failures in a row that open a destination's breaker.
    pub failures: u32,
    /// How long an open breaker fails requests before one probe.
    pub cooldown: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            failures: 5,
            cooldown: Duration::from_secs(30),
        }
    }
}

/// Where a destination's breaker is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    Open,
    /// Its cool-down is over and one probe is out.
    HalfOpen,
}

#[derive(Debug, Clone)]
struct Destination {
    state: BreakerState,
    failures_in_a_row: u32,
    opened_at: Option<Instant>,
    sent: u64,
    failed: u64,
    refused: u64,
}

/// What `/v1/outbound` shows of one destination.
#[derive(Debug, Clone, Serialize)]
pub struct DestinationReport {
    /// `host:port`.
    pub destination: String,
    pub state: BreakerState,
    pub failures_in_a_row: u32,
    /// Requests let through, failed (no answer or 5xx), and refused while
    /// the breaker was open.
    pub sent: u64,
    pub failed: u64,
    pub refused: u64,
}

/// Every destination's breaker.
#[derive(Debug)]
pub struct Breakers {
    settings: BreakerSettings,
    destinations: Mutex<HashMap<String, Destination>>,
}

/// A request's way through a breaker: tell it how the request went. One
/// dropped untold (its task aborted, its attempt ended) tells nothing of
/// the destination, and a probe's place goes to the next request.
#[derive(Debug)]
pub struct Admission {
    breakers: Arc<Breakers>,
    destination: String,
    told: bool,
}

impl Admission {
    /// How the request went: `ok` when the destination answered, with
    /// anything but a server error.
    pub fn record(mut self, ok: bool) {
        self.told = true;
        self.breakers.record(&self.destination, ok);
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if !self.told {
            self.breakers.forget(&self.destination);
        }
    }
}

impl Breakers {
    pub fn new(settings: BreakerSettings) -> Self {
        Self {
            settings,
            destinations: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Destination>> {
        self.destinations
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Lets a request to `destination` through, or says for how long its
    /// breaker stays open.
    pub fn admit(self: &Arc<Self>, destination: &str) -> Result<Admission, Duration> {
        let mut all = self.lock();
        if all.len() >= MAX_TRACKED && !all.contains_key(destination) {
            all.retain(|_, d| d.state != BreakerState::Closed);
        }
        let entry = all
            .entry(destination.to_owned())
            .or_insert_with(|| Destination {
                state: BreakerState::Closed,
                failures_in_a_row: 0,
                opened_at: None,
                sent: 0,
                failed: 0,
                refused: 0,
            });
        match entry.state {
            BreakerState::Closed => {}
            BreakerState::Open => {
                let open_for = entry.opened_at.map_or(Duration::ZERO, |at| at.elapsed());
                if open_for < self.settings.cooldown {
                    entry.refused += 1;
                    return Err(self.settings.cooldown - open_for);
                }
                // The cool-down is over: this request is the probe.
                entry.state = BreakerState::HalfOpen;
            }
            BreakerState::HalfOpen => {
                entry.refused += 1;
                return Err(Duration::ZERO);
            }
        }
        entry.sent += 1;
        Ok(Admission {
            breakers: self.clone(),
            destination: destination.to_owned(),
            told: false,
        })
    }

    /// How an admitted request went: `ok` when it got an answer that is
    /// not a server error.
    fn record(&self, destination: &str, ok: bool) {
        let mut all = self.lock();
        let Some(entry) = all.get_mut(destination) else {
            return;
        };
        if ok {
            entry.state = BreakerState::Closed;
            entry.failures_in_a_row = 0;
            entry.opened_at = None;
            return;
        }
        entry.failed += 1;
        entry.failures_in_a_row += 1;
        if entry.state == BreakerState::HalfOpen
            || entry.failures_in_a_row >= self.settings.failures
        {
            entry.state = BreakerState::Open;
            entry.opened_at = Some(Instant::now());
        }
    }

    /// An admitted request that ended without telling anything of its
    /// destination (cancelled, or dropped): a probe's place goes to the
    /// next request.
    fn forget(&self, destination: &str) {
        let mut all = self.lock();
        if let Some(entry) = all.get_mut(destination)
            && entry.state == BreakerState::HalfOpen
        {
            entry.state = BreakerState::Open;
            entry.opened_at = Instant::now().checked_sub(self.settings.cooldown);
        }
    }

    /// Every destination seen, by name.
    pub fn report(&self) -> Vec<DestinationReport> {
        let mut report: Vec<DestinationReport> = self
            .lock()
            .iter()
            .map(|(name, d)| DestinationReport {
                destination: name.clone(),
                state: d.state,
                failures_in_a_row: d.failures_in_a_row,
                sent: d.sent,
                failed: d.failed,
                refused: d.refused,
            })
            .collect();
        report.sort_by(|a, b| a.destination.cmp(&b.destination));
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_breaker_opens_fails_fast_lets_one_probe_through_and_closes() {
        let breakers = Arc::new(Breakers::new(BreakerSettings {
            failures: 2,
            cooldown: Duration::from_millis(50),
        }));
        let d = "api.example.com:443";
        for _ in 0..2 {
            let admitted = breakers.admit(d).expect("closed");
            admitted.record(false);
        }
        assert!(breakers.admit(d).is_err(), "open after two failures");
        std::thread::sleep(Duration::from_millis(60));
        let probe = breakers.admit(d).expect("the probe goes");
        assert_eq!(
            breakers.admit(d).unwrap_err(),
            Duration::ZERO,
            "one probe only"
        );
        probe.record(false);
        assert!(breakers.admit(d).is_err(), "a failed probe opens it again");
        std::thread::sleep(Duration::from_millis(60));
        let probe = breakers.admit(d).expect("the next probe goes");
        probe.record(true);
        let admitted = breakers.admit(d).expect("closed again");
        admitted.record(true);
        // A probe dropped untold gives its place to the next request.
        for _ in 0..2 {
            breakers.admit(d).expect("closed").record(false);
        }
        std::thread::sleep(Duration::from_millis(60));
        drop(breakers.admit(d).expect("the probe goes"));
        breakers
            .admit(d)
            .expect("the next request probes")
            .record(true);
        let report = breakers.report();
        assert_eq!(report[0].state, BreakerState::Closed);
        assert_eq!(
            (report[0].sent, report[0].failed, report[0].refused),
            (9, 5, 3)
        );
    }

    #[test]
    fn ever_new_destinations_do_not_grow_the_map_without_bound() {
        let breakers = Arc::new(Breakers::new(BreakerSettings {
            failures: 1,
            cooldown: Duration::from_secs(60),
        }));
        breakers.admit("failing:443").expect("closed").record(false);
        for i in 0..MAX_TRACKED * 2 {
            breakers
                .admit(&format!("host-{i}.example.com:443"))
                .expect("closed")
                .record(true);
        }
        let report = breakers.report();
        assert!(report.len() <= MAX_TRACKED, "{}", report.len());
        // The open breaker is kept: its destination still fails fast.
        assert!(breakers.admit("failing:443").is_err());
    }
}
