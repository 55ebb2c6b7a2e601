//! The AAC to Opus transcoder on real FFmpeg: a 440 Hz tone encoded to AAC by FFmpeg's own
//! encoder comes out as 20 ms Opus packets on the camera's clock that decode to 440 Hz.

use super::*;

/// `seconds` of a sine at `hz`, `rate` Hz mono, as AAC access units (FFmpeg's native
/// encoder, raw with a global header) and their AudioSpecificConfig.
pub(crate) fn aac_tone(hz: f64, rate: u32, seconds: f64) -> (Vec<u8>, Vec<Vec<u8>>) {
    ffmpeg::init().unwrap();
    let codec = ffmpeg::encoder::find(ffmpeg::codec::Id::AAC).unwrap();
    let mut enc = ffmpeg::codec::context::Context::new_with_codec(codec)
        .encoder()
        .audio()
        .unwrap();
    enc.set_rate(rate as i32);
    enc.set_format(Sample::F32(SampleType::Planar));
    enc.set_channel_layout(ChannelLayout::MONO);
    enc.set_channels(1);
    enc.set_bit_rate(64_000);
    enc.set_time_base((1, rate as i32));
    enc.set_flags(ffmpeg::codec::Flags::GLOBAL_HEADER);
    let mut enc = enc.open_as(codec).unwrap();
    // SAFETY: the encoder is open; its extradata is the AudioSpecificConfig it wrote.
    let config = unsafe {
        let c = enc.as_ptr();
        std::slice::from_raw_parts((*c).extradata, (*c).extradata_size as usize).to_vec()
    };
    let mut units = Vec::new();
    let total = (seconds * f64::from(rate)) as usize;
    let mut packet = ffmpeg::Packet::empty();
    for start in (0..total).step_by(1024) {
        let mut frame =
            ffmpeg::frame::Audio::new(Sample::F32(SampleType::Planar), 1024, ChannelLayout::MONO);
        frame.set_rate(rate);
        frame.set_pts(Some(start as i64));
        for (i, s) in frame.plane_mut::<f32>(0).iter_mut().enumerate() {
            let t = (start + i) as f64 / f64::from(rate);
            *s = (0.5 * (2.0 * std::f64::consts::PI * hz * t).sin()) as f32;
        }
        enc.send_frame(&frame).unwrap();
        while enc.receive_packet(&mut packet).is_ok() {
            units.push(packet.data().unwrap().to_vec());
        }
    }
    (config, units)
}

/// Decodes Opus packets with FFmpeg's own Opus decoder to 48 kHz mono samples.
fn decode_opus(packets: &[OpusPacket]) -> Vec<f32> {
    let codec = ffmpeg::decoder::find(ffmpeg::codec::Id::OPUS).unwrap();
    let mut ctx = ffmpeg::codec::context::Context::new_with_codec(codec);
    // SAFETY: a fresh context, set before it is opened.
    unsafe {
        (*ctx.as_mut_ptr()).sample_rate = OPUS_RATE as i32;
        (*ctx.as_mut_ptr()).channels = 1;
    }
    let mut dec = ctx.decoder().audio().unwrap();
    let mut out = Vec::new();
    let mut frame = ffmpeg::frame::Audio::empty();
    for p in packets {
        dec.send_packet(&ffmpeg::Packet::copy(&p.data)).unwrap();
        while dec.receive_frame(&mut frame).is_ok() {
            assert_eq!(frame.format(), Sample::F32(SampleType::Planar));
            out.extend_from_slice(&frame.plane::<f32>(0)[..frame.samples()]);
        }
    }
    out
}

/// The pitch of a sine from its upward zero crossings per second.
fn pitch(samples: &[f32], rate: u32) -> f64 {
    let ups = samples
        .windows(2)
        .filter(|w| w[0] < 0.0 && w[1] >= 0.0)
        .count();
    ups as f64 * f64::from(rate) / samples.len() as f64
}

#[test]
fn a_44k_aac_tone_comes_out_as_20ms_opus_at_its_pitch_on_the_cameras_clock() {
    let (config, units) = aac_tone(440.0, 44_100, 2.0);
    let mut t = Transcoder::new(&config, 1).unwrap();
    assert_eq!(t.channels(), 1);
    let mut out = Vec::new();
    // Camera time starts at 5 s; each unit is 1024 samples at 44.1 kHz.
    for (i, u) in units.iter().enumerate() {
        let pts = 5_000_000 + i as i64 * 1024 * 1_000_000 / 44_100;
        t.push(u, pts, &mut out).unwrap();
    }
    // 2 s of input is about 100 packets of 20 ms (less what the encoders hold back).
    assert!((90..=101).contains(&out.len()), "{} packets", out.len());
    for w in out.windows(2) {
        assert_eq!(w[1].pts_us - w[0].pts_us, 20_000, "20 ms apart");
    }
    let first = out[0].pts_us;
    assert!(
        (4_990_000..=5_030_000).contains(&first),
        "starts near 5 s: {first}"
    );
    let pcm = decode_opus(&out);
    let hz = pitch(&pcm[4800..], OPUS_RATE);
    assert!((hz - 440.0).abs() < 10.0, "pitch {hz} Hz");
    let loud = (pcm.iter().map(|s| s * s).sum::<f32>() / pcm.len() as f32).sqrt();
    assert!(loud > 0.1, "not silence: rms {loud}");
}

#[test]
fn a_gap_in_the_cameras_audio_starts_the_output_at_the_new_time() {
    let (config, units) = aac_tone(1000.0, 48_000, 1.0);
    let mut t = Transcoder::new(&config, 1).unwrap();
    let mut out = Vec::new();
    let step = 1024 * 1_000_000 / 48_000;
    for (i, u) in units.iter().enumerate() {
        // Half way, the camera's audio jumps 3 s ahead (lost for a while).
        let jump = if i >= units.len() / 2 { 3_000_000 } else { 0 };
        t.push(u, i as i64 * step + jump, &mut out).unwrap();
    }
    let big: Vec<i64> = out
        .windows(2)
        .map(|w| w[1].pts_us - w[0].pts_us)
        .filter(|d| *d != 20_000)
        .collect();
    assert_eq!(big.len(), 1, "one jump: {big:?}");
    assert!((2_900_000..=3_100_000).contains(&big[0]), "{big:?}");
}

#[test]
fn a_bad_unit_is_an_error_not_a_panic() {
    let (config, units) = aac_tone(440.0, 48_000, 0.2);
    let mut t = Transcoder::new(&config, 2).unwrap();
    assert_eq!(t.channels(), 2);
    let mut out = Vec::new();
    let _ = t.push(&[0xff; 7], 0, &mut out);
    for (i, u) in units.iter().enumerate() {
        let _ = t.push(u, i as i64 * 21_333, &mut out);
    }
    assert!(!out.is_empty());
}
