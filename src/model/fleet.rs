//! A ready-to-use fleet: the spec, the seed and the per-reading constants derived from
//! them, plus what a device is (identity, location) as a pure function of its index,
//! so the same device looks the same in every run, on any core and in any instance.

use rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::model::device::{BATTERY_DRAIN_S_PER_PERCENT, NOISE_SHARE, NOISE_TAU_S, OWN_SCALE};
use crate::model::environment::{Ou, CLIMATE_TAU_S, LOAD_TAU_S, WEATHER_TAU_S};
use crate::model::spec::FleetSpec;
use crate::model::trend::SimClock;

/// Where a device is: an index into the building labels, a floor from 1 and a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub building: usize,
    pub floor: u32,
    /// Room number within the floor, from 1.
    pub room: u32,
}

/// Static identity of a device, derived from its index alone (the same device in every run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub model: usize,
    pub firmware: usize,
    pub battery_start: u8,
    pub signal_base: i16,
    /// Where in its 1 % drain period the device's battery starts, in simulated seconds.
    pub battery_phase_s: u32,
}

/// A ready-to-use fleet: the spec, the seed and the constants derived from them.
#[derive(Debug, Clone)]
pub struct Fleet {
    pub spec: FleetSpec,
    pub seed: u64,
    pub device_count: u64,
    /// Digits in a device id, so that every id in a run has the same width.
    pub id_width: usize,
    /// Per-reading constants derived from `spec`; rebuilt by `set_live`.
    pub derived: Derived,
}

/// Constants the per-reading step needs, computed once from the spec.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Derived {
    /// One reading's step of each analog sensor's own noise (see `NOISE_TAU_S`).
    pub noise: [Ou; 4],
    /// Square roots of each analog sensor's variance shares: shared environment,
    /// calibration offset, own noise. The shares sum to 1.
    pub mix: [[f64; 3]; 4],
    /// One reading's step of the signal-strength wobble.
    pub signal: Ou,
    /// One reading's step of the site's weather, a building's climate, a floor's load.
    pub weather: [Ou; 3],
    pub climate: Ou,
    pub load: Ou,
    /// Switch chain: P(off → on) and P(on → off) per reading.
    pub switch_up: f64,
    pub switch_down: f64,
    /// Cumulative anomaly kind probabilities.
    pub anomaly_cumulative: [f64; 6],
    /// Scale of all trends; 0 when they are off.
    pub trend_strength: f64,
    /// How far below a threshold a value must fall to leave its status, in sd.
    pub hysteresis: f64,
    pub clock: SimClock,
}

/// Mean reversion time of the signal strength's wobble.
const SIGNAL_TAU_S: f64 = 60.0;

impl Derived {
    pub fn new(spec: &FleetSpec) -> Self {
        let s = &spec.simulator;
        let step_s = s.sample_interval.0.as_secs_f64() * s.time_scale;
        let (switch_up, switch_down) = switch_chain(
            s.switch_on_probability,
            s.switch_dwell.0.as_secs_f64(),
            step_s,
        );
        let trend_strength = spec.trend_strength();
        // With the trends off there is no shared environment: each device is on its own.
        let environment = trend_strength > 0.0;
        let mix = std::array::from_fn(|i| {
            let own = if environment {
                s.data_variation * OWN_SCALE[i]
            } else {
                1.0
            };
            let noise = NOISE_SHARE[i] * own;
            [(1.0 - own).sqrt(), (own - noise).sqrt(), noise.sqrt()]
        });
        Self {
            noise: NOISE_TAU_S.map(|tau| Ou::new(tau, step_s)),
            mix,
            signal: Ou::new(SIGNAL_TAU_S, step_s),
            weather: WEATHER_TAU_S.map(|tau| Ou::new(tau, step_s)),
            climate: Ou::new(CLIMATE_TAU_S, step_s),
            load: Ou::new(LOAD_TAU_S, step_s),
            switch_up,
            switch_down,
            anomaly_cumulative: s.anomaly_weights.cumulative(),
            trend_strength,
            hysteresis: s.alert_hysteresis,
            clock: SimClock {
                start_s: s.start_time.unix_s as f64,
                step_s,
            },
        }
    }
}

