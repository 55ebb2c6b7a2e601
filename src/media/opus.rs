//! A camera's audio as Opus: AAC for WebRTC listeners of an AAC camera (browsers' WebRTC
//! takes Opus, PCMU and PCMA, never AAC), and G.711 for MP4 clips (which cannot hold it).
//! FFmpeg's decoder, swresample to 48 kHz 16-bit, and libopus in 20 ms packets, each stamped
//! on the camera's clock. Blocking and synchronous: run on a thread of its own (the hub's
//! transcode thread, a clip's), never on an async worker.

use ffmpeg_next as ffmpeg;

use ffmpeg::format::sample::Type as SampleType;
use ffmpeg::format::Sample;
use ffmpeg::ChannelLayout;

/// Opus's one clock rate (RFC 7587).
pub const OPUS_RATE: u32 = 48_000;
/// Samples per channel in one Opus packet: 20 ms, what browsers send and expect.
pub const FRAME_SAMPLES: usize = 960;
/// An input whose time strays this far from where its samples put it starts the output
/// anew (a gap in the camera's audio, a restarted clock): later audio is not played early.
const RESYNC_US: i64 = 100_000;
/// Bits per second per channel: speech and room sound from a camera microphone.
const BITRATE_PER_CHANNEL: usize = 32_000;

/// An `OpusHead` (RFC 7845 5.1) for Opus of `channels` channels (1 or 2, mapping family 0) at
/// 48 kHz: what an MP4's `dOps` box is made from.
pub fn opus_head(channels: u8, pre_skip: u16) -> Vec<u8> {
    let mut h = b"OpusHead".to_vec();
    h.push(1);
    h.push(channels.clamp(1, 2));
    h.extend_from_slice(&pre_skip.to_le_bytes());
    h.extend_from_slice(&OPUS_RATE.to_le_bytes());
    h.extend_from_slice(&0i16.to_le_bytes());
    h.push(0);
    h
}

/// Why a transcoder could not start (FFmpeg without AAC or libopus) or a frame failed.
#[derive(Debug, thiserror::Error)]
pub enum TranscodeError {
    #[error("FFmpeg has no {0}")]
    Missing(&'static str),
    #[error("FFmpeg: {0}")]
    Ffmpeg(#[from] ffmpeg::Error),
}

/// One Opus packet and the camera time of its first sample, in microseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpusPacket {
    pub data: Vec<u8>,
    pub pts_us: i64,
}

/// A camera's AAC in, Opus out. Keeps at most one packet's worth of samples between calls.
pub struct Transcoder {
    decoder: ffmpeg::decoder::Audio,
    resampler: Option<(ResampleKey, ffmpeg::software::resampling::Context)>,
    encoder: ffmpeg::encoder::Audio,
    layout: ChannelLayout,
    channels: usize,
    /// Interleaved 16-bit samples at 48 kHz not yet in a packet.
    pending: Vec<i16>,
    /// The camera time of the output's sample 0, and samples (per channel) into the
    /// encoder since: an output packet's time is counted from here, not guessed per packet.
    origin: Option<i64>,
    samples_in: i64,
    decoded: ffmpeg::frame::Audio,
}

type ResampleKey = (Sample, u64, u32);

// SAFETY: FFmpeg's codec and resampler contexts have no thread affinity; they must only not
// be used from two threads at once, which `&mut self` on every use and the lack of `Sync`
// rule out. ffmpeg-next leaves them `!Send` only because they hold raw pointers. The hub
// builds a transcoder on the thread that then runs it, but a `Send` type says so plainly.
unsafe impl Send for Transcoder {}

impl Transcoder {
    /// A transcoder for AAC described by `config` (its AudioSpecificConfig) with `channels`
    /// channels; Opus gets the same channel count, at most two.
    pub fn new(config: &[u8], channels: u16) -> Result<Self, TranscodeError> {
        let aac = ffmpeg::decoder::find(ffmpeg::codec::Id::AAC)
            .ok_or(TranscodeError::Missing("AAC decoder"))?;
        let mut ctx = ffmpeg::codec::context::Context::new_with_codec(aac);
        super::decode::set_extradata(&mut ctx, config)
            .map_err(|_| TranscodeError::Missing("memory"))?;
        Self::from_decoder(ctx, channels)
    }

