//! Gapless trimming: removing the encoder delay (priming) and end padding
//! that lossy codecs add, so that decoded audio starts and ends where the
//! reference decoders' output does.
//!
//! What symphonia 0.6 already does, measured against libvorbis (libsndfile
//! float), mpg123 and ffmpeg on the parity fixtures: Vorbis (first-packet
//! discard, end granule) and MP3 (LAME/Xing delay and padding) are trimmed by
//! its demuxers through the packets' `trim_start`/`trim_end` — sample-exact.
//! What it does not do, and this module adds:
//!
//! - Ogg Opus: the demuxer trims the end (granule position) but not the
//!   pre-skip at the start (it records it as the track's delay only).
//! - Matroska/WebM Opus: neither the pre-skip (`OpusHead`, = `CodecDelay`)
//!   nor the end (`DiscardPadding` of the last block, which symphonia parses
//!   and drops); [`matroska_discard_padding`] scans the blocks for it.
//! - MP4/M4A (AAC, ALAC): edit lists are not applied; [`mp4_gapless`] reads
//!   the first sound track's `elst` (priming = media time, length = segment
//!   duration), falling back to iTunes' `iTunSMPB` tag.
//!
//! The rule that ties both together: the wanted delay is the codec's or the
//! container's; whatever the decoder already trimmed through `trim_start` is
//! subtracted, so a later symphonia that trims more never makes melfuse trim
//! twice.

use std::collections::VecDeque;
use std::io::{Read, Seek, SeekFrom};

/// How many frames of the decoded stream to keep.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrimPlan {
    /// Frames of encoder delay that the output must not contain.
    pub delay: u64,
    /// Frames of output after the delay, when the container says.
    pub length: Option<u64>,
    /// Frames of end padding to drop when the length is not known up front
    /// (held back from the output until the stream ends).
    pub end_padding: u64,
}

/// Applies a [`TrimPlan`] to a stream of mono samples, chunk by chunk.
#[derive(Debug)]
pub struct Trimmer {
    skip: u64,
    remaining: Option<u64>,
    hold_back: usize,
    held: VecDeque<f32>,
    emitted: u64,
}

impl Trimmer {
    /// A trimmer for `plan`.
    pub fn new(plan: TrimPlan) -> Self {
        Self {
            skip: plan.delay,
            remaining: plan.length,
            hold_back: usize::try_from(plan.end_padding).unwrap_or(usize::MAX),
            held: VecDeque::new(),
            emitted: 0,
        }
    }

    /// Records that the decoder itself dropped `frames` from the start of a
    /// packet (symphonia's `trim_start`): they count towards the delay.
    pub fn decoder_trimmed(&mut self, frames: u64) {
        if self.emitted == 0 && self.held.is_empty() {
            self.skip = self.skip.saturating_sub(frames);
        }
    }

    /// Feeds decoded samples; appends what survives trimming to `out`.
    pub fn push(&mut self, mut samples: &[f32], out: &mut Vec<f32>) {
        let skipped = (self.skip.min(samples.len() as u64)) as usize;
        self.skip -= skipped as u64;
        samples = &samples[skipped..];
        if let Some(remaining) = self.remaining.as_mut() {
            let keep = (*remaining).min(samples.len() as u64) as usize;
            *remaining -= keep as u64;
            samples = &samples[..keep];
        }
        if self.hold_back == 0 {
            out.extend_from_slice(samples);
            self.emitted += samples.len() as u64;
            return;
        }
        self.held.extend(samples.iter().copied());
        let release = self.held.len().saturating_sub(self.hold_back);
        out.extend(self.held.drain(..release));
        self.emitted += release as u64;
    }
}

/// Bounds every container scan: no more boxes or elements than this are read.
const MAX_ELEMENTS: usize = 50_000_000;

/// Gapless information of an MP4/M4A file's first sound track.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mp4Gapless {
    /// Priming frames at the start (in the media's time scale).
    pub priming: u64,
    /// Playable frames, when stated (in the media's time scale).
    pub length: Option<u64>,
    /// The media (sound track) time scale, in ticks per second.
    pub media_timescale: u32,
}