/// The switch as a two-state continuous-time chain with stationary P(on) = `p`, whose
/// rarer state lasts `dwell_s` on average, sampled exactly every `step_s`: P(off → on)
/// and P(on → off) per reading.
fn switch_chain(p: f64, dwell_s: f64, step_s: f64) -> (f64, f64) {
    if p <= 0.0 {
        return (0.0, 1.0);
    }
    if p >= 1.0 {
        return (1.0, 0.0);
    }
    // The rarer state is left at rate 1/dwell; with λ_up·(1 - p) = λ_down·p the total
    // rate is λ = λ_up + λ_down = 1 / (dwell · max(p, 1 - p)). Over a step the chain
    // forgets its state with probability k = 1 - e^(-λ·step) and then lands on `on`
    // with probability p.
    let rate = 1.0 / (dwell_s * p.max(1.0 - p));
    let k = 1.0 - (-rate * step_s).exp();
    (p * k, (1.0 - p) * k)
}

impl Fleet {
    /// The fleet `spec` describes, with every random value drawn from `seed`.
    pub fn new(spec: FleetSpec, seed: u64) -> Self {
        let device_count = spec.devices();
        let digits = (device_count.saturating_sub(1)).max(1).ilog10() as usize + 1;
        Self {
            derived: Derived::new(&spec),
            spec,
            seed,
            device_count,
            id_width: digits.max(6),
        }
    }

    /// Applies the live part of `next` (see `FleetSpec::set_live`).
    pub fn set_live(&mut self, next: &FleetSpec) {
        self.spec.set_live(next);
        self.derived = Derived::new(&self.spec);
    }

    /// The building, floor and room of a device, from its index and the fleet size.
    ///
    /// The fleet is cut into one contiguous share per building label, the shares
    /// differing by at most one device (the first `count mod buildings` get the extra
    /// one), so every configured building is used and no label is ever invented. A
    /// building's devices are then spread evenly over its floors × rooms, floor by floor:
    /// with fewer devices than rooms they get a room each, with gaps between; with more,
    /// each room holds `devices / rooms` or one more.
    #[inline]
    pub fn location(&self, device: u64) -> Location {
        let s = &self.spec.simulator;
        let (n, b) = (self.device_count.max(1), s.buildings.len().max(1) as u64);
        let (share, extra) = (n / b, n % b);
        // The first `extra` buildings hold `share + 1` devices.
        let big = extra * (share + 1);
        let (building, first, size) = if device < big {
            let i = device / (share + 1);
            (i, i * (share + 1), share + 1)
        } else {
            let i = extra + (device - big) / share.max(1);
            (i, big + (i - extra) * share, share)
        };
        let rooms = s.floors_per_building as u64 * s.rooms_per_floor as u64;
        // u128: devices × rooms may exceed u64 for the largest fleets and buildings.
        let slot = ((device - first) as u128 * rooms as u128 / size.max(1) as u128) as u64;
        Location {
            building: building.min(b - 1) as usize,
            floor: (slot / s.rooms_per_floor as u64) as u32 + 1,
            room: (slot % s.rooms_per_floor as u64) as u32 + 1,
        }
    }

    /// Digits of a room's number in its label: two, or more for more rooms per floor.
    pub fn room_digits(&self) -> usize {
        (self.spec.simulator.rooms_per_floor.ilog10() as usize + 1).max(2)
    }

    /// Model, firmware, starting battery and signal base of a device, from its index.
    #[inline]
    pub fn identity(&self, device: u64) -> Identity {
        let h = splitmix64(device ^ 0x1D5E_A5ED_u64);
        let s = &self.spec.simulator;
        Identity {
            model: (h % s.models.len() as u64) as usize,
            firmware: ((h >> 16) % s.firmwares.len() as u64) as usize,
            battery_start: 40 + ((h >> 32) % 61) as u8,
            signal_base: -40 - ((h >> 48) % 50) as i16,
            battery_phase_s: (splitmix64(h) % BATTERY_DRAIN_S_PER_PERCENT as u64) as u32,
        }
    }
}

