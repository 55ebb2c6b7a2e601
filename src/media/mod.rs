//! Pictures and their rules: the camera's clock, decoded frames, pure JPEG work with libjpeg-turbo, the cameras' own
//! compressed H.264/H.265 (NAL units, parameter sets, codec strings, the GOP cache), and the tier
//! rules (quality, size, frame rate). No I/O, no async, no knowledge of cameras or clients.

pub mod activity;
pub mod clock;
pub mod codec;
pub mod decode;
pub mod frame;
pub mod gop;
pub mod h264;
pub mod h265;
pub mod h26x;
pub mod jpeg;
pub mod nal;
pub mod opus;
pub mod tier;