    /// A transcoder for a camera's track of `codec` (`aac`, `pcmu`, `pcma`), for what takes
    /// Opus and not the camera's own codec (an MP4 clip of a G.711 camera).
    pub fn for_track(
        codec: &str,
        config: &[u8],
        sample_rate: u32,
        channels: u16,
    ) -> Result<Self, TranscodeError> {
        let id = match codec {
            "aac" => return Self::new(config, channels),
            "pcmu" => ffmpeg::codec::Id::PCM_MULAW,
            "pcma" => ffmpeg::codec::Id::PCM_ALAW,
            _ => return Err(TranscodeError::Missing("decoder for this codec")),
        };
        let pcm = ffmpeg::decoder::find(id).ok_or(TranscodeError::Missing("G.711 decoder"))?;
        let mut ctx = ffmpeg::codec::context::Context::new_with_codec(pcm);
        // SAFETY: the context is ours and not yet open; a PCM decoder takes its rate and
        // channel count from these fields (the stream carries neither).
        unsafe {
            let c = ctx.as_mut_ptr();
            (*c).sample_rate = sample_rate.max(1) as i32;
            (*c).channels = i32::from(channels.max(1));
        }
        Self::from_decoder(ctx, channels)
    }

    /// The Opus header of the output (`OpusHead`, with libopus's pre-skip), for a container.
    pub fn opus_head(&self) -> Vec<u8> {
        // SAFETY: the encoder is open and owns its extradata; it is only read here.
        unsafe {
            let c = self.encoder.as_ptr();
            let (data, n) = ((*c).extradata, (*c).extradata_size);
            if data.is_null() || n <= 0 {
                return opus_head(self.channels as u8, 0);
            }
            std::slice::from_raw_parts(data, n as usize).to_vec()
        }
    }

    fn from_decoder(
        ctx: ffmpeg::codec::context::Context,
        channels: u16,
    ) -> Result<Self, TranscodeError> {
        let decoder = ctx.decoder().audio()?;
        let channels = usize::from(channels.clamp(1, 2));
        let layout = ChannelLayout::default(channels as i32);
        let opus = ffmpeg::encoder::find_by_name("libopus")
            .ok_or(TranscodeError::Missing("libopus encoder"))?;
        let mut enc = ffmpeg::codec::context::Context::new_with_codec(opus)
            .encoder()
            .audio()?;
        enc.set_rate(OPUS_RATE as i32);
        enc.set_format(Sample::I16(SampleType::Packed));
        enc.set_channel_layout(layout);
        enc.set_channels(channels as i32);
        enc.set_bit_rate(BITRATE_PER_CHANNEL * channels);
        enc.set_time_base((1, OPUS_RATE as i32));
        let encoder = enc.open_as(opus)?;
        Ok(Self {
            decoder,
            resampler: None,
            encoder,
            layout,
            channels,
            pending: Vec::with_capacity(FRAME_SAMPLES * channels * 2),
            origin: None,
            samples_in: 0,
            decoded: ffmpeg::frame::Audio::empty(),
        })
    }

    /// Opus channels (1 or 2).
    pub fn channels(&self) -> u16 {
        self.channels as u16
    }

    /// One compressed frame (an AAC access unit, G.711 samples) at camera time `pts_us`; the Opus packets it completes go to
    /// `out`. A unit FFmpeg cannot decode is skipped (its time is filled by the next).
    pub fn push(
        &mut self,
        data: &[u8],
        pts_us: i64,
        out: &mut Vec<OpusPacket>,
    ) -> Result<(), TranscodeError> {
        self.decoder.send_packet(&ffmpeg::Packet::copy(data))?;
        let mut first = true;
        while self.decoder.receive_frame(&mut self.decoded).is_ok() {
            // One unit decodes to one frame; should a decoder hold one back, the next frames
            // follow on from the pending samples.
            let at = if first { Some(pts_us) } else { None };
            first = false;
            self.resample(at)?;
            self.encode(out)?;
        }
        Ok(())
    }

