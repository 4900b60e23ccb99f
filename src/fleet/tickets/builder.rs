//! [`FleetTicketerBuilder`]: where the ring's Redis is, the key schedule, and their
//! bounds.

use core::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::rotation::Rotation;
use super::schedule::Schedule;
use super::{FleetTicketer, Shared};
use crate::fleet::builder::{
    FleetError, check_duration, check_prefix, check_target, runtime_with_timers,
};
use crate::fleet::codec::FleetKeys;
use crate::fleet::store::{Store, Target};
use crate::rate_limit::RateLimited;

/// The default rotation period: a new ticket key every hour.
pub const DEFAULT_ROTATION: Duration = Duration::from_secs(3600);

/// The default tolerated clock skew between servers (a quarter of the period or the
/// decrypt window, if either is shorter than 20 s).
pub const DEFAULT_MAX_SKEW: Duration = Duration::from_secs(5);

/// Bounds on the rotation period: `(setting, min, max)`.
const ROTATION: (&str, Duration, Duration) = (
    "rotation",
    Duration::from_secs(1),
    Duration::from_secs(86_400),
);

/// The longest decrypt window, in rotation periods: a ring holds at most this many
/// past keys, plus the current and the next.
const MAX_WINDOW_PERIODS: u32 = 16;

/// Configures a [`FleetTicketer`]. Every setting has a default and bounds, which
/// [`build`](Self::build) checks.
///
/// ```
/// use std::time::Duration;
/// use rustls_session_cache::fleet::{FleetError, FleetKeys, FleetTicketer};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let err = FleetTicketer::builder()
///     .keys(FleetKeys::new([[7; 32]]).unwrap())
///     .rotation(Duration::from_secs(60))
///     .max_skew(Duration::from_secs(20))
///     .build()
///     .unwrap_err();
/// assert_eq!(err.to_string(), "max_skew is 20s: it must be from 0ns to 15s");
/// # }
/// ```
#[must_use]
pub struct FleetTicketerBuilder {
    target: Target,
    prefix: String,
    keys: Option<FleetKeys>,
    rotation: Duration,
    window: Option<Duration>,
    skew: Option<Duration>,
    clock: Option<Box<dyn Fn() -> SystemTime + Send + Sync>>,
}

impl FleetTicketerBuilder {
    pub(crate) fn new() -> Self {
        Self {
            target: Target::Single("redis://127.0.0.1:6379".into()),
            prefix: "rsc".into(),
            keys: None,
            rotation: DEFAULT_ROTATION,
            window: None,
            skew: None,
            clock: None,
        }
    }

    /// Where Redis is, a single node; default `redis://127.0.0.1:6379`. As
    /// [`FleetBuilder::redis_url`](crate::fleet::FleetBuilder::redis_url).
    pub fn redis_url(self, url: impl Into<String>) -> Self {
        Self {
            target: Target::Single(url.into()),
            ..self
        }
    }

    /// A Redis Cluster instead, found through these seed nodes. As
    /// [`FleetBuilder::redis_cluster`](crate::fleet::FleetBuilder::redis_cluster).
    pub fn redis_cluster<S: Into<String>>(self, seeds: impl IntoIterator<Item = S>) -> Self {
        Self {
            target: Target::Cluster(seeds.into_iter().map(Into::into).collect()),
            ..self
        }
    }