/// Rounds to 2 decimals (half away from zero), the precision of every value in a message.
#[inline]
pub fn round2(v: f64) -> f64 {
    round_int(v * 100.0) as f64 / 100.0
}

/// Rounds half away from zero like `f64::round`, for |v| < 2^63, without the libm call
/// that `round` compiles to on baseline x86-64 (measurable in the per-message profile).
#[inline]
pub fn round_int(v: f64) -> i64 {
    (v + 0.5f64.copysign(v)) as i64
}

/// SplitMix64's finaliser: a fast, well-distributed 64-bit mix.
#[inline]
pub fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(SPLITMIX_GAMMA);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The seed of the RNG stream for one reading. Chained mixing keeps nearby
/// `(device, seq)` pairs from producing related streams.
#[inline]
pub fn stream_seed(seed: u64, device: u64, seq: u64) -> u64 {
    seq_seed(device_key(seed, device), seq)
}

/// The part of `stream_seed` that depends on the device only, so it can be kept.
#[inline]
pub fn device_key(seed: u64, device: u64) -> u64 {
    splitmix64(splitmix64(seed) ^ device)
}

/// `stream_seed` from the device's `device_key`.
#[inline]
pub fn seq_seed(device_key: u64, seq: u64) -> u64 {
    splitmix64(device_key ^ seq)
}

/// The RNG of one stream (a reading's, a device's initial state, an environment
/// process at one step), seeded by `stream_seed` or `seq_seed`: exactly
/// `Xoshiro256PlusPlus::seed_from_u64(seed)` (four SplitMix64 outputs as the state),
/// built directly.
///
/// Why not call `seed_from_u64`: every reading seeds a fresh stream, and rand_xoshiro
/// gets there through `SeedableRng::from_rng` (a SplitMix64 filling a byte buffer
/// through a generic closure), which stayed a call: 7.5 % of a one-core null-sink
/// run's samples under `perf`. `benches/generate.rs` (`rng_seed`) compares the two;
/// the test below keeps the streams identical.
#[inline]
pub fn stream_rng(seed: u64) -> Xoshiro256PlusPlus {
    let mut bytes = [0u8; 32];
    for (i, word) in bytes.chunks_exact_mut(8).enumerate() {
        let z = splitmix64(seed.wrapping_add((i as u64).wrapping_mul(SPLITMIX_GAMMA)));
        word.copy_from_slice(&z.to_le_bytes());
    }
    Xoshiro256PlusPlus::from_seed(bytes)
}

