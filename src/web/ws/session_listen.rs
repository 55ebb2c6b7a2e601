//! The session's audio subscriptions: which cameras' sound a client listens to, kept across
//! a re-subscribe that does not change it.

use std::sync::Arc;

use super::super::audio::AudioOut;
use super::Session;
use crate::hub::{Audio, Camera, StreamKind};

impl Session {
    /// The camera's audio for a client that lists `codecs` (none: no audio), from its main
    /// stream whichever stream serves the picture: the sound does not jump with a switch. A
    /// subscribe again to the same camera with the same codecs (a tile resized) keeps the
    /// sound as it goes.
    pub(super) fn listen(&mut self, id: &str, codecs: &[&'static str]) {
        let main = self.hub.stream_of(id, StreamKind::Main);
        let same = |(cam, out): &(Arc<Camera>, AudioOut)| {
            out.codecs() == codecs && main.as_ref().is_some_and(|m| Arc::ptr_eq(cam, &m.camera))
        };
        if !codecs.is_empty()
            && self.audio_streams.contains_key(id)
            && self.listening.get(id).is_some_and(same)
        {
            return;
        }
        self.audio_streams.remove(id);
        self.listening.remove(id);
        let Some(main) = main.filter(|_| !codecs.is_empty()) else {
            return;
        };
        self.audio_streams
            .insert(id.to_string(), main.attach(Audio));
        self.listening.insert(
            id.to_string(),
            (main.camera.clone(), AudioOut::new(codecs.to_vec())),
        );
    }
}