    /// The prefix of the ring's Redis keys; default `rsc`, with the rules of
    /// [`FleetBuilder::prefix`](crate::fleet::FleetBuilder::prefix). A fleet sharing
    /// its Redis with a stateful [`Fleet`](crate::fleet::Fleet) can use the same
    /// prefix: ticket keys and sessions are named apart.
    pub fn prefix(self, prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            ..self
        }
    }

    /// The fleet keys that seal ticket keys in Redis. Required; every server of the
    /// fleet needs the same ones.
    pub fn keys(self, keys: FleetKeys) -> Self {
        Self {
            keys: Some(keys),
            ..self
        }
    }

    /// The rotation period: each key encrypts for this long; default
    /// [`DEFAULT_ROTATION`], from 1 s to 1 day. Every server of a fleet needs the same
    /// one (the period is part of the keys' Redis names, so fleets with different ones
    /// keep to their own keys).
    pub fn rotation(self, period: Duration) -> Self {
        Self {
            rotation: period,
            ..self
        }
    }

    /// How long a key goes on decrypting after its epoch; default the rotation period,
    /// from 1 s to 16 periods. Tickets live from this long (issued at an epoch's end) to
    /// a period more; forward secrecy is bounded by period plus window.
    pub fn decrypt_window(self, window: Duration) -> Self {
        Self {
            window: Some(window),
            ..self
        }
    }

    /// The clock skew between servers that makes no difference; default
    /// [`DEFAULT_MAX_SKEW`], or a quarter of the period or window if that is less. At
    /// most a quarter of either.
    pub fn max_skew(self, skew: Duration) -> Self {
        Self {
            skew: Some(skew),
            ..self
        }
    }

    /// The wall clock epochs are read from; default [`SystemTime::now`]. For tests (a
    /// server whose clock is off), or a clock of your own.
    ///
    /// ```
    /// # use std::time::{Duration, SystemTime};
    /// # use rustls_session_cache::fleet::FleetTicketer;
    /// let ahead = FleetTicketer::builder()
    ///     .clock(|| SystemTime::now() + Duration::from_secs(2));
    /// ```
    pub fn clock(self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        Self {
            clock: Some(Box::new(clock)),
            ..self
        }
    }

    /// Checks the configuration and starts the rotation task on the current tokio
    /// runtime, whose first pass starts at once. Redis need not be up.
    ///
    /// # Errors
    ///
    /// [`FleetError`] for missing keys, a malformed Redis URL or prefix, a setting out of
    /// its bounds, or no tokio runtime with timers to run on.
    pub fn build(self) -> Result<Arc<FleetTicketer>, FleetError> {
        let keys = self.keys.ok_or(FleetError::NoKeys)?;
        check_target(&self.target)?;
        check_prefix(&self.prefix)?;
        let schedule = schedule(self.rotation, self.window, self.skew)?;
        let runtime = runtime_with_timers()?;
        let store = {
            let _entered = runtime.enter();
            Store::open(&self.target, self.prefix, Duration::from_secs(1), 0)?
        };
        let clock = self.clock.unwrap_or_else(|| Box::new(SystemTime::now));
        let shared = Arc::new(Shared::new(schedule, clock));
        let task = runtime.spawn(
            Rotation {
                shared: shared.clone(),
                store,
                keys,
                joined: None,
                warn: RateLimited::default(),
            }
            .run(),
        );
        Ok(Arc::new(FleetTicketer {
            shared,
            task: Some(task.abort_handle()),
        }))
    }
}

/// The schedule the settings make, checked.
fn schedule(
    period: Duration,
    window: Option<Duration>,
    skew: Option<Duration>,
) -> Result<Schedule, FleetError> {
    check_duration(period, ROTATION)?;
    let window = window.unwrap_or(period);
    check_duration(
        window,
        (
            "decrypt_window",
            Duration::from_secs(1),
            period * MAX_WINDOW_PERIODS,
        ),
    )?;
    let most_skew = period.min(window) / 4;
    let skew = skew.unwrap_or(DEFAULT_MAX_SKEW.min(most_skew));
    check_duration(skew, ("max_skew", Duration::ZERO, most_skew))?;
    let ms = |d: Duration| d.as_millis() as u64;
    Ok(Schedule {
        period: ms(period),
        window: ms(window),
        skew: ms(skew),
    })
}

/// The default schedule: 1-hour epochs, a 1-hour window, 5 s of skew.
pub(crate) fn default_schedule() -> Schedule {
    Schedule {
        period: DEFAULT_ROTATION.as_millis() as u64,
        window: DEFAULT_ROTATION.as_millis() as u64,
        skew: DEFAULT_MAX_SKEW.as_millis() as u64,
    }
}

impl fmt::Debug for FleetTicketerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetTicketerBuilder")
            .field("prefix", &self.prefix)
            .field("keys", &self.keys)
            .field("rotation", &self.rotation)
            .field("window", &self.window)
            .field("skew", &self.skew)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_period_and_bounds_are_checked() {
        let hour = Duration::from_secs(3600);
        assert_eq!(schedule(hour, None, None).unwrap(), default_schedule());
        let short = schedule(Duration::from_secs(2), None, None).unwrap();
        assert_eq!(
            short,
            Schedule {
                period: 2_000,
                window: 2_000,
                skew: 500
            }
        );
        let err = |p, w, s| schedule(p, w, s).unwrap_err().to_string();
        assert_eq!(
            err(Duration::from_millis(999), None, None),
            "rotation is 999ms: it must be from 1s to 86400s"
        );
        assert_eq!(
            err(hour, Some(hour * 17), None),
            "decrypt_window is 61200s: it must be from 1s to 57600s"
        );
        assert_eq!(
            err(
                hour,
                Some(Duration::from_secs(8)),
                Some(Duration::from_secs(3))
            ),
            "max_skew is 3s: it must be from 0ns to 2s"
        );
        assert_eq!(
            schedule(hour, Some(Duration::from_secs(8)), None)
                .unwrap()
                .skew,
            2_000,
            "a quarter of a short window"
        );
    }
}
