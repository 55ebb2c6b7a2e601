//! The production opener: each camera's source through the reader its config names
//! (`CameraConfig::reader`): retina on the camera's task for RTSP, FFmpeg on a session thread
//! for everything else and for cameras set to `"ingest": "ffmpeg"`.

use tokio_util::sync::CancellationToken;

use super::ffmpeg_source::FfmpegSource;
use super::worker::{Opener, SessionError, Source, TaskOpen};
use crate::config::{CameraConfig, Reader};

#[derive(Debug, Default, Clone, Copy)]
pub struct CameraOpener;

impl Opener for CameraOpener {
    fn open(
        &self,
        config: &CameraConfig,
        cancel: &CancellationToken,
    ) -> Result<Box<dyn Source>, SessionError> {
        Ok(Box::new(FfmpegSource::open(config, cancel, true)?))
    }

    fn open_task(&self, config: &CameraConfig) -> Option<TaskOpen> {
        (config.reader() == Reader::Retina).then(|| super::rtsp::open(config))
    }
}
