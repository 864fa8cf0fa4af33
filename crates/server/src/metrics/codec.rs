//! Compressed chunk encoding for metric time series, and chunk summaries.
//!
//! Blob layout (integers are LEB128 varints unless noted, `zz` = zigzag), version 2:
//! `version: u8 = 2, count, steps column, timestamps column, values column, crc: u32 LE`
//! (no columns when count == 0). `crc` is the CRC32C (Castagnoli) of every byte before it and
//! is checked before anything is parsed, so a damaged chunk is an error, never wrong points.
//! The decoder must consume the blob exactly, so truncation is always detected.
//!
//! Integer column: `zz(first)`, then (count >= 2) a mode byte:
//! * `0..=48`, a bit width `w`: `zz(base)`, then the `count - 1` residuals `delta - base`
//!   bit-packed LSB-first, `w` bits each; `base` is the smallest delta. Constant increments give
//!   `w == 0` (no payload), jittered timestamps a handful of bits per point.
//! * `0xFF`: delta-of-delta tokens for irregular data: byte length, then varints where a nonzero
//!   token is `zz(dod)` and `0, k` stands for `k + 1` zero dods (runs of equal deltas).
//!
//! The encoder picks the smaller (packed on ties: it decodes fastest).
//!
//! Values column: a domain byte, `zz` of the first value's integer (below), then blocks of
//! [`VALUE_BLOCK`] differences for the other values (the last block shorter).
//! The domain byte's top bit says the values are f32-exact (every value, none NaN, survives a
//! round trip through f32) and are coded from their f32 bits; its low six bits are `shift`, the
//! smallest trailing-zero count of the magnitudes (sign cleared) in that domain. Each value
//! becomes the integer `m = magnitude >> shift` when positive and `!m` (that is `-m - 1`) when
//! negative, an order-keeping map in which a small change of value is a small difference even
//! across zero, and each block stores a width byte `w` (0..=64) then the zigzagged differences
//! of consecutive integers, `w` bits each, LSB-first, padded to a byte.
//! A block of repeated values costs one byte; the noisy f32 training curve of the benchmark
//! about 3 bytes a value, against 3.6 for version 1's byte-granular XOR lengths (measured).
//!
//! Version 1 (still decoded; see `decode_values_v1`) had no checksum and stored values as
//! XORs with the previous value: `shift: u8`, one length nibble per value (two per byte, low
//! nibble first), then each XOR shifted right by `shift` as its `len` (0..=8) low bytes.
//!
//! Decode loops load fixed 8/16-byte windows, keep all state in locals and avoid shifts by a
//! runtime count that can be zero: for generic x86-64 code such shifts merge the flags into the
//! loop's dependency chain and ran several times slower (measured on AMD Zen).

use std::fmt;

/// One metric value at one step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub step: i64,
    pub value: f64,
    pub timestamp_us: i64,
}

/// A corrupt, truncated or unsupported chunk blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecError(pub String);

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "metric chunk codec: {}", self.0)
    }
}

impl std::error::Error for CodecError {}

/// The version [`encode_chunk`] writes.
const VERSION: u8 = 2;
/// The first format: no checksum, byte-granular XOR values. Decoded, never written.
const VERSION_1: u8 = 1;
/// Values per block of the values column; each block has its own bit width.
pub const VALUE_BLOCK: usize = 32;
/// Domain-byte flag: values are coded from their f32 bits.
const F32_DOMAIN: u8 = 0x80;
/// Bytes of the checksum that ends a version 2 blob.
const CRC_LEN: usize = 4;
/// Integer-column mode byte for delta-of-delta tokens.
const MODE_DOD: u8 = 0xFF;
/// Widest packed residual: a load one byte early (bit offset 8..=15) must still hold it.
const MAX_PACK_WIDTH: u32 = 48;
/// `MASKS[n]` keeps the low `n` bytes.
const MASKS: [u64; 9] = {
    let mut m = [u64::MAX; 9];
    let mut i = 0;
    while i < 8 {
        m[i] = (1 << (8 * i)) - 1;
        i += 1;
    }
    m
};

