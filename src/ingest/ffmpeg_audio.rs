//! The audio track of an FFmpeg source (a file, an HTTP or RTSP stream read by FFmpeg): the
//! first stream in a codec listeners take as it is (AAC with its AudioSpecificConfig, G.711,
//! Opus), its packets passed on with timestamps in the track's own sample clock. Never decoded.

use ffmpeg_next as ffmpeg;

use crate::hub::AudioInfo;

/// The audio stream kept, what it is, and its time base.
pub(super) struct FileAudio {
    pub index: usize,
    pub info: AudioInfo,
    time_base: (i64, i64),
}

impl FileAudio {
    /// The first audio stream of `input` that listeners can take as it is; `None` without
    /// one (no audio, or only codecs that would need a transcode: MP3, PCM, AC-3...).
    pub fn find(input: &ffmpeg::format::context::Input) -> Option<Self> {
        input.streams().find_map(|s| {
            let params = s.parameters();
            if params.medium() != ffmpeg::media::Type::Audio {
                return None;
            }
            let description = extradata(&params);
            let codec = match params.id() {
                // AAC without its configuration is ADTS (MPEG-TS): not raw frames.
                ffmpeg::codec::Id::AAC if !description.is_empty() => "aac",
                ffmpeg::codec::Id::PCM_MULAW => "pcmu",
                ffmpeg::codec::Id::PCM_ALAW => "pcma",
                ffmpeg::codec::Id::OPUS => "opus",
                _ => return None,
            };
            // SAFETY: `params` wraps the stream's valid AVCodecParameters.
            let (rate, channels) = unsafe {
                let p = params.as_ptr();
                ((*p).sample_rate, (*p).channels)
            };
            let tb = s.time_base();
            (rate > 0 && channels > 0 && tb.denominator() > 0).then(|| Self {
                index: s.index(),
                info: AudioInfo {
                    codec: codec.into(),
                    sample_rate: rate as u32,
                    channels: channels as u16,
                    description: if codec == "aac" {
                        description
                    } else {
                        Vec::new()
                    },
                },
                time_base: (i64::from(tb.numerator()), i64::from(tb.denominator())),
            })
        })
    }

    /// A packet's timestamp (in the stream's time base) in the track's sample clock.
    pub fn ticks(&self, pts: Option<i64>) -> Option<i64> {
        let (num, den) = self.time_base;
        let rate = i64::from(self.info.sample_rate);
        pts.map(|p| {
            (i128::from(p) * i128::from(num) * i128::from(rate) / i128::from(den.max(1))) as i64
        })
    }
}

/// A stream's codec extradata (avcC, hvcC, AudioSpecificConfig), empty when it has none.
pub(super) fn extradata(params: &ffmpeg::codec::Parameters) -> Vec<u8> {
    // SAFETY: `params` wraps a valid AVCodecParameters; extradata is `extradata_size` bytes
    // when not null.
    unsafe {
        let p = params.as_ptr();
        if (*p).extradata.is_null() || (*p).extradata_size <= 0 {
            Vec::new()
        } else {
            std::slice::from_raw_parts((*p).extradata, (*p).extradata_size as usize).to_vec()
        }
    }
}
