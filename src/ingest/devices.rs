//! FFmpeg's input devices (lavfi, V4L2), loaded the first time a camera needs one.
//!
//! libavdevice and libavfilter pull in about 80 shared libraries (X11, SDL, PulseAudio, speech
//! synthesis voices, GPU filters...) whose pages cost ~18 MB of resident memory in every
//! process that links them. Network cameras never use them, so camwall does not link them:
//! the first lavfi or V4L2 camera loads libavdevice of the same FFmpeg as the linked
//! libavformat and registers its devices.

use std::sync::OnceLock;

use ffmpeg_next as ffmpeg;

/// Loads libavdevice and registers its input formats, once per process. The error says what
/// to install.
pub fn ensure_loaded() -> Result<(), String> {
    static LOADED: OnceLock<Result<(), String>> = OnceLock::new();
    LOADED.get_or_init(load).clone()
}

fn load() -> Result<(), String> {
    // SAFETY: a plain version getter of the linked libavformat.
    let major = unsafe { ffmpeg::ffi::avformat_version() } >> 16;
    // FFmpeg bumps libavformat and libavdevice majors together; the matching soname is the
    // libavdevice built against the libavformat already loaded.
    let name = format!("libavdevice.so.{major}");
    let missing = |e: &dyn std::fmt::Display| {
        format!("lavfi and V4L2 sources need {name} (Debian: libavdevice{major}): {e}")
    };
    // SAFETY: loading FFmpeg's own device library; its initializers only set up static
    // tables, and it resolves libavformat/libavcodec to the copies already loaded.
    let lib = unsafe { libloading::Library::new(&name) }.map_err(|e| missing(&e))?;
    {
        // SAFETY: both symbols have these C signatures in every FFmpeg since 4.0.
        let version: libloading::Symbol<unsafe extern "C" fn() -> std::os::raw::c_uint> =
            unsafe { lib.get(b"avdevice_version\0") }.map_err(|e| missing(&e))?;
        let register: libloading::Symbol<unsafe extern "C" fn()> =
            unsafe { lib.get(b"avdevice_register_all\0") }.map_err(|e| missing(&e))?;
        // SAFETY: see above; registration is idempotent and thread-safe (ff_thread_once).
        let got = unsafe { version() } >> 16;
        if got != major {
            return Err(format!(
                "{name} is version {got}, libavformat is {major}: mismatched FFmpeg libraries"
            ));
        }
        unsafe { register() };
    }
    // The registered devices point into the library: it stays loaded for the process's life.
    std::mem::forget(lib);
    Ok(())
}