    /// Converts the decoded frame to 48 kHz interleaved 16-bit and appends it to `pending`,
    /// starting the output anew when `pts_us` is far from where the samples so far end.
    fn resample(&mut self, pts_us: Option<i64>) -> Result<(), TranscodeError> {
        let d = &mut self.decoded;
        if d.channel_layout().bits() == 0 {
            d.set_channel_layout(ChannelLayout::default(i32::from(d.channels())));
        }
        let key = (d.format(), d.channel_layout().bits(), d.rate());
        if self.resampler.as_ref().is_none_or(|(k, _)| *k != key) {
            let ctx = ffmpeg::software::resampling::Context::get(
                key.0,
                d.channel_layout(),
                key.2,
                Sample::I16(SampleType::Packed),
                self.layout,
                OPUS_RATE,
            )?;
            self.resampler = Some((key, ctx));
        }
        let Some((_, ctx)) = self.resampler.as_mut() else {
            return Ok(());
        };
        // Room for every sample the rate change makes, plus what the resampler held back:
        // an output sized like the input would leave the rest to grow inside it.
        let room = d.samples() * OPUS_RATE as usize / key.2.max(1) as usize + 256;
        let mut out = ffmpeg::frame::Audio::new(Sample::I16(SampleType::Packed), room, self.layout);
        ctx.run(d, &mut out)?;
        if let Some(pts) = pts_us {
            let expected = self
                .origin
                .map(|o| o + self.pending_end() * 1_000_000 / i64::from(OPUS_RATE));
            if expected.is_none_or(|e| (e - pts).abs() > RESYNC_US) {
                // The encoder's own sample count goes on (its pts must not go back): the
                // origin moves so that the next sample lands at `pts`.
                self.pending.clear();
                self.origin = Some(pts - self.samples_in * 1_000_000 / i64::from(OPUS_RATE));
            }
        }
        let n = out.samples() * self.channels;
        let bytes = &out.data(0)[..n * 2];
        self.pending.extend(
            bytes
                .chunks_exact(2)
                .map(|b| i16::from_ne_bytes([b[0], b[1]])),
        );
        Ok(())
    }

    /// Samples per channel from the output's origin to the end of `pending`.
    fn pending_end(&self) -> i64 {
        self.samples_in + (self.pending.len() / self.channels) as i64
    }

    /// Encodes every whole 20 ms of `pending`.
    fn encode(&mut self, out: &mut Vec<OpusPacket>) -> Result<(), TranscodeError> {
        let Some(origin) = self.origin else {
            return Ok(());
        };
        let take = FRAME_SAMPLES * self.channels;
        while self.pending.len() >= take {
            let mut frame = ffmpeg::frame::Audio::new(
                Sample::I16(SampleType::Packed),
                FRAME_SAMPLES,
                self.layout,
            );
            frame.set_rate(OPUS_RATE);
            frame.set_pts(Some(self.samples_in));
            for (dst, s) in frame
                .data_mut(0)
                .chunks_exact_mut(2)
                .zip(&self.pending[..take])
            {
                dst.copy_from_slice(&s.to_ne_bytes());
            }
            self.pending.drain(..take);
            self.samples_in += FRAME_SAMPLES as i64;
            self.encoder.send_frame(&frame)?;
            let mut packet = ffmpeg::Packet::empty();
            while self.encoder.receive_packet(&mut packet).is_ok() {
                // libopus's look-ahead makes a packet's first sample earlier than the frame
                // that completed it; its pts says where, on the output's sample count.
                let at = packet
                    .pts()
                    .unwrap_or(self.samples_in - FRAME_SAMPLES as i64);
                out.push(OpusPacket {
                    data: packet.data().map(<[u8]>::to_vec).unwrap_or_default(),
                    pts_us: origin + at * 1_000_000 / i64::from(OPUS_RATE),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "opus_tests.rs"]
pub(crate) mod tests;