fn corrupt(what: &str) -> CodecError {
    CodecError(format!("corrupt or truncated chunk: {what}"))
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(u: u64) -> i64 {
    (u >> 1) as i64 ^ -((u & 1) as i64)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// The `N` bytes of `data` at `pos`, zero-filled past the end: one unaligned load, except near
/// the end of the blob, where an out-of-line copy keeps the hot loops free of calls and spills.
#[inline(always)]
fn window<const N: usize>(data: &[u8], pos: usize) -> [u8; N] {
    #[cold]
    #[inline(never)]
    fn padded<const N: usize>(data: &[u8], pos: usize) -> [u8; N] {
        let mut buf = [0; N];
        let rest = data.get(pos..).unwrap_or_default();
        buf.iter_mut().zip(rest).for_each(|(d, s)| *d = *s);
        buf
    }
    match data.get(pos..).and_then(|s| s.first_chunk::<N>()) {
        Some(w) => *w,
        None => padded(data, pos),
    }
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, CodecError> {
        let b = self
            .data
            .get(self.pos)
            .ok_or_else(|| corrupt("unexpected end"))?;
        self.pos += 1;
        Ok(*b)
    }

    fn varint(&mut self) -> Result<u64, CodecError> {
        let mut v = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            if shift == 63 && b > 1 {
                break;
            }
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(corrupt("varint overflow"))
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], CodecError> {
        let end = self.pos.checked_add(len).filter(|&e| e <= self.data.len());
        let end = end.ok_or_else(|| corrupt("section past end"))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }
}

/// Encodes points (steps strictly increasing; caller guarantees) into a self-describing byte blob.
pub fn encode_chunk(points: &[Point]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + points.len() * 4);
    out.push(VERSION);
    put_varint(&mut out, points.len() as u64);
    if !points.is_empty() {
        encode_ints(&mut out, points, |p| p.step);
        encode_ints(&mut out, points, |p| p.timestamp_us);
        encode_values(&mut out, points);
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// The format version of a blob (its first byte), without checking the rest.
pub fn chunk_version(data: &[u8]) -> Option<u8> {
    data.first().copied()
}

/// Whether a blob is in the format [`encode_chunk`] writes today.
pub fn is_current(data: &[u8]) -> bool {
    chunk_version(data) == Some(VERSION)
}

/// Calls `emit` with the delta-of-delta tokens of a column (see module docs).
fn dod_tokens(points: &[Point], get: impl Fn(&Point) -> i64, mut emit: impl FnMut(u64)) {
    let (mut prev_delta, mut zeros) = (0i64, 0u64);
    for w in points.windows(2) {
        let delta = get(&w[1]).wrapping_sub(get(&w[0]));
        let dod = delta.wrapping_sub(prev_delta);
        prev_delta = delta;
        if dod == 0 {
            zeros += 1;
            continue;
        }
        if zeros > 0 {
            emit(0);
            emit(zeros - 1);
            zeros = 0;
        }
        emit(zigzag(dod));
    }
    if zeros > 0 {
        emit(0);
        emit(zeros - 1);
    }
}

fn encode_ints(out: &mut Vec<u8>, points: &[Point], get: impl Fn(&Point) -> i64 + Copy) {
    put_varint(out, zigzag(get(&points[0])));
    if points.len() < 2 {
        return;
    }
    // Wrapping arithmetic throughout: exact even for i64::MIN -> i64::MAX jumps.
    let deltas = points
        .windows(2)
        .map(|w| get(&w[1]).wrapping_sub(get(&w[0])));
    let (base, max) = deltas
        .clone()
        .fold((i64::MAX, i64::MIN), |(lo, hi), d| (lo.min(d), hi.max(d)));
    let width = 64 - (max.wrapping_sub(base) as u64).leading_zeros();
    let packed_len = ((points.len() - 1) * width as usize).div_ceil(8);
    let mut dod_len = 0;
    dod_tokens(points, get, |t| dod_len += varint_len(t));
    let packed_total = packed_len + varint_len(zigzag(base));
    if width > MAX_PACK_WIDTH || packed_total > dod_len + varint_len(dod_len as u64) {
        out.push(MODE_DOD);
        put_varint(out, dod_len as u64);
        dod_tokens(points, get, |t| put_varint(out, t));
        return;
    }
    out.push(width as u8);
    put_varint(out, zigzag(base));
    // Bit accumulator kept 8 bits up (bit 63 stays clear as width <= 48) so no shift count is
    // zero. Each value stores the whole word into a pre-sized slice, then advances by the
    // completed bytes.
    let start = out.len();
    out.resize(start + packed_len + 8, 0);
    let (mut acc, mut nbits, mut pos) = (0u64, 8, start);
    for d in deltas.filter(|_| width > 0) {
        acc |= (d.wrapping_sub(base) as u64) << nbits;
        nbits += width;
        out[pos..pos + 8].copy_from_slice(&(acc >> 8).to_le_bytes());
        let full = (nbits - 8) / 8;
        pos += full as usize;
        nbits -= 8 * full;
        acc = (acc << 1) >> (8 * full + 1);
    }
    out.truncate(start + packed_len);
}

/// Whether every value survives a round trip through f32 bit for bit (NaN never counts: its
/// payload may change in a conversion).
fn f32_exact(points: &[Point]) -> bool {
    points
        .iter()
        .all(|p| f64::from(p.value as f32).to_bits() == p.value.to_bits() && !p.value.is_nan())
}

/// Sign and magnitude of a value's bits in the chosen domain.
#[inline(always)]
fn sign_magnitude<const F32: bool>(v: f64) -> (bool, u64) {
    if F32 {
        let b = (v as f32).to_bits();
        (b >> 31 == 1, u64::from(b & 0x7fff_ffff))
    } else {
        let b = v.to_bits();
        (b >> 63 == 1, b & (u64::MAX >> 1))
    }
}

fn encode_values(out: &mut Vec<u8>, points: &[Point]) {
    if f32_exact(points) {
        write_values::<true>(out, points);
    } else {
        write_values::<false>(out, points);
    }
}

fn write_values<const F32: bool>(out: &mut Vec<u8>, points: &[Point]) {
    let bits = if F32 { 31 } else { 63 };
    let shift = points
        .iter()
        .map(|p| sign_magnitude::<F32>(p.value).1.trailing_zeros())
        .min()
        .unwrap_or(0);
    let shift = if shift >= bits { 0 } else { shift }; // every magnitude zero: any shift works
    out.push(shift as u8 | if F32 { F32_DOMAIN } else { 0 });
    let ordered = |v: f64| {
        let (neg, mag) = sign_magnitude::<F32>(v);
        let m = (mag >> shift) as i64;
        if neg { !m } else { m }
    };
    let mut prev = ordered(points[0].value);
    put_varint(out, zigzag(prev));
    let mut zs = [0u64; VALUE_BLOCK];
    for block in points[1..].chunks(VALUE_BLOCK) {
        let mut any = 0;
        for (z, p) in zs.iter_mut().zip(block) {
            let t = ordered(p.value);
            *z = zigzag(t.wrapping_sub(prev));
            any |= *z;
            prev = t;
        }
        let width = 64 - any.leading_zeros();
        out.push(width as u8);
        pack(out, &zs[..block.len()], width);
    }
}

/// Appends `values`, `width` bits each, LSB-first, padded to a whole byte.
fn pack(out: &mut Vec<u8>, values: &[u64], width: u32) {
    if width == 0 {
        return;
    }
    let (mut acc, mut nbits) = (0u128, 0u32);
    for &v in values {
        acc |= u128::from(v) << nbits;
        nbits += width;
        if nbits >= 64 {
            out.extend_from_slice(&(acc as u64).to_le_bytes());
            acc >>= 64;
            nbits -= 64;
        }
    }
    let rest = nbits.div_ceil(8) as usize;
    out.extend_from_slice(&(acc as u64).to_le_bytes()[..rest]);
}

/// Decodes a blob, appending to the three columnar vectors. Returns the number of points decoded.
/// On error the vectors are restored to their previous lengths.
pub fn decode_chunk_into(
    data: &[u8],
    steps: &mut Vec<i64>,
    values: &mut Vec<f64>,
    timestamps_us: &mut Vec<i64>,
) -> Result<usize, CodecError> {
    let lens = (steps.len(), values.len(), timestamps_us.len());
    let res = body(data).and_then(|(version, body)| {
        decode_columns(
            version,
            &mut Reader { data: body, pos: 0 },
            steps,
            values,
            timestamps_us,
        )
    });
    if res.is_err() {
        steps.truncate(lens.0);
        values.truncate(lens.1);
        timestamps_us.truncate(lens.2);
    }
    res
}

/// The version and the checked part of a blob: for version 2 everything but the checksum,
/// once the checksum matches.
fn body(data: &[u8]) -> Result<(u8, &[u8]), CodecError> {
    match chunk_version(data) {
        Some(VERSION_1) => Ok((VERSION_1, data)),
        Some(VERSION) => {
            let (body, crc) = data
                .split_last_chunk::<CRC_LEN>()
                .ok_or_else(|| corrupt("shorter than its checksum"))?;
            match crc32c::crc32c(body) == u32::from_le_bytes(*crc) {
                true => Ok((VERSION, body)),
                false => Err(CodecError("checksum mismatch: the chunk is damaged".into())),
            }
        }
        Some(v) => Err(CodecError(format!("unsupported version {v}"))),
        None => Err(corrupt("empty blob")),
    }
}

/// Checks a blob (checksum and structure) without keeping its points; returns its point count.
pub fn check_chunk(data: &[u8]) -> Result<usize, CodecError> {
    let (mut s, mut v, mut t) = (Vec::new(), Vec::new(), Vec::new());
    decode_chunk_into(data, &mut s, &mut v, &mut t)
}

fn decode_columns(
    version: u8,
    r: &mut Reader<'_>,
    steps: &mut Vec<i64>,
    values: &mut Vec<f64>,
    timestamps_us: &mut Vec<i64>,
) -> Result<usize, CodecError> {
    r.byte()?; // the version, read by `body`
    // Every point costs at least a nibble (version 1) or a 32nd of a block's width byte
    // (version 2), so a corrupt count cannot cause a huge allocation.
    let per_byte = if version == VERSION_1 { 2 } else { VALUE_BLOCK };
    let n = r.varint()?;
    let n = usize::try_from(n)
        .ok()
        .filter(|&n| n / per_byte <= r.data.len());
    let n = n.ok_or_else(|| corrupt("point count exceeds blob size"))?;
    if n > 0 {
        decode_ints(r, n, steps)?;
        decode_ints(r, n, timestamps_us)?;
        if version == VERSION_1 {
            decode_values_v1(r, n, values)?;
        } else {
            decode_values(r, n, values)?;
        }
    }
    match r.pos == r.data.len() {
        true => Ok(n),
        false => Err(corrupt("trailing bytes")),
    }
}

fn decode_ints(r: &mut Reader<'_>, n: usize, out: &mut Vec<i64>) -> Result<(), CodecError> {
    let mut acc = unzigzag(r.varint()?);
    out.reserve(n);
    out.push(acc);
    let m = n - 1;
    let mode = if m > 0 { r.byte()? } else { 0 };
    if u32::from(mode) <= MAX_PACK_WIDTH {
        let width = usize::from(mode);
        let base = if m > 0 { unzigzag(r.varint()?) } else { 0 };
        let bits = m.checked_mul(width).ok_or_else(|| corrupt("packed size"))?;
        let (data, start) = (r.data, r.pos);
        r.take(bits.div_ceil(8))?;
        let first = out.len();
        out.resize(first + m, 0);
        let dst = &mut out[first..];
        if width == 0 {
            for x in dst {
                acc = acc.wrapping_add(base);
                *x = acc;
            }
            return Ok(());
        }
        let mask = (1u64 << width) - 1;
        // One 8-byte load per value, starting a byte early so the shift is 8..=15, never zero
        // (start >= 1 as the version byte precedes). It may read into the next section; the
        // mask drops those bits.
        let mut bit = start * 8;
        for x in dst {
            let w = u64::from_le_bytes(window(data, (bit / 8).wrapping_sub(1)));
            acc = acc.wrapping_add(base.wrapping_add(((w >> (8 + bit % 8)) & mask) as i64));
            *x = acc;
            bit += width;
        }
        return Ok(());
    }
    if mode != MODE_DOD {
        return Err(corrupt("unknown integer column mode"));
    }
    let len = usize::try_from(r.varint()?).map_err(|_| corrupt("section length"))?;
    let mut t = Reader {
        data: r.take(len)?,
        pos: 0,
    };
    let (mut remaining, mut delta) = (m, 0i64);
    while remaining > 0 {
        let token = t.varint()?;
        let run = if token == 0 {
            let run = usize::try_from(t.varint()?)
                .ok()
                .and_then(|k| k.checked_add(1));
            run.filter(|&run| run <= remaining)
                .ok_or_else(|| corrupt("run too long"))?
        } else {
            delta = delta.wrapping_add(unzigzag(token));
            1
        };
        for _ in 0..run {
            acc = acc.wrapping_add(delta);
            out.push(acc);
        }
        remaining -= run;
    }
    match t.pos == len {
        true => Ok(()),
        false => Err(corrupt("trailing bytes in integer column")),
    }
}

fn decode_values(r: &mut Reader<'_>, n: usize, out: &mut Vec<f64>) -> Result<(), CodecError> {
    let domain = r.byte()?;
    let shift = u32::from(domain & 0x3f);
    let first = out.len();
    out.resize(first + n, 0.0);
    let dst = &mut out[first..];
    let ok = match domain & !0x3f {
        F32_DOMAIN if shift < 32 => read_values::<true>(r, shift, dst),
        0 => read_values::<false>(r, shift, dst),
        _ => Err(corrupt("values domain")),
    };
    if ok.is_err() {
        out.truncate(first);
    }
    ok
}

/// Decodes the blocks of a version 2 values column into `dst` (see module docs).
fn read_values<const F32: bool>(
    r: &mut Reader<'_>,
    shift: u32,
    dst: &mut [f64],
) -> Result<(), CodecError> {
    // A multiplication instead of a shift by a runtime count that may be zero.
    let scale = 1u64 << shift;
    let value = |t: i64| {
        let neg = (t >> 63) as u64; // all ones when negative
        let mag = ((t as u64) ^ neg).wrapping_mul(scale);
        if F32 {
            let bits = (neg as u32 & 0x8000_0000) | (mag as u32 & 0x7fff_ffff);
            f64::from(f32::from_bits(bits))
        } else {
            f64::from_bits((neg & 1 << 63) | (mag & u64::MAX >> 1))
        }
    };
    let mut t = unzigzag(r.varint()?);
    let Some((first, dst)) = dst.split_first_mut() else {
        return Ok(());
    };
    *first = value(t);
    for block in dst.chunks_mut(VALUE_BLOCK) {
        let width = u32::from(r.byte()?);
        if width > 64 {
            return Err(corrupt("value width"));
        }
        let start = r.pos;
        r.take((block.len() * width as usize).div_ceil(8))?;
        if width == 0 {
            block.fill(value(t));
            continue;
        }
        let mask = u64::MAX >> (64 - width);
        // Loads start a byte early (start >= 1: the version byte precedes), so the shift is
        // 8..=15 and never zero; they may read into the next block, and the mask drops that.
        let mut bit = start * 8;
        if width <= 48 {
            for x in block.iter_mut() {
                let w = u64::from_le_bytes(window(r.data, bit / 8 - 1));
                t = t.wrapping_add(unzigzag((w >> (8 + bit % 8)) & mask));
                *x = value(t);
                bit += width as usize;
            }
        } else {
            for x in block.iter_mut() {
                let w = u128::from_le_bytes(window(r.data, bit / 8 - 1));
                t = t.wrapping_add(unzigzag((w >> (8 + bit % 8)) as u64 & mask));
                *x = value(t);
                bit += width as usize;
            }
        }
    }
    Ok(())
}

fn decode_values_v1(r: &mut Reader<'_>, n: usize, out: &mut Vec<f64>) -> Result<(), CodecError> {
    let shift = r.byte()?;
    let nibbles = r.take(n.div_ceil(2))?;
    if shift > 63 || (n % 2 == 1 && nibbles.last().is_some_and(|b| b >> 4 != 0)) {
        return Err(corrupt("values header"));
    }
    let (mut prev, mut bad) = (0u64, false);
    let (data, mut pos, first) = (r.data, r.pos, out.len());
    out.resize(first + 2 * nibbles.len(), 0.0); // even length, trimmed to n below
    for (dst, &nb) in out[first..].as_chunks_mut::<2>().0.iter_mut().zip(nibbles) {
        // One 16-byte window covers both values of the pair. Reads past the end give zeros and
        // are caught by the final position check; bad lengths are reported after the loop.
        let w: [u8; 16] = window(data, pos);
        let word = |at: usize| w[at..].first_chunk().map_or(0, |b| u64::from_le_bytes(*b));
        let (l0, l1) = (usize::from(nb & 15), usize::from(nb >> 4));
        bad |= l0.max(l1) > 8;
        let (l0, l1) = (l0.min(8), l1.min(8));
        prev ^= (word(0) & MASKS[l0]) << shift;
        dst[0] = f64::from_bits(prev);
        prev ^= (word(l0) & MASKS[l1]) << shift;
        dst[1] = f64::from_bits(prev);
        pos += l0 + l1;
    }
    out.truncate(first + n);
    if bad || pos > data.len() {
        return Err(corrupt("value payload"));
    }
    r.pos = pos;
    Ok(())
}

/// Convenience: decode into points.
pub fn decode_chunk(data: &[u8]) -> Result<Vec<Point>, CodecError> {
    let (mut s, mut v, mut t) = (Vec::new(), Vec::new(), Vec::new());
    decode_chunk_into(data, &mut s, &mut v, &mut t)?;
    let points = s.iter().zip(&v).zip(&t);
    Ok(points
        .map(|((&step, &value), &timestamp_us)| Point {
            step,
            value,
            timestamp_us,
        })
        .collect())
}

/// Summary of a chunk, stored beside it so reads can skip decoding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChunkStats {
    pub count: i64,
    pub start_step: i64,
    pub end_step: i64,
    /// Smallest / largest non-NaN value with its point (first occurrence on ties); None when every value is NaN.
    pub min: Option<Point>,
    pub max: Option<Point>,
}

/// Summarises a chunk (meant for non-empty chunks; an empty one gives zero count and steps).
pub fn chunk_stats(points: &[Point]) -> ChunkStats {
    let (mut min, mut max) = (None, None);
    for p in points {
        offer(&mut min, *p, true);
        offer(&mut max, *p, false);
    }
    ChunkStats {
        count: points.len() as i64,
        start_step: points.first().map_or(0, |p| p.step),
        end_step: points.last().map_or(0, |p| p.step),
        min,
        max,
    }
}

/// Replaces `slot` if `p` is a better non-NaN minimum (or maximum); ties keep the earliest step,
/// so the outcome does not depend on the order points arrive in.
fn offer(slot: &mut Option<Point>, p: Point, smallest: bool) {
    let better = |m: Point| match p.value == m.value {
        true => p.step < m.step,
        false => (p.value < m.value) == smallest,
    };
    if !p.value.is_nan() && slot.is_none_or(better) {
        *slot = Some(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift64* PRNG: deterministic test data without external crates.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn unit(&mut self) -> f64 {
            (self.next() >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    fn pt(step: i64, value: f64, ts: i64) -> Point {
        let timestamp_us = ts;
        Point {
            step,
            value,
            timestamp_us,
        }
    }

    /// Points from (step, value, timestamp) triples.
    fn pts(it: impl IntoIterator<Item = (i64, f64, i64)>) -> Vec<Point> {
        it.into_iter().map(|(s, v, t)| pt(s, v, t)).collect()
    }

    /// Bitwise view, so NaN equals itself and -0.0 differs from 0.0.
    fn bits(points: &[Point]) -> Vec<(i64, u64, i64)> {
        let key = |p: &Point| (p.step, p.value.to_bits(), p.timestamp_us);
        points.iter().map(key).collect()
    }

    fn roundtrip(points: &[Point]) -> Vec<u8> {
        let blob = encode_chunk(points);
        assert_eq!(bits(&decode_chunk(&blob).unwrap()), bits(points));
        blob
    }

    /// Training curve: step += 1, 10 ms +- 100 us spacing, decaying noisy loss.
    fn curve(rng: &mut Rng, n: i64, f32_values: bool) -> Vec<Point> {
        pts((0..n).map(|i| {
            let loss = 2.0 * (-(i as f64) / 3000.0).exp() + 0.1 + 0.05 * rng.unit();
            let value = if f32_values {
                f64::from(loss as f32)
            } else {
                loss
            };
            (
                1000 + i,
                value,
                1 << 50 | (i * 10_000 + rng.below(200) as i64),
            )
        }))
    }

    #[test]
    fn roundtrip_shapes_and_extremes() {
        let empty = roundtrip(&[]);
        assert_eq!((&empty[..2], empty.len()), (&[VERSION, 0][..], 2 + CRC_LEN));
        roundtrip(&[pt(7, 1.5, 42)]);
        roundtrip(&pts([(-10, 0.0, -5), (-3, 1.0, -5), (-2, 2.0, 100)]));
        roundtrip(&pts((0..300).map(|i| (i * i * 1_000_003, i as f64, i))));
        let (min, max) = (i64::MIN, i64::MAX);
        let ext = [
            (min, 1.0, max),
            (min + 1, 2.0, min),
            (0, 3.0, 0),
            (max, 5.0, min),
        ];
        roundtrip(&pts(ext));
        roundtrip(&pts(ext[1..].iter().copied()));
        // Short chunks run the decoders' near-the-end paths with many packed widths.
        let mut rng = Rng(8);
        for n in 1..60 {
            let span = 1 << rng.below(49);
            roundtrip(&pts((0..n).map(|i| (i, 0.5, (rng.next() % span) as i64))));
        }
    }

    #[test]
    fn integer_column_modes() {
        let linear: fn(i64) -> i64 = |i| i;
        let cases = [
            (linear, 0),                         // constant increment: nothing stored
            (|i| 3 * i + i % 2, 2),              // jitter: bit-packed
            (|i| i + 40 * (i / 50), MODE_DOD),   // one gap: runs of zero dods
            (|i| i + ((i % 2) << 55), MODE_DOD), // too wide to pack
        ];
        for (step, mode) in cases {
            let blob = roundtrip(&pts((0..100).map(|i| (step(i), 1.0, 0))));
            assert_eq!(blob[3], mode); // after version, count and the first step
        }
    }

    #[test]
    fn roundtrip_special_floats() {
        let text = "NaN inf -inf -0 0 5e-324 1e-310 1.7976931348623157e308 -1e308";
        let mut specials: Vec<f64> = text.split(' ').map(|s| s.parse().unwrap()).collect();
        specials.extend([-f64::NAN, f64::from_bits(0x7ff0_0000_0000_0001)]);
        roundtrip(&pts(specials
            .iter()
            .enumerate()
            .map(|(i, &v)| (i as i64, v, 0))));
        let mut rng = Rng(3);
        let mut pick = || specials[rng.below(specials.len() as u64) as usize];
        roundtrip(&pts((0..500).map(|i| (i, pick(), i))));
        roundtrip(&pts((0..9).map(|i| (i, 0.0, i))));
    }

    #[test]
    fn roundtrip_random() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..300 {
            let (mut step, mut ts) = (rng.next() as i64 >> rng.below(64), rng.next() as i64);
            let mut point = |r: &mut Rng| {
                step = step.wrapping_add(match round % 3 {
                    0 => 1,
                    1 => 1 + (r.below(50) == 0) as i64 * r.below(1 << 40) as i64,
                    _ => (r.next() >> (r.below(63) + 1)) as i64 + 1,
                });
                ts = ts.wrapping_add(match round % 4 {
                    0 => 0,
                    1 => 10_000 + r.below(300) as i64,
                    2 => r.next() as i64,
                    _ => (r.below(20) == 0) as i64 * 1_000_000,
                });
                let value = match round % 5 {
                    0 => f64::from_bits(r.next()),
                    1 => f64::from(f32::from_bits(r.next() as u32)),
                    2 => r.unit() * 10.0,
                    3 => (r.below(10) as f64).sqrt(),
                    _ => f64::from((r.unit() * 100.0) as f32),
                };
                (step, value, ts)
            };
            let n = rng.below(300) + 1;
            roundtrip(&pts((0..n).map(|_| point(&mut rng))));
        }
    }

    #[test]
    fn typical_curves_are_compact() {
        let mut rng = Rng(11);
        let f32s = roundtrip(&curve(&mut rng, 1000, true)).len();
        let f64s = roundtrip(&curve(&mut rng, 1000, false)).len();
        let curve = curve(&mut rng, 1000, true);
        let same_ts = pts(curve.iter().map(|p| (p.step, p.value, 5)));
        let same = roundtrip(&same_ts).len();
        // Measured: 3,704, 7,345 and 2,575 bytes (timestamps jittered by up to 200 µs cost
        // about a byte a point; values 2.6 bytes, or 7.3 for f64).
        assert!(
            f32s < 3800 && f64s < 7500 && same < 2700,
            "{f32s} {f64s} {same}"
        );
        // A constant costs a width byte per block of 32 values.
        let flat = roundtrip(&pts((0..1024).map(|i| (i, 0.1, i * 1000))));
        assert!(flat.len() < 60, "{}", flat.len());
        // f32 values crossing zero stay f32-sized: the order-keeping map has no jump at zero.
        let across = pts((0..64).map(|i| (i, f64::from((i as f32 - 32.0) * 1e-3), 0)));
        assert!(roundtrip(&across).len() < 64 * 5);
    }

    #[test]
    fn value_domain_follows_the_values() {
        let domain = |points: &[Point]| {
            let blob = roundtrip(points);
            let mut r = Reader {
                data: &blob,
                pos: 1,
            };
            let n = r.varint().unwrap() as usize;
            let mut sink = Vec::new();
            decode_ints(&mut r, n, &mut sink).unwrap();
            decode_ints(&mut r, n, &mut sink).unwrap();
            r.byte().unwrap()
        };
        let f32s = curve(&mut Rng(2), 100, true);
        assert_eq!(domain(&f32s) & F32_DOMAIN, F32_DOMAIN);
        assert_eq!(domain(&curve(&mut Rng(2), 100, false)) & F32_DOMAIN, 0);
        let mut with_nan = f32s.clone();
        with_nan[50].value = f64::NAN;
        assert_eq!(domain(&with_nan) & F32_DOMAIN, 0, "NaN keeps the f64 bits");
        // f32 subnormals, -0.0 and infinities are f32-exact.
        let odd = [
            f32::from_bits(1),
            -f32::from_bits(3),
            -0.0,
            f32::INFINITY,
            f32::MIN,
        ];
        let odd = pts(odd
            .iter()
            .enumerate()
            .map(|(i, v)| (i as i64, f64::from(*v), 0)));
        assert_eq!(domain(&odd) & F32_DOMAIN, F32_DOMAIN);
        // Integers as floats share their trailing zeros.
        let counts = pts((0..100).map(|i| (i, (i * 4) as f64, 0)));
        assert!(domain(&counts) & 0x3f >= 15);
    }

    #[test]
    fn every_bit_flip_fails_the_checksum() {
        let blob = encode_chunk(&curve(&mut Rng(4), 40, true));
        for i in 0..blob.len() * 8 {
            let mut b = blob.clone();
            b[i / 8] ^= 1 << (i % 8);
            let err = decode_chunk(&b).unwrap_err();
            if i >= 8 {
                assert!(err.0.contains("checksum"), "bit {i}: {err}");
            }
        }
    }

    /// Points of the version 1 fixture, `testdata/chunk_v1.bin`, written by the version 1
    /// encoder: an f32 curve with special values every 50 points and jittered timestamps.
    fn v1_fixture_points() -> Vec<Point> {
        let specials = [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.0,
            5e-324,
            1e308,
        ];
        pts((0..300i64).map(|i| {
            let value = match i % 50 == 7 {
                true => specials[(i / 50) as usize % 6],
                false => f64::from((1.0 / (1.0 + i as f64 / 30.0)) as f32),
            };
            let ts = 1_764_250_000_000_000 + i * 10_000 + (i * 7919) % 13;
            (10 + 3 * i, value, ts)
        }))
    }

    #[test]
    fn version_1_chunks_still_decode() {
        let blob = include_bytes!("testdata/chunk_v1.bin");
        assert_eq!(chunk_version(blob), Some(VERSION_1));
        assert!(!is_current(blob));
        let want = v1_fixture_points();
        assert_eq!(bits(&decode_chunk(blob).unwrap()), bits(&want));
        // Re-encoded in the current format. (Six specials in 300 values each widen a block of
        // 32: 2,340 bytes against version 1's 2,198, the one shape where blocks lose.)
        let v2 = roundtrip(&want);
        assert!(
            is_current(&v2) && v2.len() < blob.len() * 11 / 10,
            "{}",
            v2.len()
        );
        for len in 0..blob.len() {
            assert!(decode_chunk(&blob[..len]).is_err(), "prefix {len} decoded");
        }
    }

    #[test]
    fn decode_into_appends_and_restores_on_error() {
        let points = curve(&mut Rng(5), 100, true);
        let blob = encode_chunk(&points);
        let (mut s, mut v, mut t) = (vec![-1], vec![0.5], vec![-2]);
        assert_eq!(decode_chunk_into(&blob, &mut s, &mut v, &mut t), Ok(100));
        let last = points[99];
        assert_eq!(
            (s[1], v[100], t[100]),
            (1000, last.value, last.timestamp_us)
        );
        let truncated = &blob[..blob.len() - 1];
        assert!(decode_chunk_into(truncated, &mut s, &mut v, &mut t).is_err());
        assert_eq!((s.len(), v.len(), t.len()), (101, 101, 101));
    }

    #[test]
    fn corrupt_input_is_rejected_without_panic() {
        let mut rng = Rng(77);
        let blobs = [
            encode_chunk(&curve(&mut rng, 101, true)),
            encode_chunk(&curve(&mut rng, 50, false)),
            encode_chunk(&pts((0..60).map(|i| (i * i, i as f64, i % 7 * 1000)))),
            encode_chunk(&[pt(1, 2.0, 3)]),
            encode_chunk(&[]),
        ];
        for blob in &blobs {
            for len in 0..blob.len() {
                assert!(decode_chunk(&blob[..len]).is_err(), "prefix {len} decoded");
            }
            assert!(decode_chunk(&[blob.as_slice(), &[0]].concat()).is_err());
            for _ in 0..3000 {
                let mut b = blob.clone();
                for _ in 0..=rng.below(3) {
                    let i = rng.below(b.len() as u64) as usize;
                    b[i] ^= 1 << rng.below(8);
                }
                let _ = decode_chunk(&b);
                let i = rng.below(b.len() as u64) as usize;
                b[i] = rng.next() as u8;
                let _ = decode_chunk(&b);
            }
        }
        assert!(decode_chunk(&[2, 0]).is_err());
        assert!(decode_chunk(&[3, 0, 0, 0, 0, 0]).is_err());
        let v1 = include_bytes!("testdata/chunk_v1.bin");
        for _ in 0..3000 {
            let mut b = v1.to_vec();
            let i = rng.below(b.len() as u64) as usize;
            b[i] ^= 1 << rng.below(8);
            let _ = decode_chunk(&b);
        }
        assert!(
            decode_chunk(&[1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1]).is_err()
        );
        for _ in 0..20_000 {
            let junk: Vec<u8> = (0..rng.below(40)).map(|_| rng.next() as u8).collect();
            let _ = decode_chunk(&junk);
            // Junk behind a valid checksum reaches the version 2 parser itself.
            let mut framed = [&[VERSION][..], &junk].concat();
            framed.extend_from_slice(&crc32c::crc32c(&framed).to_le_bytes());
            let _ = decode_chunk(&framed);
        }
    }

    #[test]
    fn stats_ignore_nan_and_keep_first_tie() {
        let nan = f64::NAN;
        let p = pts([
            (1, nan, 0),
            (2, 3.0, 0),
            (3, -1.0, 0),
            (4, 3.0, 0),
            (5, -1.0, 0),
            (6, nan, 0),
        ]);
        let s = chunk_stats(&p);
        assert_eq!((s.count, s.start_step, s.end_step), (6, 1, 6));
        assert_eq!((s.min, s.max), (Some(p[2]), Some(p[1])));
        let s = chunk_stats(&pts([(1, nan, 0), (2, nan, 0)]));
        assert_eq!((s.count, s.min, s.max), (2, None, None));
        let s = chunk_stats(&pts([(1, f64::NEG_INFINITY, 0), (2, f64::INFINITY, 0)]));
        assert_eq!((s.min.unwrap().step, s.max.unwrap().step), (1, 2));
    }
}
