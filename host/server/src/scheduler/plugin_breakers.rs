//! Plugins' circuit breakers: a plugin whose attempts keep failing, over
//! every run, is given a rest. After `failures` failed attempts in a row
//! its breaker opens: its new attempts wait (or fail at once, with
//! `fail_fast`) for the cool-down; then one attempt runs as a probe, and
//! its end closes the breaker or opens it again. The scheduler alone
//! changes them; the API reads a copy.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Serialize;
use warren_sandbox::plugin::grants::PluginBreakerSettings;

/// The timer key of a plugin's cool-down (a job index never is this).
pub(super) const BREAKER_TIMER: usize = usize::MAX - 1;

/// Where a plugin's breaker is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    Open,
    /// The cool-down is over and one probe runs.
    HalfOpen,
}

#[derive(Debug, Clone, Default)]
struct Breaker {
    failures_in_a_row: u32,
    open_until: Option<Instant>,
    probing: bool,
    /// Times it opened.
    opened: u64,
}

/// What an attempt of a plugin may do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Admission {
    Go,
    /// The cool-down is over: this attempt is the probe.
    Probe,
    /// Wait until then (the cool-down's end, or a probe's end).
    Wait(Option<Instant>),
    /// Fail now (`fail_fast`), saying why.
    Refuse(String),
}

/// Every plugin's breaker, by name.
#[derive(Debug, Default)]
pub struct PluginBreakers {
    breakers: HashMap<String, Breaker>,
}

/// What `GET /v1/plugins/{name}` shows of a plugin's breaker.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PluginBreakerReport {
    pub state: BreakerState,
    pub failures_in_a_row: u32,
    /// Milliseconds left of its cool-down, while open.
    pub open_for_ms: Option<u64>,
    /// Times it opened since the server started.
    pub opened: u64,
}

impl PluginBreakers {
    /// Whether an attempt of `plugin` may start now.
    pub(super) fn admit(
        &mut self,
        plugin: &str,
        settings: &PluginBreakerSettings,
        now: Instant,
    ) -> Admission {
        let Some(breaker) = self.breakers.get_mut(plugin) else {
            return Admission::Go;
        };
        let Some(until) = breaker.open_until else {
            return Admission::Go;
        };
        if now < until {
            return match settings.fail_fast {
                true => Admission::Refuse(format!(
                    "plugin {plugin}'s circuit breaker is open after {} failed attempts in a row; it closes after a probe in {} ms",
                    breaker.failures_in_a_row,
                    until.saturating_duration_since(now).as_millis()
                )),
                false => Admission::Wait(Some(until)),
            };
        }
        if breaker.probing {
            return match settings.fail_fast {
                true => Admission::Refuse(format!(
                    "plugin {plugin}'s circuit breaker is half open: a probe runs"
                )),
                false => Admission::Wait(None),
            };
        }
        breaker.probing = true;
        Admission::Probe
    }

    /// How an attempt of `plugin` ended: a failure the plugin's own, or
    /// not. Returns the end of a cool-down that starts now, if the breaker
    /// (re)opened, and whether it closed (jobs waiting for it may go).
    pub(super) fn record(
        &mut self,
        plugin: &str,
        settings: &PluginBreakerSettings,
        failed: bool,
        now: Instant,
    ) -> (Option<Instant>, bool) {
        if !failed {
            // Only a breaker that was open or counting needs a word.
            let closed = self
                .breakers
                .remove(plugin)
                .is_some_and(|b| b.open_until.is_some());
            return (None, closed);
        }
        let breaker = self.breakers.entry(plugin.to_owned()).or_default();
        breaker.failures_in_a_row = breaker.failures_in_a_row.saturating_add(1);
        let was_probe = std::mem::take(&mut breaker.probing);
        if was_probe || breaker.failures_in_a_row >= settings.failures {
            let until = now + Duration::from_millis(settings.cooldown_ms);
            breaker.open_until = Some(until);
            breaker.opened += 1;
            return (Some(until), false);
        }
        (None, false)
    }

    /// A probe that ended without saying anything of the plugin (cancelled,
    /// say): the next attempt probes.
    pub(super) fn forget_probe(&mut self, plugin: &str) {
        if let Some(breaker) = self.breakers.get_mut(plugin) {
            breaker.probing = false;
        }
    }

    pub fn report(&self, plugin: &str, now: Instant) -> Option<PluginBreakerReport> {
        let breaker = self.breakers.get(plugin)?;
        let open_for = breaker
            .open_until
            .map(|until| until.saturating_duration_since(now))
            .filter(|left| !left.is_zero());
        Some(PluginBreakerReport {
            state: match (open_for, breaker.open_until) {
                (Some(_), _) => BreakerState::Open,
                (None, Some(_)) => BreakerState::HalfOpen,
                (None, None) => BreakerState::Closed,
            },
            failures_in_a_row: breaker.failures_in_a_row,
            open_for_ms: open_for.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            opened: breaker.opened,
        })
    }

    /// Plugins whose breaker is open or half open, for `/metrics`.
    pub fn open(&self) -> Vec<String> {
        let mut open: Vec<String> = self
            .breakers
            .iter()
            .filter(|(_, b)| b.open_until.is_some())
            .map(|(name, _)| name.clone())
            .collect();
        open.sort();
        open
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_breaker_opens_holds_probes_once_and_closes() {
        let settings = PluginBreakerSettings {
            failures: 2,
            cooldown_ms: 50,
            fail_fast: false,
        };
        let mut breakers = PluginBreakers::default();
        let t0 = Instant::now();
        assert_eq!(breakers.admit("p", &settings, t0), Admission::Go);
        assert_eq!(breakers.record("p", &settings, true, t0), (None, false));
        let (until, _) = breakers.record("p", &settings, true, t0);
        let until = until.expect("opens after two failures");
        assert_eq!(
            breakers.admit("p", &settings, t0),
            Admission::Wait(Some(until))
        );
        let refusing = PluginBreakerSettings {
            fail_fast: true,
            ..settings
        };
        assert!(matches!(
            breakers.admit("p", &refusing, t0),
            Admission::Refuse(why) if why.contains("open after 2 failed attempts")
        ));
        let later = until + Duration::from_millis(1);
        assert_eq!(breakers.admit("p", &settings, later), Admission::Probe);
        assert_eq!(breakers.admit("p", &settings, later), Admission::Wait(None));
        // A failed probe opens it again.
        let (again, _) = breakers.record("p", &settings, true, later);
        assert!(again.is_some());
        let report = breakers.report("p", later).expect("report");
        assert_eq!((report.state, report.opened), (BreakerState::Open, 2));
        let after = later + Duration::from_millis(100);
        assert_eq!(breakers.admit("p", &settings, after), Admission::Probe);
        assert_eq!(breakers.record("p", &settings, false, after), (None, true));
        assert_eq!(breakers.admit("p", &settings, after), Admission::Go);
        assert!(breakers.report("p", after).is_none());
    }
}
