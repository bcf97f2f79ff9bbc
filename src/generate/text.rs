//! Text output for the JSON encoder: a cursor that writes straight into the spare
//! capacity of a `Vec<u8>`, decimal numbers written two digits at a time, and
//! configured fragments copied in whole chunks.
//!
//! Why not `Vec::extend_from_slice` and `itoa`: a reading is ~430 bytes written as ~40
//! pieces, and each piece paid a capacity check and a `memcpy` call sized at run time,
//! and each number a formatting buffer and one more copy. Together that was about half
//! of a reading's cost (perf: memmove 15 %, itoa 13 %). Here the capacity is reserved
//! once per message, pieces known at compile time become plain moves, fragments are
//! copied in `CHUNK`-byte blocks from zero-padded copies, and digits go straight into
//! place. Some writes run up to `SLACK` bytes past the text they keep; later writes
//! overwrite those bytes, and the length set at the end leaves the rest out.
//! `benches/generate.rs` (`encode_json`) compares it with the `Vec` writer it replaces.

use crate::model::round_int;

/// Most bytes a cursor writes past the end of the text it keeps (fragment chunks,
/// zero padding, the digit pair of a value's decimals). A cursor's room must include it.
pub const SLACK: usize = 32;

/// Block size of fragment copies.
const CHUNK: usize = 16;

/// Most characters of a number: an `i64` with its sign, or a value with 2 decimals.
pub const MAX_NUMBER: usize = 24;

/// The two digits of 0 to 99.
const PAIRS: [[u8; 2]; 100] = {
    let mut t = [[0u8; 2]; 100];
    let mut i = 0;
    while i < 100 {
        t[i] = [b'0' + (i / 10) as u8, b'0' + (i % 10) as u8];
        i += 1;
    }
    t
};

/// 10^n for n up to 19.
const POW10: [u64; 20] = {
    let mut t = [1u64; 20];
    let mut i = 1;
    while i < 20 {
        t[i] = t[i - 1] * 10;
        i += 1;
    }
    t
};

/// Bytes copied in whole `CHUNK`-byte blocks: the text, then zeros up to a multiple of
/// `CHUNK`, so a copy never reads past its source and writes fewer than `CHUNK` bytes
/// past its end (within `SLACK`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frag {
    chunks: Box<[[u8; CHUNK]]>,
    len: usize,
}