/// Reads a big-endian unsigned integer of `N` bytes.
fn be<const N: usize>(bytes: &[u8]) -> Option<u64> {
    let slice = bytes.get(..N)?;
    Some(slice.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
}

/// One MP4 box: its type and the byte range of its payload.
struct Mp4Box {
    kind: [u8; 4],
    start: u64,
    end: u64,
}

/// Lists the boxes between `start` and `end`.
fn mp4_children<R: Read + Seek>(reader: &mut R, start: u64, end: u64, budget: &mut usize) -> Option<Vec<Mp4Box>> {
    let mut boxes = Vec::new();
    let mut position = start;
    while position + 8 <= end {
        *budget = budget.checked_sub(1)?;
        reader.seek(SeekFrom::Start(position)).ok()?;
        let mut header = [0u8; 16];
        reader.read_exact(&mut header[..8]).ok()?;
        let size = be::<4>(&header)?;
        let kind = [header[4], header[5], header[6], header[7]];
        let (payload, total) = match size {
            0 => (position + 8, end - position),
            1 => {
                reader.read_exact(&mut header[8..]).ok()?;
                (position + 16, be::<8>(&header[8..])?)
            }
            n => (position + 8, n),
        };
        let box_end = position.checked_add(total)?;
        if total < 8 || box_end > end {
            break;
        }
        boxes.push(Mp4Box { kind, start: payload, end: box_end });
        position = box_end;
    }
    Some(boxes)
}

/// Reads a small box's payload (at most 1 MiB).
fn mp4_payload<R: Read + Seek>(reader: &mut R, mp4_box: &Mp4Box) -> Option<Vec<u8>> {
    let length = mp4_box.end.checked_sub(mp4_box.start)?;
    if length > 1 << 20 {
        return None;
    }
    reader.seek(SeekFrom::Start(mp4_box.start)).ok()?;
    let mut bytes = vec![0u8; length as usize];
    reader.read_exact(&mut bytes).ok()?;
    Some(bytes)
}

/// The time scale of an `mvhd` or `mdhd` payload.
fn header_timescale(payload: &[u8]) -> Option<u32> {
    let offset = if payload.first()? == &1 { 20 } else { 12 };
    u32::try_from(be::<4>(payload.get(offset..)?)?).ok()
}

/// The first edit of an `elst` payload with a media time (≥ 0): its
/// segment duration (movie time scale) and media time (media time scale).
fn first_edit(payload: &[u8]) -> Option<(u64, u64)> {
    let version = *payload.first()?;
    let count = be::<4>(payload.get(4..)?)?;
    let entry_size = if version == 1 { 20 } else { 12 };
    for index in 0..count.min(1024) as usize {
        let entry = payload.get(8 + index * entry_size..8 + (index + 1) * entry_size)?;
        let (duration, media_time) = if version == 1 {
            (be::<8>(entry)?, be::<8>(&entry[8..])? as i64)
        } else {
            (be::<4>(entry)?, i64::from(be::<4>(&entry[4..])? as u32 as i32))
        };
        if media_time >= 0 {
            return Some((duration, media_time as u64));
        }
    }
    None
}

/// Parses iTunes' `iTunSMPB` value: `" 00000000 PRIMING PADDING LENGTH ..."` (hex).
pub fn parse_itunsmpb(text: &str) -> Option<(u64, u64, u64)> {
    let fields: Vec<u64> = text.split_whitespace().map(|f| u64::from_str_radix(f, 16).ok()).collect::<Option<_>>()?;
    Some((*fields.get(1)?, *fields.get(2)?, *fields.get(3)?))
}

/// Finds the `iTunSMPB` value among the `ilst` freeform (`----`) items.
fn itunsmpb<R: Read + Seek>(reader: &mut R, udta: &Mp4Box, budget: &mut usize) -> Option<String> {
    let meta = mp4_children(reader, udta.start, udta.end, budget)?.into_iter().find(|b| &b.kind == b"meta")?;
    // `meta` is a full box: 4 bytes of version and flags before its children.
    let ilst = mp4_children(reader, meta.start + 4, meta.end, budget)?.into_iter().find(|b| &b.kind == b"ilst")?;
    for item in mp4_children(reader, ilst.start, ilst.end, budget)?.into_iter().filter(|b| &b.kind == b"----") {
        let parts = mp4_children(reader, item.start, item.end, budget)?;
        let name = parts.iter().find(|b| &b.kind == b"name").and_then(|b| mp4_payload(reader, b));
        if name.as_deref().and_then(|n| n.get(4..)) != Some(b"iTunSMPB".as_slice()) {
            continue;
        }
        let data = parts.iter().find(|b| &b.kind == b"data").and_then(|b| mp4_payload(reader, b))?;
        return Some(String::from_utf8_lossy(data.get(8..)?).into_owned());
    }
    None
}

/// Reads the gapless information of an MP4 file: the first sound track's
/// edit list, else the `iTunSMPB` tag. `None` when the file states neither.
pub fn mp4_gapless<R: Read + Seek>(reader: &mut R) -> Option<Mp4Gapless> {
    let budget = &mut MAX_ELEMENTS.min(100_000);
    let file_end = reader.seek(SeekFrom::End(0)).ok()?;
    let moov = mp4_children(reader, 0, file_end, budget)?.into_iter().find(|b| &b.kind == b"moov")?;
    let children = mp4_children(reader, moov.start, moov.end, budget)?;
    let movie_timescale = children
        .iter()
        .find(|b| &b.kind == b"mvhd")
        .and_then(|b| mp4_payload(reader, b))
        .and_then(|p| header_timescale(&p))?;
    for trak in children.iter().filter(|b| &b.kind == b"trak") {
        let parts = mp4_children(reader, trak.start, trak.end, budget)?;
        let Some(mdia) = parts.iter().find(|b| &b.kind == b"mdia") else { continue };
        let media = mp4_children(reader, mdia.start, mdia.end, budget)?;
        let handler = media.iter().find(|b| &b.kind == b"hdlr").and_then(|b| mp4_payload(reader, b));
        if handler.as_deref().and_then(|h| h.get(8..12)) != Some(b"soun".as_slice()) {
            continue;
        }
        let media_timescale = media
            .iter()
            .find(|b| &b.kind == b"mdhd")
            .and_then(|b| mp4_payload(reader, b))
            .and_then(|p| header_timescale(&p))?;
        let edit = parts
            .iter()
            .find(|b| &b.kind == b"edts")
            .and_then(|edts| mp4_children(reader, edts.start, edts.end, budget))
            .and_then(|edits| edits.into_iter().find(|b| &b.kind == b"elst"))
            .and_then(|elst| mp4_payload(reader, &elst))
            .and_then(|p| first_edit(&p));
        if let Some((duration, media_time)) = edit {
            // A zero duration (fragmented files) states no length.
            let length = (duration > 0).then(|| {
                (u128::from(duration) * u128::from(media_timescale) / u128::from(movie_timescale.max(1))) as u64
            });
            return Some(Mp4Gapless { priming: media_time, length, media_timescale });
        }
        let smpb = children.iter().find(|b| &b.kind == b"udta").and_then(|udta| itunsmpb(reader, udta, budget));
        return smpb.and_then(|text| parse_itunsmpb(&text)).map(|(priming, _, length)| Mp4Gapless {
            priming,
            length: Some(length),
            media_timescale,
        });
    }
    None
}

/// Reads an EBML variable-length integer; returns (value without the
/// marker bit, length in bytes, whether all value bits are ones).
fn read_vint<R: Read>(reader: &mut R, keep_marker: bool) -> Option<(u64, u64, bool)> {
    let mut first = [0u8; 1];
    reader.read_exact(&mut first).ok()?;
    let length = first[0].leading_zeros() as usize + 1;
    if length > 8 {
        return None;
    }
    let mut rest = [0u8; 8];
    reader.read_exact(&mut rest[..length - 1]).ok()?;
    let marker = 1u64 << (7 * length);
    let mut value = u64::from(first[0]);
    for &byte in &rest[..length - 1] {
        value = (value << 8) | u64::from(byte);
    }
    let bare = value & (marker - 1);
    let all_ones = bare == marker - 1;
    Some((if keep_marker { value } else { bare }, length as u64, all_ones))
}

/// EBML IDs walked into (their children are read) rather than skipped.
const MKV_SEGMENT: u64 = 0x1853_8067;
const MKV_CLUSTER: u64 = 0x1F43_B675;
const MKV_BLOCK_GROUP: u64 = 0xA0;
const MKV_BLOCK: u64 = 0xA1;
const MKV_DISCARD_PADDING: u64 = 0x75A2;

/// Sums the `DiscardPadding` (nanoseconds) of the blocks of `track`: the
/// end padding a Matroska/WebM Opus stream asks the player to drop. Reads
/// element headers only, skipping block payloads; returns 0 when the file
/// cannot be walked (unknown-size elements other than segments and clusters).
pub fn matroska_discard_padding<R: Read + Seek>(reader: &mut R, track: u64) -> u64 {
    let mut total_ns = 0u64;
    let mut current_track = None;
    for _ in 0..MAX_ELEMENTS {
        let Some((id, _, _)) = read_vint(reader, true) else { break };
        let Some((size, _, unknown)) = read_vint(reader, false) else { break };
        match id {
            MKV_SEGMENT | MKV_CLUSTER | MKV_BLOCK_GROUP => continue,
            MKV_BLOCK if !unknown => {
                let Some((number, used, _)) = read_vint(reader, false) else { break };
                current_track = Some(number);
                if reader.seek(SeekFrom::Current(size.saturating_sub(used) as i64)).is_err() {
                    break;
                }
            }
            MKV_DISCARD_PADDING if !unknown && (1..=8).contains(&size) => {
                // A signed big-endian integer of `size` bytes, sign-extended.
                let mut bytes = [0u8; 8];
                let first = 8 - size as usize;
                if reader.read_exact(&mut bytes[first..]).is_err() {
                    break;
                }
                if bytes[first] & 0x80 != 0 {
                    bytes[..first].fill(0xFF);
                }
                let value = i64::from_be_bytes(bytes);
                if current_track == Some(track) && value > 0 {
                    total_ns = total_ns.saturating_add(value as u64);
                }
            }
            _ if unknown => break,
            _ => {
                if reader.seek(SeekFrom::Current(i64::try_from(size).unwrap_or(i64::MAX))).is_err() {
                    break;
                }
            }
        }
    }
    total_ns
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn trimmer_skips_limits_and_holds_back() {
        let input: Vec<f32> = (0..10).map(|i| i as f32).collect();
        let mut out = Vec::new();
        let mut t = Trimmer::new(TrimPlan { delay: 3, length: Some(5), end_padding: 0 });
        t.push(&input[..2], &mut out);
        t.push(&input[2..], &mut out);
        assert_eq!(out, vec![3.0, 4.0, 5.0, 6.0, 7.0]);

        let mut out = Vec::new();
        let mut t = Trimmer::new(TrimPlan { delay: 4, length: None, end_padding: 2 });
        t.decoder_trimmed(1);
        for chunk in input.chunks(3) {
            t.push(chunk, &mut out);
        }
        assert_eq!(out, vec![3.0, 4.0, 5.0, 6.0, 7.0]);
    }

    #[test]
    fn itunsmpb_fields() {
        let tag = " 00000000 00000840 000001CA 00000000003F31F6 00000000 00000000";
        assert_eq!(parse_itunsmpb(tag), Some((0x840, 0x1CA, 0x3F31F6)));
        assert_eq!(parse_itunsmpb("garbage"), None);
    }

    fn mp4_box(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut out = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(payload);
        out
    }

    fn timescale_header(timescale: u32) -> Vec<u8> {
        let mut p = vec![0u8; 12];
        p.extend_from_slice(&timescale.to_be_bytes());
        p.extend_from_slice(&[0; 8]);
        p
    }

    fn sound_trak(edts: Option<Vec<u8>>) -> Vec<u8> {
        let mut hdlr = vec![0u8; 8];
        hdlr.extend_from_slice(b"soun");
        hdlr.extend_from_slice(&[0; 12]);
        let mdia = [mp4_box(b"mdhd", &timescale_header(44_100)), mp4_box(b"hdlr", &hdlr)].concat();
        let mut trak = edts.unwrap_or_default();
        trak.extend(mp4_box(b"mdia", &mdia));
        mp4_box(b"trak", &trak)
    }

    #[test]
    fn reads_the_edit_list_of_the_sound_track() {
        let mut elst = vec![0u8, 0, 0, 0, 0, 0, 0, 1];
        elst.extend_from_slice(&3000u32.to_be_bytes()); // 3 s in the movie's 1000 Hz scale
        elst.extend_from_slice(&1024u32.to_be_bytes());
        elst.extend_from_slice(&[0, 1, 0, 0]);
        let edts = mp4_box(b"edts", &mp4_box(b"elst", &elst));
        let moov = [mp4_box(b"mvhd", &timescale_header(1000)), sound_trak(Some(edts))].concat();
        let file = [mp4_box(b"ftyp", b"M4A \0\0\0\0"), mp4_box(b"moov", &moov), mp4_box(b"mdat", &[0; 64])].concat();
        let gapless = mp4_gapless(&mut Cursor::new(file)).unwrap();
        assert_eq!(gapless, Mp4Gapless { priming: 1024, length: Some(132_300), media_timescale: 44_100 });
    }

    #[test]
    fn falls_back_to_itunsmpb() {
        let value = b" 00000000 00000840 000001CA 0000000000020406";
        let mut data = vec![0u8; 8];
        data.extend_from_slice(value);
        let mut name = vec![0u8; 4];
        name.extend_from_slice(b"iTunSMPB");
        let item =
            [mp4_box(b"mean", b"\0\0\0\0com.apple.iTunes"), mp4_box(b"name", &name), mp4_box(b"data", &data)].concat();
        let ilst = mp4_box(b"ilst", &mp4_box(b"----", &item));
        let meta = mp4_box(b"meta", &[&[0u8; 4][..], &ilst].concat());
        let moov = [mp4_box(b"mvhd", &timescale_header(1000)), sound_trak(None), mp4_box(b"udta", &meta)].concat();
        let file = [mp4_box(b"ftyp", b"M4A \0\0\0\0"), mp4_box(b"moov", &moov)].concat();
        let gapless = mp4_gapless(&mut Cursor::new(file)).unwrap();
        assert_eq!(gapless, Mp4Gapless { priming: 0x840, length: Some(0x20406), media_timescale: 44_100 });
        assert_eq!(mp4_gapless(&mut Cursor::new(b"not an mp4 file at all".to_vec())), None);
    }

    #[test]
    fn sums_the_discard_padding_of_one_track() {
        // Segment(unknown size) > Cluster(unknown size) > BlockGroup > Block(track 1) + DiscardPadding.
        let block = [0xA1, 0x84, 0x81, 0x00, 0x00, 0x80];
        let padding = [0x75, 0xA2, 0x83, 0x01, 0x2E, 0x1D]; // 0x012E1D ns in 3 bytes
        let group: Vec<u8> = [&[0xA0, 0x80 | (block.len() + padding.len()) as u8][..], &block, &padding].concat();
        let file: Vec<u8> = [
            &[0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF][..],
            &[0x1F, 0x43, 0xB6, 0x75, 0xFF],
            &group,
        ]
        .concat();
        assert_eq!(matroska_discard_padding(&mut Cursor::new(file.clone()), 1), 0x012E1D);
        assert_eq!(matroska_discard_padding(&mut Cursor::new(file), 2), 0);
    }
}
