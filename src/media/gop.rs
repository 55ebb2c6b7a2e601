//! The current GOP of one camera's compressed video: the last keyframe and every access unit
//! after it, so that a new viewer can decode up to the newest picture at once, plus the
//! stream's parameter sets and the decoder parameters built from them. Bounded in bytes.
//! Pure: no clock, no I/O, no async; the caller owns locking and forwarding.

use std::sync::Arc;

use bytes::Bytes;

use super::h26x::{
    extradata_parameter_sets, inspect, Codec, ParameterSets, VideoError, VideoParams,
};
use super::nal::NalFormat;

/// Default bound of one camera's GOP: 8 MiB holds about 20 s of a 3 Mbit/s stream.
pub const DEFAULT_MAX_BYTES: usize = 8 * 1024 * 1024;

/// Bytes counted per access unit on top of its data (the entry and the `Bytes` handle), so
/// that a stream of tiny units cannot grow the list without bound.
pub const UNIT_OVERHEAD: usize = 64;

/// One access unit as kept and forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoUnit {
    pub data: Bytes,
    /// Decoding can start here (H.264 IDR, H.265 IRAP), read from the bitstream.
    pub key: bool,
    /// The caller's sequence number and timestamp, stored and returned untouched.
    pub seq: u64,
    pub pts: i64,
}

/// What [`GopCache::push`] did with an access unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pushed {
    /// The unit is a keyframe.
    pub key: bool,
    /// The unit is now part of the cached GOP (false while waiting for a keyframe: after
    /// start, after a GOP outgrew the bound, or after a parameter change on a non-keyframe).
    pub kept: bool,
    /// The decoder parameters differ from before (or exist for the first time): a new
    /// `video_config` is due before this unit.
    pub params_changed: bool,
}

/// What a new viewer needs: the parameters and the GOP up to the newest unit, keyframe first
/// (empty when no complete GOP is held).
#[derive(Debug, Clone, Default)]
pub struct GopSnapshot {
    pub params: Option<Arc<VideoParams>>,
    pub units: Vec<VideoUnit>,
}

/// The GOP cache of one camera.
#[derive(Debug)]
pub struct GopCache {
    codec: Codec,
    format: NalFormat,
    max_bytes: usize,
    /// Keyframe first; empty while waiting for one.
    units: Vec<VideoUnit>,
    /// Data plus [`UNIT_OVERHEAD`] per unit of `units`.
    bytes: usize,
    sets: ParameterSets,
    params: Option<Arc<VideoParams>>,
    gops_too_long: u64,
}

impl GopCache {
    /// An empty cache for a stream whose access units come in `format`, keeping at most
    /// `max_bytes` (see [`UNIT_OVERHEAD`]) of one GOP.
    pub fn new(codec: Codec, format: NalFormat, max_bytes: usize) -> Self {
        Self {
            codec,
            format,
            max_bytes,
            units: Vec::new(),
            bytes: 0,
            sets: ParameterSets::new(codec),
            params: None,
            gops_too_long: 0,
        }
    }

    pub fn codec(&self) -> Codec {
        self.codec
    }

    pub fn format(&self) -> NalFormat {
        self.format
    }

    /// Takes the parameter sets from the stream's extradata (avcC/hvcC or Annex B), for
    /// cameras that send them only out of band (RTSP `sprop-parameter-sets`). Returns whether
    /// the decoder parameters changed. Does not change the NAL format of the units.
    pub fn set_extradata(&mut self, extradata: &[u8]) -> Result<bool, VideoError> {
        let (_, sets) = extradata_parameter_sets(self.codec, extradata)?;
        self.take_sets(&sets)
    }

    /// Adds the next access unit of the stream. A keyframe starts a new GOP and drops the
    /// old one; other units join the current GOP. When the GOP would grow past the bound, it
    /// is dropped, counted in [`GopCache::gops_too_long`], and nothing is kept until the next
    /// keyframe. When the parameters change on a unit that is not a keyframe, the GOP is
    /// dropped too (its pictures refer to the old ones). On error (an unreadable unit or
    /// parameter set) the GOP is dropped, the parameters stay as they were, and the error is
    /// returned for the caller to count; the unit must not be forwarded.
    pub fn push(&mut self, data: Bytes, seq: u64, pts: i64) -> Result<Pushed, VideoError> {
        let info = match inspect(self.codec, self.format, &data) {
            Ok(info) => info,
            Err(e) => {
                self.drop_gop();
                return Err(e);
            }
        };
        let key = info.key;
        let params_changed = match self.take_sets(&info.parameter_sets) {
            Ok(changed) => changed,
            Err(e) => {
                self.drop_gop();
                return Err(e);
            }
        };
        if params_changed && !key {
            self.drop_gop();
        }
        let cost = data.len().saturating_add(UNIT_OVERHEAD);
        let unit = VideoUnit {
            data,
            key,
            seq,
            pts,
        };
        if key {
            self.drop_gop();
            if cost > self.max_bytes {
                self.gops_too_long += 1;
                return Ok(Pushed {
                    key,
                    kept: false,
                    params_changed,
                });
            }
        } else if self.units.is_empty() {
            return Ok(Pushed {
                key,
                kept: false,
                params_changed,
            });
        } else if self.bytes.saturating_add(cost) > self.max_bytes {
            self.drop_gop();
            self.gops_too_long += 1;
            return Ok(Pushed {
                key,
                kept: false,
                params_changed,
            });
        }
        self.units.push(unit);
        self.bytes += cost;
        Ok(Pushed {
            key,
            kept: true,
            params_changed,
        })
    }

    /// The parameters and the cached GOP, keyframe first. Cheap: reference-counted clones.
    pub fn snapshot(&self) -> GopSnapshot {
        GopSnapshot {
            params: self.params.clone(),
            units: self.units.clone(),
        }
    }

    /// The current decoder parameters, once an SPS and PPS (and a VPS for H.265) were seen.
    pub fn params(&self) -> Option<&Arc<VideoParams>> {
        self.params.as_ref()
    }

    /// GOPs dropped because they outgrew the bound, since creation.
    pub fn gops_too_long(&self) -> u64 {
        self.gops_too_long
    }

    /// Bytes held, counted as for the bound.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Access units held.
    pub fn len(&self) -> usize {
        self.units.len()
    }

    pub fn is_empty(&self) -> bool {
        self.units.is_empty()
    }

    /// Forgets the GOP and the parameters (a new session of the camera, which may come back
    /// with other ones); the counter stays.
    pub fn reset(&mut self) {
        self.drop_gop();
        self.sets = ParameterSets::new(self.codec);
        self.params = None;
    }

    fn drop_gop(&mut self) {
        self.units.clear();
        self.bytes = 0;
    }

    /// Updates the parameter sets; rebuilds the parameters when the sets changed and are
    /// complete. Returns whether the parameters changed.
    fn take_sets(&mut self, sets: &[&[u8]]) -> Result<bool, VideoError> {
        if sets.is_empty() {
            return Ok(false);
        }
        let mut next = self.sets.clone();
        if !next.update(sets.iter().copied())? || !next.is_complete() {
            self.sets = next;
            return Ok(false);
        }
        let params = next.params()?;
        self.sets = next;
        if self.params.as_deref() == Some(&params) {
            return Ok(false);
        }
        self.params = Some(Arc::new(params));
        Ok(true)
    }
}

#[cfg(test)]
#[path = "gop_tests.rs"]
mod tests;