/// SplitMix64's increment (the golden ratio), added to its state before each output.
const SPLITMIX_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::spec::Status;

    #[test]
    fn stream_rng_is_seed_from_u64() {
        use rand_core::Rng;
        let mut seed = 0x0123_4567_89AB_CDEF_u64;
        for _ in 0..1000 {
            let mut ours = stream_rng(seed);
            let mut theirs = Xoshiro256PlusPlus::seed_from_u64(seed);
            for _ in 0..8 {
                assert_eq!(ours.next_u64(), theirs.next_u64(), "seed {seed:#x}");
            }
            seed = splitmix64(seed);
        }
        for edge in [0, u64::MAX, SPLITMIX_GAMMA.wrapping_neg()] {
            assert_eq!(stream_rng(edge), Xoshiro256PlusPlus::seed_from_u64(edge));
        }
    }

    #[test]
    fn status_follows_thresholds() {
        let t = FleetSpec::default().thresholds.temperature;
        assert_eq!(t.status(t.warning - 0.01), Status::Normal);
        assert_eq!(t.status(t.warning), Status::Warning);
        assert_eq!(t.status(t.error), Status::Error);
    }

    #[test]
    fn a_status_drops_only_below_its_threshold_less_the_hysteresis() {
        let t = FleetSpec::default().thresholds.temperature;
        let (w, e, h) = (t.warning, t.error, 1.0);
        // Rising: as soon as a threshold is reached, from any status.
        assert_eq!(t.status_after(w, Status::Normal, h), Status::Warning);
        assert_eq!(t.status_after(e, Status::Offline, h), Status::Error);
        // Falling: held until the value is h below the threshold.
        assert_eq!(t.status_after(w - 0.5, Status::Warning, h), Status::Warning);
        assert_eq!(t.status_after(w - 1.0, Status::Warning, h), Status::Warning);
        assert_eq!(t.status_after(w - 1.01, Status::Warning, h), Status::Normal);
        assert_eq!(t.status_after(e - 0.5, Status::Error, h), Status::Error);
        assert_eq!(t.status_after(e - 1.01, Status::Error, h), Status::Warning);
        assert_eq!(t.status_after(w - 1.01, Status::Error, h), Status::Normal);
        // After a dropout a value is judged afresh.
        assert_eq!(t.status_after(w - 0.5, Status::Offline, h), Status::Normal);
        // No hysteresis: the plain thresholds.
        assert_eq!(
            t.status_after(w - 0.01, Status::Warning, 0.0),
            Status::Normal
        );
    }

    fn fleet(devices: u64, tune: impl FnOnce(&mut FleetSpec)) -> Fleet {
        let mut spec = FleetSpec::default();
        spec.simulator.device_count = crate::units::Count(devices);
        tune(&mut spec);
        Fleet::new(spec, 0)
    }

    #[test]
    fn a_fleet_is_spread_over_every_building_then_its_floors_and_rooms() {
        use std::collections::BTreeMap;
        // The default 1,000 devices over the default 8 buildings: 125 in each, one per
        // room, spread over all 10 floors; never a ninth, invented building.
        let f = fleet(1000, |_| {});
        let labels = f.spec.simulator.buildings.len();
        let mut per_building = vec![0u64; labels];
        let mut floors = BTreeMap::new();
        let mut rooms = std::collections::BTreeSet::new();
        for d in 0..1000 {
            let l = f.location(d);
            per_building[l.building] += 1;
            *floors.entry((l.building, l.floor)).or_insert(0) += 1;
            assert!((1..=20).contains(&l.room), "{l:?}");
            assert!(
                rooms.insert((l.building, l.floor, l.room)),
                "{d} shares {l:?}"
            );
        }
        assert_eq!(per_building, vec![125; labels]);
        assert_eq!(floors.len(), labels * 10, "every floor of every building");
        assert!(
            floors.values().all(|&n| (12..=13).contains(&n)),
            "{floors:?}"
        );
        // Contiguous: a building's devices are one range of indices.
        assert_eq!(f.location(124).building, 0);
        assert_eq!(f.location(125).building, 1);

        // Unequal shares differ by one, and a fleet larger than the rooms fills each
        // room with devices/rooms or one more.
        let f = fleet(100_003, |_| {});
        let mut per_room: BTreeMap<(usize, u32, u32), u64> = BTreeMap::new();
        for d in 0..100_003 {
            let l = f.location(d);
            assert!(l.building < labels && (1..=10).contains(&l.floor));
            *per_room.entry((l.building, l.floor, l.room)).or_default() += 1;
        }
        assert_eq!(per_room.len(), labels * 10 * 20, "every room is used");
        assert!(
            per_room.values().all(|&n| (62..=63).contains(&n)),
            "{per_room:?}"
        );

        // Fewer devices than buildings: one each in the first buildings.
        let f = fleet(3, |_| {});
        let b: Vec<usize> = (0..3).map(|d| f.location(d).building).collect();
        assert_eq!(b, vec![0, 1, 2]);
    }

    #[test]
    fn room_numbers_widen_past_99_rooms_per_floor() {
        assert_eq!(fleet(1000, |_| {}).room_digits(), 2);
        let f = fleet(300_000, |s| {
            s.simulator.rooms_per_floor = 150;
            s.simulator.buildings = vec!["A".into()];
        });
        assert_eq!(f.room_digits(), 3);
        let max_room = (0..300_000).map(|d| f.location(d).room).max();
        assert_eq!(max_room, Some(150));
    }

    #[test]
    fn id_width_grows_with_fleet() {
        let width = |n| {
            let spec = FleetSpec::with_simulator(|s| s.device_count = crate::units::Count(n));
            Fleet::new(spec, 0).id_width
        };
        assert_eq!(width(1000), 6);
        assert_eq!(width(1_000_000), 6);
        assert_eq!(width(1_000_001), 7);
    }
}