impl Frag {
    pub fn new(text: &[u8]) -> Self {
        let chunks = text
            .chunks(CHUNK)
            .map(|c| {
                let mut b = [0u8; CHUNK];
                b[..c.len()].copy_from_slice(c);
                b
            })
            .collect();
        Self {
            chunks,
            len: text.len(),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Appends to a `Vec<u8>` within the room reserved when it was made; the bytes written
/// become part of the vector when it is dropped.
pub struct Cursor<'a> {
    out: &'a mut Vec<u8>,
    /// Start of the vector's buffer, valid for `end` bytes.
    base: *mut u8,
    /// Where the next byte goes: the vector's length once dropped.
    pos: usize,
    /// `pos` at the start plus the room: every write stays below it.
    end: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the end of `out`, with `room` bytes reserved after it. A full batch
    /// buffer is never grown: batches reserve `Encoder::max_len` per message
    /// (`deliver/batch.rs`) and each message is shorter, so its room is always there.
    ///
    /// # Safety
    /// Everything written through the cursor, plus `SLACK`, must fit in `room` bytes:
    /// the writes themselves are unchecked (in release builds).
    #[inline(always)]
    pub unsafe fn new(out: &'a mut Vec<u8>, room: usize) -> Self {
        out.reserve(room);
        let pos = out.len();
        Self {
            base: out.as_mut_ptr(),
            out,
            pos,
            end: pos + room,
        }
    }

    /// Writes `n` bytes from `src` at `pos + at`, without moving. The caller keeps
    /// `pos + at + n` within `end`.
    #[inline(always)]
    fn raw(&mut self, at: usize, src: *const u8, n: usize) {
        debug_assert!(self.pos + at + n <= self.end, "cursor overrun");
        // SAFETY: `base` is valid for `end` bytes (reserved in `new`), the caller keeps
        // this write below `end` (`new`'s contract), and `src` (a distinct, live
        // buffer) is valid for `n` bytes.
        unsafe { std::ptr::copy_nonoverlapping(src, self.base.add(self.pos + at), n) }
    }

    /// Appends `s`; a literal becomes a few moves.
    #[inline(always)]
    pub fn put(&mut self, s: &[u8]) {
        self.raw(0, s.as_ptr(), s.len());
        self.pos += s.len();
    }

    #[inline(always)]
    pub fn byte(&mut self, b: u8) {
        self.put(&[b]);
    }

    /// Appends `f` in whole chunks.
    #[inline(always)]
    pub fn frag(&mut self, f: &Frag) {
        for (i, c) in f.chunks.iter().enumerate() {
            self.raw(i * CHUNK, c.as_ptr(), CHUNK);
        }
        self.pos += f.len;
    }

    /// `v` in decimal.
    #[inline(always)]
    pub fn u64(&mut self, v: u64) {
        if v < POW10[8] {
            self.small(v as u32);
        } else {
            self.large(v);
        }
    }

    #[inline(always)]
    pub fn i64(&mut self, v: i64) {
        if v < 0 {
            self.byte(b'-');
        }
        self.u64(v.unsigned_abs());
    }

    /// `v` (below 10^8) in decimal. Most numbers in a reading are below 10^4 and keep
    /// their length from one reading to the next (a floor, a battery level, a sensor's
    /// whole units), so a few comparisons inlined at each number beat counting digits.
    #[inline(always)]
    fn small(&mut self, v: u32) {
        if v < 100 {
            if v < 10 {
                self.byte(b'0' + v as u8);
            } else {
                self.put(&PAIRS[v as usize]);
            }
        } else if v < 10_000 {
            let (high, low) = (v / 100, v % 100);
            if v < 1000 {
                self.byte(b'0' + high as u8);
            } else {
                self.put(&PAIRS[high as usize]);
            }
            self.put(&PAIRS[low as usize]);
        } else {
            self.medium(v);
        }
    }

    /// `v` (below 10^8) in decimal, pairs of digits from the right.
    #[inline(never)]
    fn medium(&mut self, mut v: u32) {
        let n = v.checked_ilog10().unwrap_or(0) as usize + 1;
        let mut at = n;
        while v >= 100 {
            at -= 2;
            self.raw(at, PAIRS[(v % 100) as usize].as_ptr(), 2);
            v /= 100;
        }
        if v >= 10 {
            self.raw(at - 2, PAIRS[v as usize].as_ptr(), 2);
        } else {
            self.raw(at - 1, &(b'0' + v as u8), 1);
        }
        self.pos += n;
    }

    /// `v` from 10^8 up (a millisecond timestamp): the leading part, then blocks of 8
    /// digits, whose halves are independent divisions.
    #[inline(never)]
    fn large(&mut self, v: u64) {
        let (high, low) = (v / POW10[8], (v % POW10[8]) as u32);
        if high < POW10[8] {
            self.small(high as u32);
        } else {
            self.small((high / POW10[8]) as u32);
            self.eight((high % POW10[8]) as u32);
        }
        self.eight(low);
    }

    /// `v` (below 10^8) as exactly 8 digits.
    #[inline(always)]
    fn eight(&mut self, v: u32) {
        let (a, b) = (v / 10_000, v % 10_000);
        let d = [a / 100, a % 100, b / 100, b % 100].map(|p| PAIRS[p as usize]);
        self.raw(0, d.as_flattened().as_ptr(), 8);
        self.pos += 8;
    }

    /// `v` zero-padded to at least `width` digits.
    #[inline(always)]
    pub fn padded(&mut self, mut v: u64, width: usize) {
        // At least one digit, as `format!("{v:0width$}")` writes.
        let width = width.max(1);
        if width >= POW10.len() || v >= POW10[width] {
            // As wide as the padding or wider (never so in a fleet): zeros, if any, then
            // the number.
            let digits = v.checked_ilog10().unwrap_or(0) as usize + 1;
            for _ in digits..width {
                self.byte(b'0');
            }
            return self.u64(v);
        }
        // Exactly `width` digits, the leading ones 0 once `v` runs out.
        let mut at = width;
        while at >= 2 {
            at -= 2;
            self.raw(at, PAIRS[(v % 100) as usize].as_ptr(), 2);
            v /= 100;
        }
        if at == 1 {
            self.raw(0, &(b'0' + v as u8), 1);
        }
        self.pos += width;
    }

    /// `v` rounded to 2 decimals, as the shortest of `12`, `12.5`, `12.25` that has
    /// at least one decimal (`12.0`), or `null` for a dropout (NaN).
    #[inline(always)]
    pub fn value(&mut self, v: f64) {
        if v.is_nan() {
            self.put(b"null");
        } else {
            self.fixed2(v);
        }
    }

    /// `v` rounded to 2 decimals (see `value`), from its whole cents.
    #[inline(always)]
    pub fn fixed2(&mut self, v: f64) {
        let cents = round_int(v * 100.0);
        if cents < 0 {
            self.byte(b'-');
        }
        let c = cents.unsigned_abs();
        self.u64(c / 100);
        let [tens, units] = PAIRS[(c % 100) as usize];
        // The point and both decimals at once; the second decimal is kept unless 0.
        self.raw(0, [b'.', tens, units].as_ptr(), 3);
        self.pos += if units == b'0' { 2 } else { 3 };
    }
}

impl Drop for Cursor<'_> {
    /// Makes the bytes written part of the vector.
    #[inline(always)]
    fn drop(&mut self) {
        debug_assert!(self.pos <= self.end);
        // SAFETY: `pos` stays within the capacity reserved in `new` (its contract), and
        // every byte below it was written: each write starts at `pos` and moves `pos`
        // at most to its end.
        unsafe { self.out.set_len(self.pos) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(f: impl FnOnce(&mut Cursor)) -> String {
        let mut out = b"x".to_vec();
        // SAFETY: every test writes well under 200 bytes.
        f(&mut unsafe { Cursor::new(&mut out, 256) });
        assert_eq!(out[0], b'x');
        String::from_utf8(out[1..].to_vec()).unwrap()
    }

    #[test]
    fn numbers_match_the_standard_formatting() {
        let mut xs: Vec<u64> = (0..2000).collect();
        for &t in &POW10[1..] {
            xs.extend([t - 1, t, t + 1, t.wrapping_mul(3).wrapping_add(7)]);
        }
        xs.extend([u64::MAX, u64::MAX - 1, 1_767_225_600_123]);
        for &x in &xs {
            assert_eq!(text(|c| c.u64(x)), x.to_string());
            for w in [0, 1, 2, 3, 6, 7, 19, 20, 25] {
                assert_eq!(text(|c| c.padded(x, w)), format!("{x:0w$}"), "{x} {w}");
            }
        }
        for x in [0, -1, -99, -100, i64::MIN, i64::MAX, -1_767_225_600_123] {
            assert_eq!(text(|c| c.i64(x)), x.to_string());
        }
    }

    #[test]
    fn fragments_and_pieces_join() {
        let f = Frag::new(b"0123456789abcdefXYZ");
        assert_eq!(f.len(), 19);
        let s = text(|c| {
            c.frag(&f);
            c.put(b",");
            c.frag(&Frag::new(b""));
            c.value(f64::NAN);
            c.byte(b'|');
            c.value(-0.5);
        });
        assert_eq!(s, "0123456789abcdefXYZ,null|-0.5");
    }
}
