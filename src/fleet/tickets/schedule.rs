//! When each ticket key encrypts, decrypts and is erased: epoch arithmetic on the wall
//! clock, in milliseconds since the Unix epoch, the same on every server.
//!
//! With period `P`, decrypt window `W` and skew `S`, the key of epoch `e`:
//! - **is published** at the start of epoch `e - 1` (a whole period ahead);
//! - **encrypts** from `start(e) = e·P` to `end(e) = (e+1)·P`, and, only while no newer
//!   key can be had, for up to [`stretch`](Schedule::stretch) (`W/2`) more;
//! - **decrypts** from `start(e) - S` (a ticket from a server up to `S` ahead) to
//!   `end(e) + W`;
//! - **is erased** at `end(e) + W` (from Redis a skew later, for the servers behind).
//!
//! A ticket issued at `t` under epoch `e` is told a lifetime of `end(e) + W - S - t`:
//! the time it is sure to decrypt everywhere, on a server up to `S` ahead too. That is
//! from `W - S` (issued at the end of its epoch) to `P + W - S` (at its start); under a
//! stretched key it falls to `W/2 - S` at least, since `4·S ≤ W`.

/// The longest ticket lifetime TLS allows (RFC 8446, 4.6.1): 7 days.
const MAX_LIFETIME_SECS: u64 = 604_800;

/// The key schedule, in milliseconds. Its builder checks `1 ≤ P`, `1 ≤ W ≤ 16·P` and
/// `4·S ≤ min(P, W)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Schedule {
    pub(crate) period: u64,
    pub(crate) window: u64,
    pub(crate) skew: u64,
}

impl Schedule {
    /// The epoch `now` is in.
    pub(crate) fn epoch(&self, now: u64) -> u64 {
        now / self.period
    }

    /// When epoch `epoch` starts.
    pub(crate) fn start(&self, epoch: u64) -> u64 {
        epoch.saturating_mul(self.period)
    }

    /// When epoch `epoch` ends (and the next starts).
    pub(crate) fn end(&self, epoch: u64) -> u64 {
        self.start(epoch.saturating_add(1))
    }

    /// How long past its epoch a key may go on encrypting while no newer key can be
    /// had: half the decrypt window.
    pub(crate) fn stretch(&self) -> u64 {
        self.window / 2
    }

    /// Whether the key of `epoch` may encrypt at `now`, given that no newer key can.
    pub(crate) fn may_encrypt(&self, epoch: u64, now: u64) -> bool {
        self.start(epoch) <= now && now < self.end(epoch).saturating_add(self.stretch())
    }

    /// Whether the key of `epoch` decrypts at `now`.
    pub(crate) fn decrypts(&self, epoch: u64, now: u64) -> bool {
        self.start(epoch).saturating_sub(self.skew) <= now && now < self.erased_at(epoch)
    }

    /// When the key of `epoch` is erased from every ring.
    pub(crate) fn erased_at(&self, epoch: u64) -> u64 {
        self.end(epoch).saturating_add(self.window)
    }

    /// How long Redis keeps the key of `epoch`, from `now`: a skew past its erasure, for
    /// the servers whose clocks are behind. At least 1 ms.
    pub(crate) fn redis_ttl(&self, epoch: u64, now: u64) -> u64 {
        self.erased_at(epoch)
            .saturating_add(self.skew)
            .saturating_sub(now)
            .max(1)
    }

    /// The lifetime to tell a client, in seconds, of a ticket issued at `now` under the
    /// key of `epoch`: how long it is sure to decrypt on every server.
    pub(crate) fn lifetime_secs(&self, epoch: u64, now: u64) -> u32 {
        let left = self
            .erased_at(epoch)
            .saturating_sub(self.skew)
            .saturating_sub(now);
        (left / 1000).min(MAX_LIFETIME_SECS) as u32
    }

    /// The epochs whose keys a ring should hold at `now`: every one that still decrypts,
    /// through the next one, published ahead.
    pub(crate) fn wanted(&self, now: u64) -> std::ops::RangeInclusive<u64> {
        let oldest = now.saturating_sub(self.window) / self.period;
        oldest..=self.epoch(now).saturating_add(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// P = 10 s, W = 6 s, S = 1 s.
    const S: Schedule = Schedule {
        period: 10_000,
        window: 6_000,
        skew: 1_000,
    };

    #[test]
    fn a_key_encrypts_in_its_epoch_and_decrypts_from_a_skew_before_to_its_window_end() {
        // Epoch 5 is [50 s, 60 s).
        assert_eq!((S.epoch(49_999), S.epoch(50_000)), (4, 5));
        assert!(!S.may_encrypt(5, 49_999));
        assert!(S.may_encrypt(5, 50_000));
        assert!(S.may_encrypt(5, 62_999), "stretched by W/2 = 3 s");
        assert!(!S.may_encrypt(5, 63_000));
        assert!(!S.decrypts(5, 48_999));
        assert!(S.decrypts(5, 49_000), "a server 1 s ahead already uses it");
        assert!(S.decrypts(5, 65_999));
        assert!(!S.decrypts(5, 66_000));
        assert_eq!(S.erased_at(5), 66_000);
        assert_eq!(S.redis_ttl(5, 50_000), 17_000);
        assert_eq!(S.redis_ttl(5, 90_000), 1);
    }

    #[test]
    fn the_lifetime_is_what_is_left_to_decrypt_less_the_skew() {
        assert_eq!(S.lifetime_secs(5, 50_000), 15, "P + W - S at the start");
        assert_eq!(S.lifetime_secs(5, 59_999), 5, "W - S at the end");
        assert_eq!(S.lifetime_secs(5, 62_999), 2, "W/2 - S, stretched");
        assert_eq!(S.lifetime_secs(5, 70_000), 0);
        let long = Schedule {
            period: 86_400_000,
            window: 16 * 86_400_000,
            skew: 0,
        };
        assert_eq!(long.lifetime_secs(0, 0), 604_800, "TLS's 7-day cap");
    }

    #[test]
    fn a_ring_wants_every_epoch_that_still_decrypts_and_the_next() {
        assert_eq!(S.wanted(50_000), 4..=6, "epoch 4 decrypts until 56 s");
        assert_eq!(S.wanted(56_000), 5..=6);
        assert_eq!(S.wanted(0), 0..=1);
        let wide = Schedule {
            period: 1_000,
            window: 16_000,
            skew: 0,
        };
        assert_eq!(wide.wanted(100_000).count(), 18, "W/P + 2 at most");
    }
}
